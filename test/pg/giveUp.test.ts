/**
 * The bounded waits of lifeguard/pg's cancel, cursor close and connection close
 * (`orGiveUp`): they run in cancelers and finalizers, where the fiber is
 * uninterruptible, and must still give up on time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { orGiveUp } from "../../src/pg/internal/connection.js"

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
