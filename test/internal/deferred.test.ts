import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberId, Option, TestClock } from "effect"
import { vi } from "vitest"
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

describe("the layout guard", () => {
  const completed = () => {
    const deferred = Deferred.unsafeMake<number>(FiberId.none)
    Deferred.unsafeDone(deferred, Exit.succeed(1))
    return deferred
  }

  it("knows Effect's Deferreds, and nothing laid out otherwise", () => {
    expect(WaiterDeferred.knowsLayout(Deferred.unsafeMake(FiberId.none), completed())).toBe(true)
    // A field renamed, a state that is not a ref, a pending state without joiners, a done one without an effect.
    const { state, blockingOn } = Deferred.unsafeMake(FiberId.none) as unknown as { state: unknown; blockingOn: unknown }
    expect(WaiterDeferred.knowsLayout({ ref: state, blockingOn }, completed())).toBe(false)
    expect(WaiterDeferred.knowsLayout({ state: { _tag: "Pending", joiners: [] }, blockingOn }, completed())).toBe(false)
    expect(WaiterDeferred.knowsLayout({ state: { current: { _tag: "Pending" } }, blockingOn }, completed())).toBe(false)
    expect(WaiterDeferred.knowsLayout(Deferred.unsafeMake(FiberId.none), { state: { current: { _tag: "Done" } }, blockingOn })).toBe(false)
  })

  it("falls back to Effect's own functions", () => {
    expect(WaiterDeferred.fallback.isFast).toBe(false)
    expect(WaiterDeferred.fallback.await_).toBe(Deferred.await)
    const made = WaiterDeferred.fallback.make<number>()
    Deferred.unsafeDone(made, Exit.succeed(7))
    expect(Effect.runSync(Deferred.await(made))).toBe(7)
  })

  it.effect("the pool on the fallback: waiters served in order, an interrupted one skipped, a late one timed out", () =>
    Effect.gen(function*() {
      vi.resetModules()
      vi.doMock("../../src/internal/deferred.js", async () => {
        const actual = await vi.importActual<typeof WaiterDeferred>("../../src/internal/deferred.js")
        return { ...actual, ...actual.fallback }
      })
      try {
        const { Pool } = yield* Effect.promise(() => import("../../src/index.js"))
        const onFallback = yield* Effect.promise(() => import("../../src/internal/deferred.js"))
        expect(onFallback.isFast).toBe(false)
        yield* Effect.scoped(Effect.gen(function*() {
          let made = 0
          const pool = yield* Pool.make({ acquire: Effect.sync(() => ++made), maxSize: 1, acquireTimeout: "1 second" })
          const served: Array<number> = []
          const holder = yield* Effect.fork(pool.use(() => Effect.sleep("100 millis")))
          yield* TestClock.adjust("1 millis")
          const waiters = yield* Effect.forEach([1, 2, 3], (i) =>
            Effect.fork(pool.use(() => Effect.sync(() => served.push(i)))), { concurrency: "unbounded" })
          yield* TestClock.adjust("1 millis")
          yield* Fiber.interrupt(waiters[1]!)
          yield* TestClock.adjust("100 millis")
          yield* Fiber.join(holder)
          yield* Fiber.join(waiters[0]!)
          yield* Fiber.join(waiters[2]!)
          expect(served).toStrictEqual([1, 3])
          const blocker = yield* Effect.fork(pool.use(() => Effect.never))
          yield* TestClock.adjust("1 millis")
          const late = yield* Effect.fork(Effect.flip(pool.use(() => Effect.void)))
          yield* TestClock.adjust("2 seconds")
          expect((yield* Fiber.join(late))._tag).toBe("PoolTimeoutError")
          yield* Fiber.interrupt(blocker)
          const stats = yield* pool.stats
          expect(stats.inUse).toBe(0)
          expect(stats.waiting).toBe(0)
          expect(made).toBe(1)
        }))
      } finally {
        vi.doUnmock("../../src/internal/deferred.js")
        vi.resetModules()
      }
    }))
})
