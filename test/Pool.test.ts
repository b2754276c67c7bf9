import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Layer, Metric, Schedule, Scope, Stream, TestClock } from "effect"
import { Pool, PoolConfig, type PoolError, PoolMetrics } from "../src/index.js"
import { TestFactory } from "../src/testing/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"
import { recordingTracer } from "./utils/tracer.js"

describe("checkout and return", () => {
  it.scoped("closing the checkout's scope returns the connection for reuse", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool()
      const first = yield* Effect.scoped(Effect.tap(pool.get, factory.query))
      const second = yield* Effect.scoped(Effect.tap(pool.get, factory.query))
      expect(second).toBe(first)
      expect(first.queries).toBe(2)
      expect(yield* pool.stats).toMatchObject({ total: 1, idle: 1, inUse: 0, checkouts: 2 })
    }))

  it.scoped("use returns the connection even when the body fails", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      const exit = yield* Effect.exit(pool.use(() => Effect.fail("boom")))
      expect(exit).toStrictEqual(Exit.fail("boom"))
      expect(yield* pool.stats).toMatchObject({ idle: 1, inUse: 0 })
    }))

  it.scoped("lifo reuses the most recent connection, fifo the oldest", () =>
    Effect.gen(function*() {
      for (const reuse of ["lifo", "fifo"] as const) {
        const { pool } = yield* makeTestPool({ reuse, name: reuse })
        const a = yield* holdConnection(pool)
        const b = yield* holdConnection(pool)
        const [ca, cb] = [yield* a.connection, yield* b.connection]
        yield* a.release
        yield* b.release
        const next = yield* Effect.scoped(pool.get)
        expect(next).toBe(reuse === "lifo" ? cb : ca)
      }
    }))

  it.scoped("invalidate closes the connection instead of returning it", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool()
      const connection = yield* Effect.scoped(Effect.tap(pool.get, pool.invalidate))
      expect(connection.open).toBe(false)
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["invalidated"])
      expect(factory.counters()).toMatchObject({ opened: 1, closed: 1 })
    }))

  it.scoped("several typed pools live side by side in one program", () =>
    Effect.gen(function*() {
      class Numbers extends Pool.Tag("test/Numbers")<Numbers, number>() {}
      class Words extends Pool.Tag("test/Words")<Words, string>() {}
      let n = 0
      const layer = Layer.merge(
        Pool.layer(Numbers, { acquire: Effect.sync(() => ++n), name: "numbers" }),
        Pool.layer(Words, { acquire: Effect.succeed("hello"), name: "words" })
      )
      const result = yield* Effect.gen(function*() {
        const numbers = yield* Numbers
        const words = yield* Words
        return [yield* numbers.use(Effect.succeed), yield* words.use(Effect.succeed)] as const
      }).pipe(Effect.provide(layer))
      expect(result).toStrictEqual([1, "hello"])
    }))
})

describe("waiters", () => {
  it.scoped("are served strictly first in, first out", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const order: Array<number> = []
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], (i) =>
        Effect.fork(pool.use(() => Effect.sync(() => order.push(i)))).pipe(Effect.zipLeft(settle)))
      expect((yield* pool.stats).waiting).toBe(5)
      yield* holder.release
      yield* Fiber.joinAll(fibers)
      expect(order).toStrictEqual([1, 2, 3, 4, 5])
    }))

  it.scoped("a new caller never overtakes a waiter, even when a connection comes back at that moment", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const order: Array<string> = []
      const waiter = yield* Effect.fork(pool.use(() => Effect.sync(() => order.push("waiter"))))
      yield* settle
      yield* holder.release
      yield* pool.use(() => Effect.sync(() => order.push("newcomer")))
      yield* Fiber.join(waiter)
      expect(order).toStrictEqual(["waiter", "newcomer"])
    }))

  it.scoped("time out at acquireTimeout with the pool's counts and the last set-up error", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ maxSize: 2, acquireTimeout: "5 seconds" })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      yield* factory.failNext(1000, "connection refused")
      const waiter = yield* Effect.fork(Effect.either(pool.get.pipe(Effect.scoped)))
      yield* TestClock.adjust("4999 millis")
      expect(waiter.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 milli")
      const result = yield* Fiber.join(waiter)
      if (result._tag === "Right") throw new Error("expected a timeout")
      const error = result.left
      expect(error._tag).toBe("PoolTimeoutError")
      if (error._tag !== "PoolTimeoutError") return
      expect(error.counts).toMatchObject({ inUse: 1, waiting: 1, idle: 0 })
      expect(error.message).toContain(`pool "default"`)
      expect(error.message).toContain("in use 1")
      expect(error.message).toContain("connection refused")
      expect(ofType("ConnectionCheckOutFailed").map((e) => e.reason)).toStrictEqual(["timeout"])
      expect((yield* pool.stats).waiting).toBe(0)
      yield* holder.release
    }))

  it.scoped("an interrupted waiter leaves no trace and the next one is served", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const quitter = yield* Effect.fork(Effect.scoped(pool.get))
      const stayer = yield* Effect.fork(pool.use(() => Effect.succeed("served")))
      yield* settle
      yield* Fiber.interrupt(quitter)
      expect((yield* pool.stats).waiting).toBe(1)
      yield* holder.release
      expect(yield* Fiber.join(stayer)).toBe("served")
      expect(yield* pool.stats).toMatchObject({ waiting: 0, inUse: 0, idle: 1, total: 1 })
    }))

  it.scoped("abandoned waiters do not pile up in the queue", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1 })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const survivor = yield* Effect.fork(pool.use(() => Effect.void))
      for (let round = 0; round < 20; round++) {
        const quitters = yield* Effect.forEach(Array.from({ length: 500 }), () => Effect.fork(pool.use(() => Effect.void)))
        yield* settle
        yield* Fiber.interruptAll(quitters)
      }
      // 10,000 waiters came and went; the queue holds the survivor and at most a bounded residue.
      const slots = (pool as unknown as { waiters: { length(): number } }).waiters.length()
      expect(slots).toBeLessThan(200)
      expect((yield* pool.stats).waiting).toBe(1)
      yield* holder.release
      yield* Fiber.join(survivor)
    }))

  it.scoped("maxWaiters bounds the queue", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ maxSize: 1, maxWaiters: 1 })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      const error = yield* Effect.flip(Effect.scoped(pool.get))
      expect(error._tag).toBe("PoolWaitQueueFullError")
      expect(error.message).toContain("maxWaiters")
      yield* holder.release
    }))
})

describe("connection set-up", () => {
  it.scoped("never runs more than maxConnecting set-ups at once nor exceeds maxSize", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ maxSize: 6, maxConnecting: 2, connectDelay: "100 millis" })
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.fork(pool.use(() => Effect.sleep("1 second"))))
      yield* settle
      expect(factory.counters().connecting).toBe(2)
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect(factory.counters()).toMatchObject({ opened: 2, connecting: 2 })
      yield* TestClock.adjust("5 seconds")
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.joinAll(fibers)
      expect(factory.counters()).toMatchObject({ maxConnecting: 2, maxOpen: 6, opened: 6 })
    }))

  it.scoped("a set-up outlives the waiter that asked for it and serves the next caller", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ connectDelay: "1 second" })
      const quitter = yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      yield* Fiber.interrupt(quitter)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* pool.stats).toMatchObject({ idle: 1, total: 1 })
      yield* Effect.scoped(pool.get)
      expect(factory.counters().opened).toBe(1)
    }))

  it.scoped("failed set-ups are retried on the schedule until one succeeds", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ retrySchedule: Schedule.spaced("1 second") })
      yield* factory.failNext(3)
      const fiber = yield* Effect.fork(pool.use((c) => Effect.succeed(c.id)))
      yield* settle
      expect(factory.counters()).toMatchObject({ attempts: 1, failed: 1 })
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(1)
      expect(factory.counters()).toMatchObject({ attempts: 4, failed: 3 })
      expect((yield* pool.stats).connectFailures).toBe(3)
    }))

  it.scoped("when the retry schedule gives up, the oldest waiter gets the set-up error", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ retrySchedule: Schedule.recurs(1) })
      yield* factory.failNext(2, "bad password")
      const error = yield* Effect.flip(Effect.scoped(pool.get))
      expect(error).toBeInstanceOf(TestFactory.TestConnectError)
      expect(error.message).toContain("bad password")
      expect(ofType("ConnectionCheckOutFailed").map((e) => e.reason)).toStrictEqual(["connectionError"])
    }))

  it.scoped("createTimeout bounds a set-up that hangs", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({
        createTimeout: "1 second",
        connectDelay: "1 hour",
        retrySchedule: Schedule.recurs(0)
      })
      const fiber = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ConnectTimeoutError")
      expect(error.message).toContain("createTimeout")
      expect(factory.counters().opened).toBe(0)
      // The factory's acquire is uninterruptible: it lands late, in a scope already closed, and is closed at once.
      yield* TestClock.adjust("1 hour")
      yield* settle
      expect(factory.counters()).toMatchObject({ opened: 1, closed: 1, open: 0 })
      expect((yield* pool.stats).total).toBe(0)
    }))
})

describe("connection retirement", () => {
  it.scoped("maintenance closes connections idle longer than idleTimeout", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ idleTimeout: "1 minute", maintenanceInterval: "10 seconds" })
      yield* Effect.scoped(pool.get)
      yield* TestClock.adjust("50 seconds")
      expect(factory.counters().closed).toBe(0)
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(factory.counters().closed).toBe(1)
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["idle"])
    }))

  it.scoped("maxLifetime retires a connection, earlier by at most the jitter", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({
        maxLifetime: "10 minutes",
        lifetimeJitter: "1 minute",
        idleTimeout: "1 hour",
        maintenanceInterval: "30 seconds"
      })
      yield* Effect.scoped(pool.get)
      yield* TestClock.adjust("8 minutes")
      yield* settle
      expect(ofType("ConnectionClosed")).toHaveLength(0)
      yield* TestClock.adjust("2 minutes")
      yield* settle
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["lifetime"])
    }))

  it.scoped("maxUses retires a connection after that many checkouts", () =>
    Effect.gen(function*() {
      const { factory, ofType, pool } = yield* makeTestPool({ maxUses: 3 })
      for (let i = 0; i < 4; i++) yield* Effect.scoped(pool.get)
      expect(factory.counters().opened).toBe(2)
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["maxUses"])
    }))

  it.scoped("validate runs only after the connection sat idle, and a broken one is replaced", () =>
    Effect.gen(function*() {
      let validations = 0
      const validating = yield* makeTestPool({
        name: "validating",
        validateAfterIdle: "5 seconds",
        validate: (c) => Effect.sync(() => validations++).pipe(Effect.as(!c.broken))
      })
      const first = yield* Effect.scoped(validating.pool.get)
      yield* Effect.scoped(validating.pool.get)
      expect(validations).toBe(0)
      yield* validating.factory.breakConnection(first)
      yield* TestClock.adjust("5 seconds")
      const second = yield* Effect.scoped(validating.pool.get)
      expect(validations).toBe(1)
      expect(second).not.toBe(first)
      expect(first.open).toBe(false)
    }))

  it.scoped("reset on return retires a connection it reports broken", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      const pool = yield* Pool.make({ acquire: factory.acquire, reset: factory.reset })
      const first = yield* Effect.scoped(Effect.tap(pool.get, factory.breakConnection))
      expect(first.open).toBe(false)
      const second = yield* Effect.scoped(pool.get)
      expect(second).not.toBe(first)
    }))

  it.scoped("minIdle is refilled by the maintenance within maxConnecting", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ minIdle: 4, maxConnecting: 2, connectDelay: "1 second" })
      yield* settle
      expect(factory.counters().connecting).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* pool.stats).toMatchObject({ idle: 4, total: 4 })
      expect(factory.counters().maxConnecting).toBe(2)
    }))

  it.scoped("leak detection reports a connection held too long, with where it was checked out", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({ leakDetectionThreshold: "30 seconds" })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      yield* TestClock.adjust("29 seconds")
      expect(ofType("ConnectionLeakSuspected")).toHaveLength(0)
      yield* TestClock.adjust("1 second")
      yield* settle
      const [leak] = ofType("ConnectionLeakSuspected")
      expect(leak?.connectionId).toBe(1)
      expect(leak?.checkedOutAt).toMatch(/by fiber #\d+/)
      yield* holder.release
    }))
})

describe("generations", () => {
  it.scoped("clear closes idle connections now, in-use ones on return, and fails waiters retryably", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({ maxSize: 2 })
      const idle = yield* Effect.scoped(pool.get)
      const a = yield* holdConnection(pool)
      const b = yield* holdConnection(pool)
      yield* a.connection
      yield* b.connection
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* pool.clear({ reason: "server restarted" })
      const error = yield* Fiber.join(waiter)
      expect(error._tag).toBe("PoolClearedError")
      expect(error.message).toContain("server restarted")
      expect(idle.open || (yield* a.connection) === idle).toBeTruthy()
      yield* a.release
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["stale"])
      expect((yield* pool.stats).generation).toBe(1)
      const fresh = yield* Effect.scoped(pool.get)
      expect(fresh.id).toBe(3)
      yield* b.release
    }))

  it.scoped("clear with interruptInUse closes connections in use at once", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      const holder = yield* holdConnection(pool)
      const connection = yield* holder.connection
      yield* pool.clear({ interruptInUse: true })
      yield* settle
      expect(connection.open).toBe(false)
      yield* holder.release
      expect(yield* pool.stats).toMatchObject({ total: 0, inUse: 0 })
    }))

  it.scoped("a paused pool refuses checkouts until ready", () =>
    Effect.gen(function*() {
      const { ofType, pool } = yield* makeTestPool({ startPaused: true })
      const error = yield* Effect.flip(Effect.scoped(pool.get))
      expect(error._tag).toBe("PoolClearedError")
      yield* pool.ready
      yield* Effect.scoped(pool.get)
      yield* pool.clear({ pause: true })
      expect((yield* Effect.flip(Effect.scoped(pool.get)))._tag).toBe("PoolClearedError")
      expect(ofType("ConnectionPoolReady")).toHaveLength(1)
    }))
})

describe("drain", () => {
  it.effect("closing the layer fails waiters, closes idle, awaits in-use up to drainTimeout, then closes everything", () =>
    Effect.gen(function*() {
      const poolScope = yield* Scope.make()
      const { factory, ofType, pool } = yield* makeTestPool({ maxSize: 2, drainTimeout: "10 seconds" }).pipe(
        Scope.extend(poolScope)
      )
      yield* Effect.scoped(pool.get)
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const stuck = yield* holdConnection(pool)
      yield* stuck.connection
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(poolScope, Exit.void))
      yield* settle
      expect((yield* Fiber.join(waiter))._tag).toBe("PoolClosedError")
      expect((yield* Effect.flip(Effect.scoped(pool.get)))._tag).toBe("PoolClosedError")
      expect(ofType("ConnectionPoolClosed")).toHaveLength(1)
      yield* holder.release
      expect(closing.unsafePoll()).toBeNull()
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      expect(factory.counters()).toMatchObject({ opened: 2, open: 0, closed: 2 })
      expect(ofType("ConnectionClosed").map((e) => e.reason)).toStrictEqual(["poolClosed", "poolClosed"])
      yield* stuck.release
      expect(yield* pool.stats).toMatchObject({ total: 0, inUse: 0, idle: 0, closed: true })
    }))
})

describe("robustness", () => {
  it.effect("a drain whose caller stops waiting still finishes, and later drains see it finished", () =>
    Effect.gen(function*() {
      const poolScope = yield* Scope.make()
      const { factory, pool } = yield* makeTestPool({ drainTimeout: "5 seconds" }).pipe(Scope.extend(poolScope))
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const impatient = yield* Effect.fork(pool.drain)
      yield* settle
      yield* Fiber.interrupt(impatient)
      yield* holder.release
      yield* settle
      yield* Scope.close(poolScope, Exit.void)
      expect(factory.counters().open).toBe(0)
      expect((yield* pool.stats).closed).toBe(true)
    }))

  it.scoped("a listener that throws does not stall a hand-off", () =>
    Effect.gen(function*() {
      const factory = yield* TestFactory.make()
      const pool = yield* Pool.make({
        acquire: factory.acquire,
        maxSize: 1,
        onEvent: (event) => {
          if (event._tag === "ConnectionCheckedOut") throw new Error("listener bug")
        }
      })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const waiter = yield* Effect.fork(pool.use(() => Effect.succeed("served")))
      yield* settle
      yield* holder.release
      expect(yield* Fiber.join(waiter)).toBe("served")
    }))

  it.scoped("a timeout after a successful set-up does not blame an old set-up failure", () =>
    Effect.gen(function*() {
      const { factory, pool } = yield* makeTestPool({ maxSize: 1, acquireTimeout: "1 second", retrySchedule: Schedule.spaced("10 millis") })
      yield* factory.failNext(1, "connection refused")
      const holder = yield* holdConnection(pool)
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* holder.connection
      const waiter = yield* Effect.fork(Effect.flip(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(waiter)
      expect(error._tag).toBe("PoolTimeoutError")
      expect(error.message).not.toContain("connection refused")
      yield* holder.release
    }))

  it.scoped("invalidating an idle connection closes it at once", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      const connection = yield* Effect.scoped(pool.get)
      yield* pool.invalidate(connection)
      expect(connection.open || (yield* pool.stats).idle === 0).toBe(true)
      yield* settle
      expect(connection.open).toBe(false)
      expect((yield* Effect.scoped(pool.get)).id).toBe(2)
    }))

  it.scoped("clear with interruptInUse closes connections of every older generation", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool()
      const holder = yield* holdConnection(pool)
      const connection = yield* holder.connection
      yield* pool.clear()
      yield* pool.clear({ interruptInUse: true })
      yield* settle
      expect(connection.open).toBe(false)
      yield* holder.release
    }))

  it.effect("a layer over Effect.acquireRelease requires nothing", () =>
    Effect.sync(() => {
      class Db extends Pool.Tag("test/ScopedDb")<Db, { readonly id: number }>() {}
      const layer: Layer.Layer<Db, PoolError.PoolConfigError> = Pool.layer(Db, {
        acquire: Effect.acquireRelease(Effect.succeed({ id: 1 }), () => Effect.void)
      })
      expect(Layer.isLayer(layer)).toBe(true)
    }))
})

describe("configuration", () => {
  it.effect("bad options fail when the layer is built, listing every problem", () =>
    Effect.gen(function*() {
      class Db extends Pool.Tag("test/Db")<Db, number>() {}
      const error = yield* Layer.build(Pool.layer(Db, {
        acquire: Effect.succeed(1),
        name: "orders",
        maxSize: 2,
        minIdle: 5,
        maxConnecting: 0,
        acquireTimeout: "-1 seconds" as never,
        idleTimeout: -5
      })).pipe(Effect.scoped, Effect.flip)
      expect(error._tag).toBe("PoolConfigError")
      expect(error.problems).toHaveLength(4)
      expect(error.message).toContain(`pool "orders"`)
      expect(error.message).toContain("minIdle (5) must not exceed maxSize (2)")
      expect(error.message).toContain("maxConnecting")
      expect(error.message).toContain("idleTimeout must not be negative")
      expect(error.message).toContain("acquireTimeout must not be negative (got -1 seconds)")
    }))

  it.effect("layerConfig reads settings from Effect Config", () =>
    Effect.gen(function*() {
      class Db extends Pool.Tag("test/ConfiguredDb")<Db, number>() {}
      const provider = ConfigProvider.fromMap(new Map([["DB_POOL_MAX_SIZE", "3"], ["DB_POOL_ACQUIRE_TIMEOUT", "2 seconds"]]), {
        pathDelim: "_"
      })
      const options = yield* Effect.gen(function*() {
        const pool = yield* Db
        return pool.options
      }).pipe(
        Effect.provide(Pool.layerConfig(Db, { acquire: Effect.succeed(1) }, PoolConfig.config("DB_POOL"))),
        Effect.withConfigProvider(provider)
      )
      expect(options).toMatchObject({ maxSize: 3, acquireTimeout: 2000, minIdle: 0 })
    }))
})

describe("observability", () => {
  it.scoped("events stream in CMAP order with durations", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ connectDelay: "20 millis" })
      const collected = yield* pool.events.pipe(Stream.take(5), Stream.runCollect, Effect.fork)
      yield* settle
      const checkout = yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      yield* TestClock.adjust("20 millis")
      yield* Fiber.join(checkout)
      const events = [...(yield* Fiber.join(collected))]
      expect(events.map((e) => e._tag)).toStrictEqual([
        "ConnectionCheckOutStarted",
        "ConnectionCreated",
        "ConnectionReady",
        "ConnectionCheckedOut",
        "ConnectionCheckedIn"
      ])
      expect(events[3]).toMatchObject({ connectionId: 1, duration: 20, pool: "default" })
    }))

  it.scoped("a checkout that waited at least traceWaitsOver records a span over the wait", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const { pool } = yield* makeTestPool({ maxSize: 1, traceWaitsOver: "10 millis" })
      const holder = yield* holdConnection(pool)
      yield* holder.connection
      const quick = yield* Effect.fork(Effect.scoped(pool.get).pipe(Effect.withTracer(tracer)))
      yield* settle
      yield* TestClock.adjust("9 millis")
      yield* holder.release
      yield* Fiber.join(quick)
      expect(spans).toHaveLength(0)
      const slow = yield* holdConnection(pool)
      yield* slow.connection
      const waiting = yield* Effect.fork(Effect.scoped(pool.get).pipe(Effect.withTracer(tracer)))
      yield* settle
      yield* TestClock.adjust("25 millis")
      yield* slow.release
      yield* Fiber.join(waiting)
      expect(spans.map((span) => span.name)).toStrictEqual(["lifeguard.pool.checkout"])
      expect(Number(spans[0]!.end - spans[0]!.start) / 1e6).toBe(25)
      expect(spans[0]!.attributes.get("lifeguard.pool")).toBe("default")
    }))

  it.scoped("metrics are tagged with the pool's name", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ name: "metered" })
      yield* Effect.scoped(pool.get)
      yield* Effect.scoped(pool.get)
      const checkouts = yield* Metric.value(PoolMetrics.checkouts.pipe(Metric.tagged(PoolMetrics.poolName, "metered")))
      const idle = yield* Metric.value(
        PoolMetrics.connectionCount.pipe(
          Metric.tagged(PoolMetrics.poolName, "metered"),
          Metric.tagged(PoolMetrics.state, "idle")
        )
      )
      expect(checkouts.count).toBe(2)
      expect(idle.count).toBe(1)
    }))
})
