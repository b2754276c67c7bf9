import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Match, Stream, TestClock } from "effect"
import { PoolEvent } from "../src/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

const describeEvent = Match.type<PoolEvent.PoolEvent>().pipe(
  Match.tag("ConnectionCheckedOut", (e) => `out ${e.connectionId} after ${e.duration} ms`),
  Match.tag("ConnectionCheckedIn", (e) => `in ${e.connectionId} after ${e.duration} ms`),
  Match.tag("ConnectionReady", (e) => `ready ${e.connectionId}`),
  Match.tag("ConnectionClosed", (e) => `closed ${e.connectionId}: ${e.reason}`),
  Match.orElse((e) => e._tag)
)

describe("PoolEvent", () => {
  it.scoped("events are a tagged union that Match.tag reads", () =>
    Effect.gen(function*() {
      const { events, pool } = yield* makeTestPool()
      const held = yield* holdConnection(pool)
      yield* held.connection
      yield* held.release
      yield* pool.invalidate((yield* Effect.scoped(pool.get)))
      expect(events.map(describeEvent)).toStrictEqual([
        "ConnectionPoolCreated",
        "ConnectionPoolReady",
        "ConnectionCheckOutStarted",
        "ConnectionCreated",
        "ready 1",
        "out 1 after 0 ms",
        "in 1 after 0 ms",
        "ConnectionCheckOutStarted",
        "out 1 after 0 ms",
        "in 1 after 0 ms",
        "closed 1: invalidated"
      ])
    }))

  it.scoped("$is narrows a stream of events and $match covers every tag", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1, acquireTimeout: "50 millis" })
      const failures = yield* pool.events.pipe(
        Stream.filter(PoolEvent.$is("ConnectionCheckOutFailed")),
        Stream.take(1),
        Stream.runCollect,
        Effect.fork
      )
      yield* settle
      const held = yield* holdConnection(pool)
      yield* held.connection
      const late = yield* Effect.fork(Effect.either(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(late)
      const [failed] = Chunk.toReadonlyArray(yield* Fiber.join(failures))
      expect(failed).toMatchObject({ _tag: "ConnectionCheckOutFailed", reason: "timeout", duration: 50 })
      const kind = PoolEvent.$match(failed!, {
        ConnectionPoolCreated: () => "pool",
        ConnectionPoolReady: () => "pool",
        ConnectionPoolCleared: () => "pool",
        ConnectionPoolClosed: () => "pool",
        ConnectionCreated: () => "connection",
        ConnectionReady: () => "connection",
        ConnectionClosed: () => "connection",
        ConnectionCheckOutStarted: () => "checkout",
        ConnectionCheckOutFailed: (e) => `checkout failed: ${e.reason}`,
        ConnectionCheckedOut: () => "checkout",
        ConnectionCheckedIn: () => "checkout",
        ConnectionLeakSuspected: () => "leak"
      })
      expect(kind).toBe("checkout failed: timeout")
      yield* held.release
    }))

  it.scoped("every event carries the pool's address when it has one", () =>
    Effect.gen(function*() {
      const { events, pool } = yield* makeTestPool({ address: "db.internal:5432" })
      yield* Effect.scoped(pool.get)
      expect(events.length).toBeGreaterThan(4)
      for (const event of events) expect(event.address).toBe("db.internal:5432")
    }))

  it("the constructors build the same shape the pool emits", () => {
    const event = PoolEvent.ConnectionClosed({ pool: "db", time: 0, connectionId: 3, reason: "idle" })
    expect(PoolEvent.$is("ConnectionClosed")(event)).toBe(true)
    expect(describeEvent(event)).toBe("closed 3: idle")
  })
})
