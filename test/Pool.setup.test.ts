import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Fiber, FiberRef, HashMap, HashSet, Layer, Logger, Schedule, Scope, TestClock } from "effect"
import { Pool, type PoolError } from "../src/index.js"
import { TestFactory } from "../src/testing/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

const permanent = (error: TestFactory.TestConnectError) => error.reason !== "bad password"

describe("set-up errors retrying cannot fix (isRetryable)", () => {
  it.scoped("fail every waiting checkout at once, and no retry loop keeps running", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ isRetryable: permanent, maxConnecting: 1 })
      yield* factory.failNext(1, "bad password")
      const waiters = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Effect.flip(Effect.scoped(pool.get))))
      yield* settle
      const errors = yield* Fiber.joinAll(waiters)
      for (const error of errors) {
        expect(error).toBeInstanceOf(TestFactory.TestConnectError)
        expect(error.message).toContain("bad password")
      }
      expect(ofType("ConnectionCheckOutFailed").map((e) => e.reason)).toStrictEqual([
        "connectionError",
        "connectionError",
        "connectionError"
      ])
      expect(yield* pool.stats).toMatchObject({ waiting: 0, pending: 0, total: 0 })
      // No set-up is left retrying in the background.
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(factory.counters().attempts).toBe(1)
    }))

  it.scoped("a later checkout tries again, once, and succeeds when the cause is fixed", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ isRetryable: permanent })
      yield* factory.failNext(2, "bad password")
      expect((yield* Effect.flip(Effect.scoped(pool.get)))._tag).toBe("TestConnectError")
      expect(factory.counters().attempts).toBe(1)
      expect((yield* Effect.flip(Effect.scoped(pool.get)))._tag).toBe("TestConnectError")
      expect(factory.counters().attempts).toBe(2)
      // The password was fixed: the next checkout gets a connection.
      const connection = yield* Effect.scoped(pool.get)
      expect(connection.open).toBe(true)
      expect(factory.counters().attempts).toBe(3)
    }))

  it.scoped("retryable errors are still retried until acquireTimeout", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        isRetryable: permanent,
        acquireTimeout: "5 seconds",
        retrySchedule: Schedule.spaced("1 second")
      })
      yield* factory.failNext(1000, "connection refused")
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(waiter)
      expect(error._tag).toBe("PoolTimeoutError")
      expect(factory.counters().attempts).toBeGreaterThanOrEqual(5)
    }))

  it.scoped("a ConnectTimeoutError is always retried, whatever isRetryable says", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        isRetryable: () => false,
        acquireTimeout: "2 hours",
        createTimeout: "1 second",
        retrySchedule: Schedule.spaced("1 second")
      })
      yield* factory.setFailPoint({ times: 1, delay: "1 hour" })
      const fiber = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect((yield* pool.stats).connectFailures).toBe(1)
      // The timed-out attempt holds its slot until it ends; then the set-up tries again.
      yield* TestClock.adjust("1 hour")
      yield* settle
      expect(fiber.unsafePoll()).not.toBeNull()
      expect(yield* Fiber.join(fiber)).toBeGreaterThan(0)
      expect(factory.counters().attempts).toBe(2)
    }))

  it.scoped("minIdle is not refilled in a busy loop after a permanent error, only at the next maintenance", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      yield* factory.failNext(1000, "bad password")
      yield* Pool.make({ acquire: factory.acquire, isRetryable: permanent, minIdle: 2, maintenanceInterval: "10 seconds" })
      yield* settle
      const first = factory.counters().attempts
      expect(first).toBeGreaterThan(0)
      expect(first).toBeLessThanOrEqual(2)
      yield* TestClock.adjust("5 seconds")
      yield* settle
      expect(factory.counters().attempts).toBe(first)
      yield* TestClock.adjust("5 seconds")
      yield* settle
      expect(factory.counters().attempts).toBeGreaterThan(first)
      expect(factory.counters().attempts).toBeLessThanOrEqual(first + 2)
    }))
})

describe("start-up check (initializationFailTimeout)", () => {
  class Db extends Pool.Tag("test/StartupDb")<Db, TestFactory.TestConnection, TestFactory.TestConnectError>() {}

  it.scoped("opens max(1, minIdle) connections while the pool is built; they stay idle", () =>
    Effect.gen(function*() {
      for (const minIdle of [0, 3]) {
        const factory = yield* TestFactory.make()
        const pool = yield* Pool.make({
          acquire: factory.acquire,
          minIdle,
          name: `min${minIdle}`,
          initializationFailTimeout: "5 seconds"
        })
        const stats = yield* pool.stats
        expect(stats).toMatchObject({ idle: Math.max(1, minIdle), total: Math.max(1, minIdle) })
        expect(factory.counters().opened).toBe(Math.max(1, minIdle))
      }
    }))

  it.effect("a permanent error fails the layer at once with that error", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      yield* factory.failNext(1000, "bad password")
      const layer: Layer.Layer<
        Db,
        PoolError.PoolConfigError | TestFactory.TestConnectError | PoolError.ConnectTimeoutError
      > = Pool.layer(Db, { acquire: factory.acquire, isRetryable: permanent, initializationFailTimeout: "30 seconds" })
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
      expect(exit).toMatchObject({ _tag: "Failure" })
      const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
      expect(error._tag).toBe("TestConnectError")
      expect(error.message).toContain("bad password")
      expect(factory.counters()).toMatchObject({ attempts: 2, open: 0 })
    }))

  it.effect("retryable errors are retried until the deadline, then the last one fails the layer", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      yield* factory.failNext(1000, "connection refused")
      const building = yield* Effect.fork(Effect.flip(Effect.scoped(Layer.build(Pool.layer(Db, {
        acquire: factory.acquire,
        retrySchedule: Schedule.spaced("1 second"),
        initializationFailTimeout: "5 seconds"
      })))))
      yield* settle
      yield* TestClock.adjust("4 seconds")
      yield* settle
      expect(building.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(building)
      expect(error._tag).toBe("TestConnectError")
      expect(error.message).toContain("connection refused")
      yield* TestClock.adjust("1 minute")
      expect(factory.counters()).toMatchObject({ open: 0, connecting: 0 })
    }))

  it.effect("a set-up that hangs fails the layer with ConnectTimeoutError at the deadline", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make({ connectDelay: "1 hour" })
      const building = yield* Effect.fork(Effect.flip(Effect.scoped(Layer.build(Pool.layer(Db, {
        acquire: factory.acquire,
        createTimeout: "1 minute",
        initializationFailTimeout: "2 seconds",
        // The set-up never lands under the test clock: the failed layer's drain does not wait for it.
        drainTimeout: 0
      })))))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(building)
      expect(error._tag).toBe("ConnectTimeoutError")
      expect(error.message).toContain("initializationFailTimeout (2s)")
    }))

  it.effect("a server that comes up within the deadline lets the layer build", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      yield* factory.failNext(2, "connection refused")
      const scope = yield* Scope.make()
      const building = yield* Effect.fork(Pool.make({
        acquire: factory.acquire,
        retrySchedule: Schedule.spaced("1 second"),
        initializationFailTimeout: "5 seconds"
      }).pipe(Scope.extend(scope)))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      const pool = yield* Fiber.join(building)
      expect(yield* pool.stats).toMatchObject({ idle: 1, total: 1, connectFailures: 2 })
      yield* Scope.close(scope, Exit.void)
    }))
})

describe("timeout advice", () => {
  const timeoutOf = <A, E>(pool: Pool.Pool<A, E>, wait: Duration.DurationInput) =>
    Effect.gen(function*() {
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust(wait)
      const error = yield* Fiber.join(waiter)
      if (!(typeof error === "object" && error !== null && "_tag" in error && error._tag === "PoolTimeoutError")) {
        throw new Error(`expected a PoolTimeoutError, got ${String(error)}`)
      }
      return error as PoolError.PoolTimeoutError
    })

  it.scoped("every connection busy: raise maxSize or return connections sooner", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1, acquireTimeout: "1 second" })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const error = yield* timeoutOf(pool, "1 second")
      expect(error.message).toContain("every connection is busy; raise maxSize or return connections sooner")
      expect(error.message).not.toContain("not reachable")
      yield* holder.release
    }))

  it.scoped("no connection could be made: the server is not reachable, with the last error", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        acquireTimeout: "1 second",
        createTimeout: "500 millis",
        retrySchedule: Schedule.spaced("100 millis")
      })
      yield* factory.failNext(1000, "connect ECONNREFUSED 127.0.0.1:5432")
      const error = yield* timeoutOf(pool, "1 second")
      expect(error.message).toContain("the server is not reachable: test connection set-up")
      expect(error.message).toContain("ECONNREFUSED 127.0.0.1:5432")
      expect(error.message).not.toContain("createTimeout")
    }))

  it.scoped("createTimeout longer than acquireTimeout: a hint to lower it", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({
        acquireTimeout: "1 second",
        createTimeout: "10 seconds",
        connectDelay: "1 hour",
        drainTimeout: 0
      })
      const error = yield* timeoutOf(pool, "1 second")
      expect(error.message).toContain("createTimeout (10s) exceeds acquireTimeout")
      expect(error.message).toContain("being set up more slowly than acquireTimeout allows")
    }))
})

describe("CMAP conformance", () => {
  it.scoped("a checkout blocked by maxConnecting is served by a minIdle connection as it lands", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({ minIdle: 2, maxConnecting: 1, connectDelay: "100 millis" })
      yield* settle
      expect(ofType("ConnectionCreated")).toHaveLength(1)
      const checkout = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      // No set-up of its own: maxConnecting is taken by the minIdle one.
      expect(ofType("ConnectionCreated")).toHaveLength(1)
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(checkout)).toBe(1)
      // Let the refills land before the pool closes.
      yield* TestClock.adjust("1 second")
    }))

  it.scoped("clear with interruptInUse stops set-ups in flight, each reported closed before the waiter fails", () =>
    Effect.gen(function*() {
      const { events, factory, pool } = yield* makeTestPool({ connectDelay: "1 second" })
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      expect((yield* pool.stats).pending).toBe(1)
      yield* pool.clear({ interruptInUse: true })
      expect((yield* Fiber.join(waiter))._tag).toBe("PoolClearedError")
      const order = events.filter((e) => e._tag === "ConnectionClosed" || e._tag === "ConnectionCheckOutFailed")
      expect(order.map((e) => e._tag === "ConnectionClosed" ? `closed ${e.reason}` : `failed ${e.reason}`))
        .toStrictEqual(["closed stale", "failed connectionError"])
      // The factory's acquire cannot be interrupted: it lands, is closed, and reports nothing more.
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(factory.counters()).toMatchObject({ opened: 1, open: 0 })
      expect(events.filter((e) => e._tag === "ConnectionClosed")).toHaveLength(1)
      expect(yield* pool.stats).toMatchObject({ total: 0, pending: 0 })
    }))

  it.scoped("a background set-up for minIdle that gives up clears the pool", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      yield* factory.failNext(1, "connection refused")
      const events: Array<string> = []
      const pool = yield* Pool.make({
        acquire: factory.acquire,
        minIdle: 1,
        retrySchedule: Schedule.stop,
        startPaused: true,
        onEvent: (event) => events.push(event._tag)
      })
      yield* pool.ready
      yield* settle
      expect(events).toContain("ConnectionPoolCleared")
      expect(yield* pool.stats).toMatchObject({ generation: 1, paused: true })
    }))
})

describe("set-up failure logs", () => {
  it.scoped("one line each, the error as an annotation, repeats summarised at most every 30 seconds", () =>
    Effect.gen(function*() {
      const lines: Array<{ message: string; error: unknown }> = []
      const logger = Logger.make(({ annotations, message }) => {
        const text = Array.isArray(message) ? message.join(" ") : String(message)
        if (text.includes("set-up failed")) lines.push({ message: text, error: HashMap.get(annotations, "error") })
      })
      const { factory, pool } = yield* Effect.locally(FiberRef.currentLoggers, HashSet.make(logger))(makeTestPool({
        acquireTimeout: "2 minutes",
        retrySchedule: Schedule.spaced("1 second")
      }))
      yield* factory.failNext(1000, "connect ECONNREFUSED 127.0.0.1:5432")
      const waiter = yield* Effect.fork(Effect.exit(Effect.scoped(pool.get)))
      yield* settle
      for (let i = 0; i < 100; i++) yield* TestClock.adjust("1 second")
      expect(factory.counters().failed).toBeGreaterThanOrEqual(100)
      expect(lines.length).toBeGreaterThanOrEqual(2)
      expect(lines.length).toBeLessThanOrEqual(5)
      expect(lines[0]!.message).toBe("connection set-up failed")
      expect(lines[1]!.message).toMatch(/^connection set-up failed again, \d+ more time\(s\) since the last report$/)
      for (const line of lines) {
        expect(line.message).not.toContain("\n")
        expect(String(line.error)).toContain("ECONNREFUSED 127.0.0.1:5432")
      }
      yield* Fiber.interrupt(waiter)
    }))
})
