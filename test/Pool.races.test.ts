import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberId, Schedule, Scope, TestClock } from "effect"
import type { Pool } from "../src/index.js"
import type { TestFactory } from "../src/testing/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

/** `idle + inUse + pending = total <= maxSize`, and nothing negative. */
const expectConsistent = <A, E>(pool: Pool.Pool<A, E>) =>
  Effect.gen(function*() {
    const s = yield* pool.stats
    expect(s.idle + s.inUse + s.pending).toBe(s.total)
    expect(s.total).toBeLessThanOrEqual(pool.options.maxSize)
    for (const count of [s.idle, s.inUse, s.pending, s.waiting, s.total]) expect(count).toBeGreaterThanOrEqual(0)
  })

/** A validate whose verdict the test gives, one call at a time. */
const gatedValidate = Effect.gen(function*() {
  const gates: Array<Deferred.Deferred<boolean>> = []
  let calls = 0
  const validate = (_: TestFactory.TestConnection) =>
    Effect.suspend(() => {
      calls++
      const gate = Deferred.unsafeMake<boolean>(FiberId.none)
      gates.push(gate)
      return Deferred.await(gate).pipe(
        Effect.onInterrupt(() => Effect.sync(() => gates.splice(gates.indexOf(gate), 1)))
      )
    })
  const answer = (healthy: boolean) => Effect.suspend(() => Deferred.succeed(gates.shift()!, healthy))
  return { validate, answer, calls: () => calls, open: () => gates.length }
})

/** A pool with one idle connection that the next checkout validates. */
const poolWithIdle = (options: Parameters<typeof makeTestPool>[0] = {}) =>
  Effect.gen(function*() {
    const gate = yield* gatedValidate
    const made = yield* makeTestPool({ validate: gate.validate, validateAfterIdle: "1 second", ...options })
    yield* Effect.scoped(made.pool.get)
    yield* TestClock.adjust("1 second")
    return { ...made, gate }
  })

describe("race 1: a connection closed by the pool while a checkout validates it", () => {
  it.scoped("validation then fails: counts stay right and maxSize holds", () =>
    Effect.gen(function*() {
      const { factory, gate, pool } = yield* poolWithIdle({ maxSize: 1 })
      const checkout = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      expect(gate.open()).toBe(1)
      yield* pool.clear({ interruptInUse: true })
      yield* gate.answer(false)
      expect(yield* Fiber.join(checkout)).toBe(2)
      yield* expectConsistent(pool)
      expect(yield* pool.stats).toMatchObject({ total: 1, idle: 1, inUse: 0 })
      expect(factory.counters().maxOpen).toBe(1)
    }))

  it.scoped("validation then passes: the caller is not handed the closed connection", () =>
    Effect.gen(function*() {
      const { factory, gate, pool } = yield* poolWithIdle()
      const checkout = yield* Effect.fork(pool.use((c) => Effect.as(factory.query(c), c.id)))
      yield* settle
      yield* pool.clear({ interruptInUse: true })
      yield* gate.answer(true)
      expect(yield* Fiber.join(checkout)).toBe(2)
      yield* expectConsistent(pool)
    }))
})

describe("race 2: the drain and the last checkout failing validation", () => {
  it.effect("the drain ends as soon as that connection is closed, not at drainTimeout", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { gate, pool } = yield* poolWithIdle({ drainTimeout: "30 seconds" }).pipe(Scope.extend(scope))
      const checkout = yield* Effect.fork(Effect.exit(pool.use(() => Effect.void)))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* gate.answer(false)
      yield* settle
      expect(closing.unsafePoll()).not.toBeNull()
      expect((yield* Fiber.join(checkout))._tag).toBe("Failure")
    }))
})

describe("race 3: a checkout interrupted while it validates", () => {
  it.scoped("gives the connection back unharmed and validates no other", () =>
    Effect.gen(function*() {
      const gate = yield* gatedValidate
      const { ofType, pool } = yield* makeTestPool({ maxSize: 2, validate: gate.validate, validateAfterIdle: "1 second" })
      // Two idle connections: the interrupted checkout must not go on to the second.
      const a = yield* holdConnection(pool)
      const b = yield* holdConnection(pool)
      yield* a.connection
      yield* b.connection
      yield* a.release
      yield* b.release
      yield* TestClock.adjust("1 second")
      const checkout = yield* Effect.fork(pool.use(() => Effect.void))
      yield* settle
      yield* Fiber.interrupt(checkout)
      yield* settle
      expect(gate.calls()).toBe(1)
      expect(ofType("ConnectionClosed")).toHaveLength(0)
      expect(yield* pool.stats).toMatchObject({ idle: 2, inUse: 0, total: 2 })
      // It was not validated, so the next checkout validates it again.
      const next = yield* Effect.fork(pool.use(() => Effect.void))
      yield* settle
      expect(gate.calls()).toBe(2)
      yield* gate.answer(true)
      yield* Fiber.join(next)
    }))
})

describe("one deadline per checkout", () => {
  it.scoped("acquireTimeout bounds validate: a check that overruns it fails the checkout with PoolTimeoutError", () =>
    Effect.gen(function*() {
      const { gate, ofType, pool } = yield* poolWithIdle({ acquireTimeout: "2 seconds", checkTimeout: "5 seconds" })
      const checkout = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      expect(gate.open()).toBe(1)
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(checkout)
      expect(error._tag).toBe("PoolTimeoutError")
      expect(ofType("ConnectionCheckOutFailed").map((e) => e.reason)).toStrictEqual(["timeout"])
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["error"])
      yield* expectConsistent(pool)
    }))
})

describe("race 4: a set-up that stops because another covers the waiter", () => {
  it.scoped("does not fail the waiter, even under a retry schedule that never ends", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        maxConnecting: 2,
        connectDelay: "2 seconds",
        retrySchedule: Schedule.spaced("1 second")
      })
      // The first set-up fails at 1 s, while the second, which covers the waiter, lands at 2 s.
      yield* factory.setFailPoint({ times: 1, delay: "1 second", fail: "connection refused" })
      const quitter = yield* Effect.fork(Effect.scoped(pool.get))
      const waiter = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      expect((yield* pool.stats).pending).toBe(2)
      yield* Fiber.interrupt(quitter)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(waiter.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiter)).toBe(1)
    }))
})

describe("race 5: createTimeout and a factory that cannot be interrupted", () => {
  it.scoped("the timed-out attempt keeps its slot until it has ended: never more than maxConnecting or maxSize", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        maxSize: 1,
        maxConnecting: 1,
        createTimeout: "1 second",
        connectDelay: "10 seconds",
        acquireTimeout: "1 minute",
        retrySchedule: Schedule.spaced("100 millis")
      })
      const waiter = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      yield* factory.setConnectDelay(0)
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiter)).toBe(2)
      expect(factory.counters()).toMatchObject({ maxConnecting: 1, maxOpen: 1 })
      expect((yield* pool.stats).connectFailures).toBe(1)
    }))

  it.scoped("the timeout is still reported at createTimeout", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({
        createTimeout: "1 second",
        connectDelay: "1 hour",
        retrySchedule: Schedule.recurs(0)
      })
      const fiber = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber))._tag).toBe("ConnectTimeoutError")
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["error"])
      // The slot is held until the abandoned attempt ends.
      expect((yield* pool.stats).pending).toBe(1)
      yield* TestClock.adjust("1 hour")
      yield* settle
      expect((yield* pool.stats).pending).toBe(0)
    }))
})

describe("race 6: two checkouts failing validation keep their order", () => {
  it.scoped("the older is served first and times out at its own deadline", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        maxSize: 2,
        validate: (c) => Effect.succeed(!c.broken),
        validateAfterIdle: 0,
        acquireTimeout: "10 seconds",
        // The replacements never land under the test clock: do not wait for them at the end.
        drainTimeout: 0
      })
      const a = yield* holdConnection(pool)
      const b = yield* holdConnection(pool)
      const [ca, cb] = [yield* a.connection, yield* b.connection]
      // Their replacements take long: both waiters time out.
      yield* factory.setConnectDelay("1 hour")
      const older = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("1 second")
      const younger = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* factory.breakConnection(ca)
      yield* factory.breakConnection(cb)
      yield* a.release
      yield* b.release
      yield* settle
      expect((yield* pool.stats).waiting).toBe(2)
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(older.unsafePoll()).not.toBeNull()
      expect(younger.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(older))._tag).toBe("PoolTimeoutError")
      expect((yield* Fiber.join(younger))._tag).toBe("PoolTimeoutError")
    }))

  it.scoped("a checkout put back after a failed validation is not refused by maxWaiters", () =>
    Effect.gen(function*() {
      const gate = yield* gatedValidate
      const { pool } = yield* makeTestPool({ maxSize: 1, maxWaiters: 1, validate: gate.validate, validateAfterIdle: 0 })
      const holder = yield* holdConnection(pool)
      yield* settle
      yield* gate.answer(true)
      yield* holder.connection
      const admitted = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      yield* holder.release
      yield* settle
      // The admitted checkout validates; meanwhile another caller fills the queue.
      expect(gate.open()).toBe(1)
      const later = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      expect((yield* pool.stats).waiting).toBe(1)
      yield* gate.answer(false)
      yield* settle
      yield* gate.answer(true)
      expect(yield* Fiber.join(admitted)).toBe(2)
      yield* settle
      yield* gate.answer(true)
      expect(yield* Fiber.join(later)).toBe(2)
    }))
})

describe("race 7: a waiter interrupted at the instant it is served", () => {
  it.scoped("does not count a use: the connection goes on to the next waiter", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({ maxSize: 1, maxUses: 2 })
      const scope = yield* Scope.make()
      const first = yield* pool.get.pipe(Scope.extend(scope))
      const quitter = yield* Effect.fork(Effect.scoped(pool.get))
      const next = yield* Effect.fork(pool.use((c) => Effect.succeed(c)))
      yield* settle
      // Interrupted and served in the same step: the quitter never sees the connection.
      yield* Effect.zipRight(Fiber.interruptFork(quitter), Scope.close(scope, Exit.void))
      expect(yield* Fiber.join(next)).toBe(first)
      expect(Exit.isInterrupted(yield* Fiber.await(quitter))).toBe(true)
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["maxUses"])
    }))
})

describe("race 8: no set-up left running after the pool has closed", () => {
  it.effect("the drain waits for a set-up that cannot be interrupted", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { factory, pool } = yield* makeTestPool({ connectDelay: "5 seconds", drainTimeout: "30 seconds" }).pipe(
        Scope.extend(scope)
      )
      yield* Effect.fork(Effect.exit(Effect.scoped(pool.get)))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      expect(closing.unsafePoll()).toBeNull()
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(closing)
      expect(factory.counters()).toMatchObject({ connecting: 0, open: 0, opened: 1, closed: 1 })
    }))

  it.effect("up to drainTimeout, then reports the set-ups it left", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { factory, pool } = yield* makeTestPool({ connectDelay: "1 hour", drainTimeout: "10 seconds" }).pipe(
        Scope.extend(scope)
      )
      yield* Effect.fork(Effect.exit(Effect.scoped(pool.get)))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust("9 seconds")
      expect(closing.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect((yield* pool.stats).setupsLeftRunning).toBe(1)
      yield* TestClock.adjust("1 hour")
      yield* settle
      expect(factory.counters()).toMatchObject({ connecting: 0, open: 0 })
    }))

  it.effect("drainTimeout bounds a close that hangs", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* makeTestPool({ drainTimeout: "10 seconds" }).pipe(
        Effect.map((made) => made.pool),
        Scope.extend(scope)
      )
      yield* pool.use((c) =>
        Effect.gen(function*() {
          // The connection's own scope gets a release that never ends.
          const entries = (pool as unknown as { entries: Map<unknown, { scope: Scope.Scope }> }).entries
          yield* Scope.addFinalizer(entries.get(c)!.scope, Effect.never)
        })
      )
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      expect((yield* pool.stats).closesLeftRunning).toBe(1)
    }))
})

describe("race 9: the pool closes a connection a checkout validates", () => {
  it.effect("clear({ interruptInUse }) stops the check, and the drain waits for that checkout", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { gate, pool } = yield* poolWithIdle({ drainTimeout: "30 seconds" }).pipe(Scope.extend(scope))
      const checkout = yield* Effect.fork(Effect.exit(pool.use(() => Effect.void)))
      yield* settle
      expect(gate.open()).toBe(1)
      yield* pool.clear({ interruptInUse: true })
      yield* Scope.close(scope, Exit.void)
      // The pool's work on the connection ended before it reported itself drained.
      expect(gate.open()).toBe(0)
      expect(checkout.unsafePoll()).not.toBeNull()
    }))

  it.effect("the drain deadline stops the check: the checkout fails with PoolClosedError before the drain ends", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { gate, pool } = yield* poolWithIdle({ drainTimeout: "1 second", checkTimeout: "1 hour" }).pipe(
        Scope.extend(scope)
      )
      const checkout = yield* Effect.fork(Effect.flip(pool.use(() => Effect.void)))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(gate.open()).toBe(0)
      const done = checkout.unsafePoll()
      expect(done !== null && Exit.isSuccess(done) ? done.value._tag : done).toBe("PoolClosedError")
    }))
})

describe("race 10: an interrupt that lands as the checkout starts validating", () => {
  it.scoped("stops the check at once and gives the connection back unharmed", () =>
    Effect.gen(function*() {
      const gate = yield* gatedValidate
      let target: Fiber.RuntimeFiber<unknown, unknown> | undefined
      const { ofType, pool } = yield* makeTestPool({
        validate: gate.validate,
        validateAfterIdle: "1 second",
        checkTimeout: "1 hour",
        // Interrupts the caller inside the checkout's uninterruptible step, just before it validates.
        onEvent: (event) => {
          if (event._tag === "ConnectionCheckedOut" && target !== undefined) target.unsafeInterruptAsFork(FiberId.none)
        }
      })
      yield* Effect.scoped(pool.get)
      yield* TestClock.adjust("1 second")
      const checkout = yield* Effect.fork(Effect.zipRight(Effect.yieldNow(), pool.use(() => Effect.void)))
      target = checkout
      yield* settle
      expect(checkout.unsafePoll()).not.toBeNull()
      expect(Exit.isInterrupted(yield* Fiber.await(checkout))).toBe(true)
      target = undefined
      expect(gate.open()).toBe(0)
      expect(ofType("ConnectionClosed")).toHaveLength(0)
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0, total: 1 })
      // It was not validated, so the next checkout validates it again.
      const next = yield* Effect.fork(pool.use(() => Effect.void))
      yield* settle
      expect(gate.open()).toBe(1)
      yield* gate.answer(true)
      yield* Fiber.join(next)
    }))
})
