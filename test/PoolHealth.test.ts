import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { PoolHealth } from "../src/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

describe("PoolHealth", () => {
  it.scoped("a fresh pool is ready, with no reason", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ name: "fresh" })
      const health = yield* PoolHealth.make(pool)
      const result = yield* health.check
      expect(result).toMatchObject({ status: "ready", pool: "fresh" })
      expect(result.reason).toBeUndefined()
      expect(PoolHealth.isServing(result)).toBe(true)
    }))

  it.scoped("the probe runs once per probeTtl, however often the check is asked", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      let runs = 0
      const health = yield* PoolHealth.make(pool, {
        probe: pool.use(() => Effect.sync(() => runs++)),
        probeTtl: "5 seconds"
      })
      yield* Effect.all([health.check, health.check, health.check], { concurrency: "unbounded" })
      yield* health.check
      expect(runs).toBe(1)
      yield* TestClock.adjust("4 seconds")
      expect((yield* health.check).probe).toMatchObject({ ok: true, checkedAt: 0 })
      expect(runs).toBe(1)
      yield* TestClock.adjust("1 second")
      expect((yield* health.check).probe).toMatchObject({ ok: true, checkedAt: 5000 })
      expect(runs).toBe(2)
    }))

  it.scoped("draining from the moment the drain starts, down once it has finished", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ drainTimeout: "1 minute" })
      let runs = 0
      const health = yield* PoolHealth.make(pool, { probe: Effect.sync(() => runs++) })
      expect((yield* health.check).status).toBe("ready")
      const held = yield* holdConnection(pool)
      yield* Effect.addFinalizer(() => held.release)
      yield* held.connection
      const drain = yield* Effect.fork(pool.drain)
      yield* settle
      const draining = yield* health.check
      expect(draining).toMatchObject({
        status: "draining",
        reason: "the pool is draining: 1 connection(s) still checked out"
      })
      expect(PoolHealth.isServing(draining)).toBe(false)
      yield* held.release
      yield* Fiber.join(drain)
      expect(yield* health.check).toMatchObject({ status: "down", reason: "the pool is closed" })
      // Neither state asks the server anything.
      expect(runs).toBe(1)
    }))

  it.scoped("down when no connection can be made, ready again once one can", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ acquireTimeout: "10 seconds" })
      yield* factory.setFailPoint({ fail: "connection refused" })
      const health = yield* PoolHealth.make(pool, {
        probe: Effect.scoped(pool.get),
        probeTimeout: "1 second",
        probeTtl: "5 seconds"
      })
      const check = yield* Effect.fork(health.check)
      yield* settle
      yield* TestClock.adjust("1 second")
      const down = yield* Fiber.join(check)
      expect(down.status).toBe("down")
      expect(down.reason).toMatch(/^no connection can be made: TestConnectError: test connection set-up #\d+ failed: connection refused$/)
      expect(PoolHealth.toJson(down)).toMatchObject({
        status: "down",
        connections: { total: expect.any(Number), idle: 0, inUse: 0 },
        lastConnectError: expect.stringMatching(/connection refused$/),
        probe: { ok: false, error: "no answer within 1s" }
      })
      yield* factory.setFailPoint(undefined)
      yield* TestClock.adjust("5 seconds")
      const back = yield* health.check
      expect(back).toMatchObject({ status: "ready", probe: { ok: true } })
    }))

  it.scoped("down when the probe fails; degraded when it is slow", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      const failing = yield* PoolHealth.make(pool, { probe: Effect.fail(new Error("relation \"x\" does not exist")) })
      expect(yield* failing.check).toMatchObject({
        status: "down",
        reason: "the probe failed: Error: relation \"x\" does not exist"
      })
      const slow = yield* PoolHealth.make(pool, { probe: Effect.sleep("3 seconds"), probeTimeout: "2 seconds" })
      const check = yield* Effect.fork(slow.check)
      yield* TestClock.adjust("2 seconds")
      const result = yield* Fiber.join(check)
      expect(result).toMatchObject({ status: "degraded", reason: "the probe gave no answer within 2s" })
      expect(PoolHealth.isServing(result)).toBe(true)
    }))

  it.scoped("degraded while paused, while too many wait, and for a while after a timeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1, acquireTimeout: "1 second" })
      const health = yield* PoolHealth.make(pool, { waitingThreshold: 1, timeoutWindow: "1 minute" })

      yield* pool.clear({ pause: true })
      expect(yield* health.check).toMatchObject({
        status: "degraded",
        reason: "the pool is paused after a clear: checkouts fail until it is made ready"
      })
      yield* pool.ready

      const held = yield* holdConnection(pool)
      yield* held.connection
      const waiters = yield* Effect.forkAll([Effect.scoped(pool.get), Effect.scoped(pool.get)].map(Effect.either))
      yield* settle
      expect(yield* health.check).toMatchObject({
        status: "degraded",
        reason: "2 callers are waiting for a connection (more than 1)"
      })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiters)
      expect(yield* health.check).toMatchObject({
        status: "degraded",
        reason: "checkouts timed out within the last 1m"
      })
      yield* TestClock.adjust("1 minute")
      expect((yield* health.check).status).toBe("ready")
      yield* held.release
    }))

  // A load balancer would pull every busy instance at once if a saturated pool said "down".
  it.scoped("a probe whose checkout times out because every connection is busy makes the pool degraded, not down", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1, acquireTimeout: "1 second" })
      const health = yield* PoolHealth.make(pool, { probe: pool.use(() => Effect.void), probeTimeout: "2 seconds" })
      const held = yield* holdConnection(pool)
      yield* Effect.addFinalizer(() => held.release)
      yield* held.connection
      const check = yield* Effect.fork(health.check)
      yield* settle
      yield* TestClock.adjust("1500 millis")
      const result = yield* Fiber.join(check)
      expect(result.status).toBe("degraded")
      expect(result.probe?.timedOut).toBe(true)
      expect(result.reason).toContain("PoolTimeoutError")
    }))
})
