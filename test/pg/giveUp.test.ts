/**
 * The bounded waits of lifeguard/pg's cancel, cursor close and connection close
 * (`orGiveUp`), and the wait for a failed statement's ReadyForQuery: they run
 * in cancelers, finalizers and return paths, where the fiber is
 * uninterruptible, and must still give up on time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { awaitReady, orGiveUp, PgConnection } from "../../src/pg/internal/connection.js"

describe("a bounded wait of lifeguard/pg", () => {
  it.effect("gives up after its time on the Clock even inside an uninterruptible region", () =>
    Effect.gen(function*() {
      let gaveUp = 0
      const waiting = yield* Effect.fork(Effect.uninterruptible(orGiveUp(Effect.never, 1_000, () => gaveUp++)))
      yield* TestClock.adjust("999 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiting)
      expect(gaveUp).toBe(1)
    }))

  it.effect("does not give up on a wait that ends in time", () =>
    Effect.gen(function*() {
      let gaveUp = 0
      const waiting = yield* Effect.fork(Effect.uninterruptible(orGiveUp(Effect.sleep("500 millis"), 1_000, () => gaveUp++)))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(waiting)
      expect(gaveUp).toBe(0)
    }))
})

describe("the wait for a failed statement's ReadyForQuery", () => {
  const owner = (gone: Array<unknown>) => ({
    name: "test",
    cancelTimeout: 1_000,
    unfit: () => false,
    onGone: (_: PgConnection, error: unknown) => void gone.push(error)
  })

  it.effect("gives the connection up after cancelTimeout on the Clock", () =>
    Effect.gen(function*() {
      const gone: Array<unknown> = []
      // Never connected: pg's readyForQuery stays false, as after an ErrorResponse whose ReadyForQuery never comes.
      const connection = new PgConnection({}, owner(gone))
      const waiting = yield* Effect.fork(Effect.uninterruptible(awaitReady(connection)))
      yield* TestClock.adjust("999 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiting)
      expect(String(gone[0])).toContain("no ReadyForQuery within 1000 ms")
      expect(connection.onReady).toBeUndefined()
    }))

  it.effect("ends when the connection goes meanwhile", () =>
    Effect.gen(function*() {
      const gone: Array<unknown> = []
      const connection = new PgConnection({}, owner(gone))
      const waiting = yield* Effect.fork(awaitReady(connection))
      yield* Effect.yieldNow()
      connection.markGone(new Error("Connection terminated"))
      yield* Fiber.join(waiting)
      expect(gone).toHaveLength(1)
    }))
})
