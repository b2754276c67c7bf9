import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import * as WaiterDeferred from "../../src/internal/deferred.js"

describe("the wait queue's deferreds", () => {
  it("use the cheap layout with this version of effect", () => {
    expect(WaiterDeferred.isFast).toBe(true)
  })

  it.effect("are genuine Deferreds: await, unsafeDone, poll and isDone work on them", () =>
    Effect.gen(function*() {
      const deferred = WaiterDeferred.make<number, string>()
      const waiting = yield* Effect.fork(Deferred.await(deferred))
      yield* Effect.yieldNow()
      expect(yield* Deferred.isDone(deferred)).toBe(false)
      Deferred.unsafeDone(deferred, Exit.succeed(42))
      expect(yield* Fiber.join(waiting)).toBe(42)
      expect(yield* Deferred.poll(deferred)).toStrictEqual(Option.some(Exit.succeed(42)))
      const failing = WaiterDeferred.make<number, string>()
      yield* Deferred.fail(failing, "boom")
      expect(yield* Effect.flip(Deferred.await(failing))).toBe("boom")
    }))

  it.effect("do not share joiners between instances, and an interrupted await leaves the other waiting", () =>
    Effect.gen(function*() {
      const a = WaiterDeferred.make<string>()
      const b = WaiterDeferred.make<string>()
      const onA = yield* Effect.fork(Deferred.await(a))
      const onB = yield* Effect.fork(Deferred.await(b))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(onA)
      yield* Deferred.succeed(b, "b")
      expect(yield* Fiber.join(onB)).toBe("b")
      expect(yield* Deferred.isDone(a)).toBe(false)
    }))
})
