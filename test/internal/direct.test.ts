/**
 * Direct calls (`dispatch` in src/internal/pool.ts): the pool starts a
 * driver's callback-style call on the connection it hands over, and a call's
 * end passes its connection straight to the next queued call. The driver here
 * is a fake whose calls end when the test says.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, TestClock } from "effect"
import { type Direct, dispatch } from "../../src/internal/pool.js"
import type { TestFactory } from "../../src/testing/index.js"
import { makeTestPool, settle } from "../utils/pool.js"
import { recordingTracer } from "../utils/tracer.js"

type Connection = TestFactory.TestConnection

/** One call in flight on the fake driver. */
interface Call {
  readonly id: string
  readonly connection: Connection
  readonly end: (result?: string, clean?: boolean) => void
}

/** A fake callback driver: it records what happens, in order, and keeps each started call until `end`. */
const makeDriver = () => {
  const log: Array<string> = []
  const running: Array<Call> = []
  const call = (id: string, options: {
    readonly decline?: boolean
    readonly endInStart?: boolean
    readonly endsWhenCancelled?: boolean
  } = {}): Direct<Connection, string, never> => ({
    start: (connection, done) => {
      log.push(`start ${id}`)
      if (options.decline === true) return false
      const end = (result = id, clean = true) => {
        log.push(`end ${id}`)
        done(Effect.succeed(result), clean)
      }
      if (options.endInStart === true) end()
      else running.push({ id, connection, end })
      return true
    },
    settle: () => Effect.sync(() => void log.push(`settle ${id}`)),
    use: () => Effect.sync(() => (log.push(`use ${id}`), id)),
    cancel: () =>
      Effect.sync(() => {
        log.push(`cancel ${id}`)
        const index = running.findIndex((c) => c.id === id)
        const [cancelled] = running.splice(index, 1)
        if (options.endsWhenCancelled !== false) cancelled!.end("cancelled")
      })
  })
  const take = (id: string) => {
    const index = running.findIndex((c) => c.id === id)
    return running.splice(index, 1)[0]!
  }
  return { log, running, call, take }
}

/** A pool of one connection, call `first` running on it and call "b" queued behind it, each in a fiber of its own. */
const oneRunningOneQueued = (first: (driver: ReturnType<typeof makeDriver>) => Direct<Connection, string, never> = (d) => d.call("a")) =>
  Effect.gen(function*() {
    const { pool } = yield* makeTestPool({ maxSize: 1 })
    const driver = makeDriver()
    const running = yield* Effect.fork(dispatch(pool, first(driver)))
    const queued = yield* Effect.fork(dispatch(pool, driver.call("b")))
    yield* settle
    return { pool, driver, running, queued }
  })

describe("direct calls", () => {
  it.scoped("a call's end starts the next queued call from the driver's callback, before any fiber runs", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const driver = makeDriver()
      const first = yield* Effect.fork(dispatch(pool, driver.call("a")))
      yield* settle
      const second = yield* Effect.fork(dispatch(pool, driver.call("b")))
      yield* settle
      expect(driver.log).toStrictEqual(["start a"])
      driver.take("a").end()
      // Synchronously: the connection went on to "b" inside "a"'s end.
      expect(driver.log).toStrictEqual(["start a", "end a", "start b"])
      expect(yield* Fiber.join(first)).toBe("a")
      driver.take("b").end()
      expect(yield* Fiber.join(second)).toBe("b")
      expect(yield* pool.stats).toMatchObject({ total: 1, idle: 1, inUse: 0, waiting: 0, checkouts: 2 })
    }))

  it.scoped("an interrupted call is cancelled, and its caller goes on only once the connection is back", () =>
    Effect.gen(function*() {
      const { driver, pool, queued, running } = yield* oneRunningOneQueued()
      yield* Fiber.interrupt(running)
      expect(driver.log).toStrictEqual(["start a", "cancel a", "end a", "start b"])
      // Interrupted at the front of the queue: "b" never starts on the connection "c" gets.
      const third = yield* Effect.fork(dispatch(pool, driver.call("c")))
      yield* settle
      yield* Fiber.interrupt(queued)
      yield* settle
      expect(driver.log.slice(4)).toStrictEqual(["cancel b", "end b", "start c"])
      driver.take("c").end()
      expect(yield* Fiber.join(third)).toBe("c")
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0, waiting: 0 })
    }))

  it.scoped("a call that ends while its cancel is still under way keeps its connection until the cancel is done", () =>
    Effect.gen(function*() {
      const cancelDelivered = yield* Deferred.make<void>()
      const { driver, pool, queued, running } = yield* oneRunningOneQueued((driver) => ({
        ...driver.call("a"),
        // The call ends on its own, and only then does the server take the cancel.
        cancel: () =>
          Effect.zipRight(
            Effect.sync(() => driver.take("a").end()),
            Effect.zipRight(Deferred.await(cancelDelivered), Effect.sync(() => void driver.log.push("cancel a delivered")))
          )
      }))
      const interrupting = yield* Effect.fork(Fiber.interrupt(running))
      yield* settle
      expect(driver.log).toStrictEqual(["start a", "end a"])
      yield* Deferred.succeed(cancelDelivered, undefined)
      yield* Fiber.join(interrupting)
      expect(driver.log).toStrictEqual(["start a", "end a", "cancel a delivered", "start b"])
      driver.take("b").end()
      expect(yield* Fiber.join(queued)).toBe("b")
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0 })
    }))

  it.scoped("a defect in the outcome of a call whose caller was interrupted does not replace the interruption", () =>
    Effect.gen(function*() {
      let finish: ((outcome: Effect.Effect<string>, clean: boolean) => void) | undefined
      const { pool, queued, running } = yield* oneRunningOneQueued((driver) => ({
        ...driver.call("a"),
        start: (_, done) => {
          finish = done
          return true
        },
        // The call ends as the cancel goes out, and its outcome is a defect (a row transform that threw).
        cancel: () => Effect.sync(() => finish!(Effect.die("boom"), true))
      }))
      const exit = yield* Fiber.interrupt(running)
      expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
      yield* Fiber.interrupt(queued)
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0 })
    }))

  it.scoped("an interrupted waiter's call never starts", () =>
    Effect.gen(function*() {
      const { driver, pool, queued: waiting, running: first } = yield* oneRunningOneQueued()
      yield* Fiber.interrupt(waiting)
      driver.take("a").end()
      expect(yield* Fiber.join(first)).toBe("a")
      expect(driver.log).toStrictEqual(["start a", "end a"])
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0, waiting: 0 })
    }))

  it.scoped("a call that does not end when cancelled costs its connection, and its late end is ignored", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ maxSize: 1 })
      const driver = makeDriver()
      let stuck: Call | undefined
      const call = driver.call("a", { endsWhenCancelled: false })
      const running = yield* Effect.fork(dispatch(pool, {
        ...call,
        cancel: (connection) => Effect.zipRight(Effect.sync(() => (stuck = driver.running[0])), call.cancel(connection))
      }))
      yield* settle
      yield* Fiber.interrupt(running)
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["error"])
      expect(yield* pool.stats).toMatchObject({ total: 0, inUse: 0 })
      stuck!.end()
      yield* settle
      expect(yield* pool.stats).toMatchObject({ total: 0, idle: 0, inUse: 0 })
      const next = yield* Effect.fork(dispatch(pool, driver.call("b")))
      yield* settle
      driver.take("b").end()
      expect(yield* Fiber.join(next)).toBe("b")
      expect(factory.counters()).toMatchObject({ opened: 2, closed: 1 })
    }))

  it.scoped("a dirty end makes the connection fit in the caller's fiber before it goes back", () =>
    Effect.gen(function*() {
      const { driver, queued: second, running: first } = yield* oneRunningOneQueued()
      driver.take("a").end("a", false)
      expect(driver.log).toStrictEqual(["start a", "end a"])
      expect(yield* Fiber.join(first)).toBe("a")
      yield* settle
      expect(driver.log).toStrictEqual(["start a", "end a", "settle a", "start b"])
      driver.take("b").end()
      expect(yield* Fiber.join(second)).toBe("b")
    }))

  it.scoped("a connection that is due a validation is checked in the caller's fiber, and the call starts there", () =>
    Effect.gen(function*() {
      const validated: Array<number> = []
      const { pool } = yield* makeTestPool({
        maxSize: 1,
        validate: (connection) => Effect.sync(() => (validated.push(connection.id), true)),
        validateAfterIdle: 0
      })
      const driver = makeDriver()
      const first = yield* Effect.fork(dispatch(pool, driver.call("a")))
      const second = yield* Effect.fork(dispatch(pool, driver.call("b")))
      yield* settle
      driver.take("a").end()
      // Not started inside "a"'s end: it needs a check first, which runs in its fiber.
      expect(driver.log).toStrictEqual(["start a", "end a"])
      yield* settle
      expect(driver.log).toStrictEqual(["start a", "end a", "start b"])
      expect(validated).toHaveLength(2)
      driver.take("b").end()
      expect(yield* Fiber.join(first)).toBe("a")
      expect(yield* Fiber.join(second)).toBe("b")
    }))

  it.scoped("a long wait is traced in the caller's fiber, from its start to the hand-off", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const { pool } = yield* makeTestPool({ maxSize: 1, traceWaitsOver: "10 millis" })
      const driver = makeDriver()
      const first = yield* Effect.fork(dispatch(pool, driver.call("a")))
      yield* settle
      const waiting = yield* Effect.fork(
        dispatch(pool, driver.call("b")).pipe(Effect.withSpan("caller"), Effect.withTracer(tracer))
      )
      yield* settle
      yield* TestClock.adjust("25 millis")
      driver.take("a").end()
      yield* TestClock.adjust("5 millis")
      driver.take("b").end()
      yield* Fiber.join(first)
      yield* Fiber.join(waiting)
      expect(spans.map(({ end, name, parent, start }) => ({ name, parent, ms: Number(end - start) / 1e6 }))).toStrictEqual([
        { name: "lifeguard.pool.checkout", parent: "caller", ms: 25 },
        { name: "caller", parent: undefined, ms: 30 }
      ])
    }))

  it.scoped("a call its driver declines runs as use, in the caller's fiber", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const driver = makeDriver()
      expect(yield* dispatch(pool, driver.call("a", { decline: true }))).toBe("a")
      expect(driver.log).toStrictEqual(["start a", "use a"])
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0 })
    }))

  it.scoped("a driver that ends a call from within start is heard once start has returned", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const driver = makeDriver()
      const [a, b] = yield* Effect.all([
        dispatch(pool, driver.call("a", { endInStart: true })),
        dispatch(pool, driver.call("b", { endInStart: true }))
      ], { concurrency: "unbounded" })
      expect([a, b]).toStrictEqual(["a", "b"])
      expect(driver.log).toStrictEqual(["start a", "end a", "start b", "end b"])
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0, checkouts: 2 })
    }))

  it.scoped("a pool that closes waits for a running call, and fails the queued ones", () =>
    Effect.gen(function*() {
      const { driver, pool, queued, running } = yield* oneRunningOneQueued()
      const draining = yield* Effect.fork(pool.drain)
      yield* settle
      const exit = yield* Fiber.await(queued)
      expect(Exit.isFailure(exit) && exit.cause.toString()).toContain("PoolClosedError")
      expect(draining.unsafePoll()).toBeNull()
      driver.take("a").end()
      expect(yield* Fiber.join(running)).toBe("a")
      yield* Fiber.join(draining)
      expect(yield* pool.stats).toMatchObject({ total: 0, inUse: 0 })
    }))
})
