import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Metric, Option, Schema, Scope, Stream, TestClock } from "effect"
import { PoolMetrics } from "../../src/index.js"
import { MongoPool } from "../../src/mongodb/index.js"
import type { PoolEvent } from "../../src/PoolEvent.js"
import { capabilities, sharedServer, uniqueDb } from "../utils/ferretdb.js"

const server = await sharedServer()
afterAll(() => server.stop())
const caps = await capabilities(server.url)

const withPool = (options: Partial<MongoPool.Options> = {}) =>
  MongoPool.layer({ url: server.url, database: uniqueDb("lg"), ...options })

const User = Schema.Struct({ _id: Schema.Number, name: Schema.String, joined: Schema.Date })
const users = MongoPool.collection("users", User)

describe("leases and the collection helper", () => {
  it.live("CRUD through the typed helper, decoding and encoding with the Schema", () =>
    Effect.gen(function*() {
      const joined = new Date("2024-01-02T03:04:05.000Z")
      yield* users.insertOne({ _id: 1, name: "Ada", joined })
      yield* users.insertMany([{ _id: 2, name: "Grace", joined }, { _id: 3, name: "Edsger", joined }])
      const ada = yield* users.findOne({ _id: 1 })
      expect(Option.getOrThrow(ada)).toStrictEqual({ _id: 1, name: "Ada", joined })
      // Stored encoded: the Schema's Date is an ISO string in the document.
      const raw = yield* MongoPool.collection("users").findOne({ _id: 1 })
      expect(Option.getOrThrow(raw).joined).toBe("2024-01-02T03:04:05.000Z")
      expect(Option.isNone(yield* users.findOne({ _id: 99 }))).toBe(true)
      expect((yield* users.find({}, { sort: { _id: 1 } })).map((u) => u.name)).toStrictEqual(["Ada", "Grace", "Edsger"])
      expect((yield* users.updateOne({ _id: 2 }, { $set: { name: "Grace H." } })).modifiedCount).toBe(1)
      expect((yield* users.updateMany({}, { $set: { team: "a" } })).modifiedCount).toBe(3)
      expect(yield* users.countDocuments({ team: "a" })).toBe(3)
      const grouped = yield* users.aggregate([{ $group: { _id: "$team", n: { $sum: 1 } } }])
      expect(grouped).toStrictEqual([{ _id: "a", n: 3 }])
      expect((yield* users.deleteOne({ _id: 3 })).deletedCount).toBe(1)
      expect((yield* users.deleteMany({})).deletedCount).toBe(2)
      const pool = (yield* MongoPool.MongoPool).pool
      expect((yield* pool.stats).inUse).toBe(0)
    }).pipe(Effect.provide(withPool())))

  it.live("a document that does not match the Schema is a ParseError; a duplicate key its own error", () =>
    Effect.gen(function*() {
      yield* MongoPool.collection("users").insertOne({ _id: 7, name: 42 })
      const decode = yield* Effect.flip(users.findOne({ _id: 7 }))
      expect(decode._tag).toBe("ParseError")
      const duplicate = yield* Effect.flip(MongoPool.collection("users").insertOne({ _id: 7 }))
      expect(duplicate._tag).toBe("MongoDuplicateKeyError")
      expect(duplicate.message).toContain(`pool "mongodb"`)
      expect((duplicate as MongoPool.MongoDuplicateKeyError).code).toBe(11000)
    }).pipe(Effect.provide(withPool())))

  it.live("a server error keeps its code and says it is not retryable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(MongoPool.promise((db) => db.command({ noSuchCommand: 1 })))
      expect(error._tag).toBe("MongoOperationError")
      const failure = error as MongoPool.MongoOperationError
      expect(failure.code).toBe(59)
      expect(failure.kind).toBe("server")
      expect(failure.retryable).toBe(false)
      expect(failure.message).toContain("command failed (code 59")
    }).pipe(Effect.provide(withPool())))

  it.live("withLease runs a unit of work on one lease and one session", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      const sessions = new Set<unknown>()
      yield* MongoPool.withLease(
        Effect.gen(function*() {
          for (let i = 0; i < 3; i++) {
            yield* MongoPool.promise((db, { session, signal }) => {
              sessions.add(session)
              void signal
              return db.collection("c").insertOne({ i }, { session })
            })
          }
          expect((yield* mongo.pool.stats).inUse).toBe(1)
        })
      )
      expect(sessions.size).toBe(1)
      const [session] = [...sessions] as Array<{ readonly hasEnded: boolean }>
      expect(session!.hasEnded).toBe(true)
      expect((yield* mongo.pool.stats).inUse).toBe(0)
      expect(yield* MongoPool.collection("c").countDocuments()).toBe(3)
    }).pipe(Effect.provide(withPool())))
})

describe("limits", () => {
  it.live("100 fibers share 10 leases: never more than 10 leases nor 10 driver connections", () =>
    Effect.gen(function*() {
      const events: Array<PoolEvent & { readonly address?: string }> = []
      let leases = 0
      let maxLeases = 0
      let sockets = 0
      let maxSockets = 0
      const onEvent = (event: MongoPool.MongoPoolEvent) => {
        events.push(event)
        const driver = "address" in event
        if (event._tag === "ConnectionCheckedOut" && !driver) maxLeases = Math.max(maxLeases, ++leases)
        if (event._tag === "ConnectionCheckedIn" && !driver) leases--
        if (event._tag === "ConnectionCreated" && driver) maxSockets = Math.max(maxSockets, ++sockets)
        if (event._tag === "ConnectionClosed" && driver) sockets--
      }
      yield* Effect.gen(function*() {
        const items = MongoPool.collection("items")
        yield* items.insertOne({ _id: 1, n: 0 })
        yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) =>
            Effect.gen(function*() {
              for (let k = 0; k < 5; k++) {
                if ((i + k) % 2 === 0) yield* items.findOne({ _id: 1 })
                else yield* items.updateOne({ _id: 1 }, { $inc: { n: 1 } })
              }
            }),
          { concurrency: "unbounded", discard: true }
        )
        const mongo = yield* MongoPool.MongoPool
        const stats = yield* mongo.pool.stats
        expect(stats.waits).toBeGreaterThan(0)
        const byServer = yield* mongo.driverConnections
        expect(byServer.reduce((n, s) => n + s.idle + s.inUse + s.pending, 0)).toBeLessThanOrEqual(10)
      }).pipe(Effect.provide(withPool({ maxSize: 10, onEvent })))
      expect(maxLeases).toBeGreaterThan(1)
      expect(maxLeases).toBeLessThanOrEqual(10)
      expect(maxSockets).toBeGreaterThan(0)
      expect(maxSockets).toBeLessThanOrEqual(10)
      // The driver's CMAP events came through under lifeguard's names, with the server's address.
      const driverTypes = new Set(events.filter((e) => "address" in e).map((e) => e._tag))
      for (const type of ["ConnectionPoolCreated", "ConnectionPoolReady", "ConnectionCreated", "ConnectionReady", "ConnectionCheckOutStarted", "ConnectionCheckedOut", "ConnectionCheckedIn", "ConnectionClosed", "ConnectionPoolClosed"]) {
        expect(driverTypes, type).toContain(type)
      }
      expect(events.find((e) => "address" in e)!.address).toBe(server.url.replace(/^mongodb:\/\/|\/$/g, ""))
    }))

  it.live("the driver's events reach the events stream and the metrics, tagged with the server's address", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      const address = server.url.replace(/^mongodb:\/\/|\/$/g, "")
      const seen = yield* mongo.events.pipe(
        Stream.filter((event) => "address" in event && event._tag === "ConnectionCheckedIn"),
        Stream.take(3),
        Stream.runCollect,
        Effect.fork
      )
      yield* Effect.yieldNow()
      yield* Effect.repeatN(MongoPool.promise((db) => db.command({ ping: 1 })), 4)
      const events = Chunk.toReadonlyArray(yield* Fiber.join(seen).pipe(Effect.timeout("5 seconds")))
      expect(events).toHaveLength(3)
      for (const event of events) expect((event as MongoPool.DriverEvent).address).toBe(address)
      const [host, port] = address.split(":") as [string, string]
      const checkouts = yield* Metric.value(
        PoolMetrics.checkouts.pipe(
          Metric.tagged(PoolMetrics.poolName, "events-test"),
          Metric.tagged("server.address", host),
          Metric.tagged("server.port", port)
        )
      )
      expect(checkouts.count).toBeGreaterThanOrEqual(5)
      const leases = yield* Metric.value(PoolMetrics.checkouts.pipe(Metric.tagged(PoolMetrics.poolName, "events-test")))
      expect(leases.count).toBeGreaterThanOrEqual(5)
      const idle = yield* Metric.value(
        PoolMetrics.connectionCount.pipe(
          Metric.tagged(PoolMetrics.poolName, "events-test"),
          Metric.tagged("server.address", host),
          Metric.tagged("server.port", port),
          Metric.tagged(PoolMetrics.state, "idle")
        )
      )
      expect(idle.count).toBeGreaterThan(0)
    }).pipe(Effect.provide(withPool({ name: "events-test" }))))

  it.scoped("acquireTimeout when every lease is held (TestClock)", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.make({ url: server.url, maxSize: 2, acquireTimeout: "5 seconds" })
      yield* mongo.get
      yield* mongo.get
      const waiter = yield* Effect.fork(Effect.scoped(mongo.get))
      yield* TestClock.adjust("4999 millis")
      expect(waiter.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      expect(error._tag).toBe("PoolTimeoutError")
      expect(error.message).toContain("in use 2")
    }))

  it.live("the driver options lifeguard owns are refused, naming the setting to use", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(MongoPool.make({ url: `${server.url}?maxPoolSize=50`, driver: { maxConnecting: 5 } }))
      )
      expect(error._tag).toBe("PoolConfigError")
      expect(error.message).toContain("maxPoolSize is lifeguard's: set maxSize instead")
      expect(error.message).toContain("maxConnecting is lifeguard's: set maxConnecting instead")
    }))
})

describe("interruption", () => {
  it.live("an interrupted long operation aborts through the signal and returns its lease after it settled", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      const docs = Array.from({ length: 4000 }, (_, i) => ({ i, s: "x".repeat(200) + i }))
      yield* MongoPool.promise((db) => db.collection("big").insertMany(docs))
      const started = yield* Deferred.make<void>()
      let signal: AbortSignal | undefined
      let settled = false
      const slow = MongoPool.promise((db, lease) => {
        signal = lease.signal
        Deferred.unsafeDone(started, Exit.void)
        const running = db.collection("big").aggregate(
          [{ $sort: { s: -1 } }, { $group: { _id: "$i", n: { $sum: 1 } } }, { $count: "n" }],
          { session: lease.session, signal: lease.signal }
        ).toArray()
        running.finally(() => {
          settled = true
        }).catch(() => {})
        return running
      })
      const fiber = yield* Effect.fork(slow)
      yield* Deferred.await(started)
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(fiber)
      expect(signal!.aborted).toBe(true)
      expect(settled).toBe(true)
      expect((yield* mongo.pool.stats).inUse).toBe(0)
      if (!mongo.capabilities.killSessions) {
        console.info("MongoDB: the server has no killSessions (FerretDB); the operation was aborted client-side only")
      }
      // The lease is good for the next operation.
      expect(yield* MongoPool.promise((db, { session, signal }) => db.command({ ping: 1 }, { session, signal }))).toMatchObject({ ok: 1 })
    }).pipe(Effect.provide(withPool({ maxSize: 1 }))), 60_000)
})

describe("the layer", () => {
  it.live("layerConfig reads MONGODB_URL and MONGODB_DATABASE", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      expect(mongo.db.databaseName).toBe("from_env")
      expect(mongo.pool.options.maxSize).toBe(3)
    }).pipe(
      Effect.provide(
        MongoPool.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
            new Map([["MONGODB_URL", server.url], ["MONGODB_DATABASE", "from_env"], ["MONGODB_POOL_MAX_SIZE", "3"]]),
            { pathDelim: "_" }
          )))
        )
      )
    ))

  it.live("an unreachable server is a MongoConnectError naming the server, within startTimeout", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(MongoPool.make({ url: "mongodb://127.0.0.1:1/", startTimeout: "1 second" }))
      )
      expect(error._tag).toBe("MongoConnectError")
      expect(error.message).toContain("could not connect to 127.0.0.1:1 within 1s")
      expect(error.message).toContain("ECONNREFUSED")
    }))

  it.live("closed under load: in-flight work finishes, new checkouts fail closed, the client is closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const mongo = yield* MongoPool.make({ url: server.url, database: uniqueDb("close"), maxSize: 4 }).pipe(
        Scope.extend(scope)
      )
      const held = yield* Deferred.make<void>()
      const inFlight = yield* Effect.fork(
        mongo.use((lease) =>
          Effect.gen(function*() {
            yield* Deferred.succeed(held, undefined)
            yield* Effect.sleep("300 millis")
            return yield* Effect.promise(() => lease.db.collection("c").insertOne({ late: true }, { session: lease.session }))
          })
        )
      )
      yield* Deferred.await(held)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.sleep("50 millis")
      const refused = yield* Effect.flip(mongo.promise((db) => db.command({ ping: 1 })))
      expect(refused._tag).toBe("PoolClosedError")
      const inserted = yield* Fiber.join(inFlight)
      expect(inserted.acknowledged).toBe(true)
      yield* Fiber.join(closing)
      const afterClose = yield* Effect.flip(Effect.tryPromise(() => mongo.client.db("admin").command({ ping: 1 })))
      expect(String(afterClose.cause)).toMatch(/closed|NotConnected/i)
    }))

  it.effect("health is the core's health check with a cached ping as its probe (TestClock)", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      const first = yield* mongo.health
      expect(first.status).toBe("ready")
      expect(first.probe?.ok).toBe(true)
      expect((yield* mongo.health).probe).toBe(first.probe)
      yield* TestClock.adjust("1 second")
      const next = yield* mongo.health
      expect(next.probe?.ok).toBe(true)
      expect(next.probe).not.toBe(first.probe)
    }).pipe(Effect.provide(withPool())))
})

describe("transactions", () => {
  it.live("withTransaction on a server without transactions fails with MongoUnsupportedError", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoPool.MongoPool
      if (mongo.capabilities.transactions) return
      const error = yield* Effect.flip(MongoPool.withTransaction(users.insertOne({ _id: 1, name: "x", joined: new Date() })))
      expect(error._tag).toBe("MongoUnsupportedError")
      expect(error.message).toContain("does not support transactions")
      expect(yield* users.countDocuments()).toBe(0)
      expect((yield* mongo.pool.stats).inUse).toBe(0)
    }).pipe(Effect.provide(withPool())))

  if (!caps.transactions) {
    console.info(
      "MongoDB: transaction commit/abort and killSessions tests NOT RUN: the server has no transactions " +
        "(FerretDB); set MONGODB_URL to a replica set to run them"
    )
  }

  it.live.skipIf(!caps.transactions)("[replica set] withTransaction commits on success and aborts on failure", () =>
    Effect.gen(function*() {
      yield* MongoPool.withTransaction(Effect.all([
        users.insertOne({ _id: 1, name: "a", joined: new Date() }),
        users.insertOne({ _id: 2, name: "b", joined: new Date() })
      ]))
      expect(yield* users.countDocuments()).toBe(2)
      const failed = yield* Effect.exit(MongoPool.withTransaction(Effect.zipRight(
        users.insertOne({ _id: 3, name: "c", joined: new Date() }),
        Effect.fail("boom" as const)
      )))
      expect(Exit.isFailure(failed)).toBe(true)
      expect(yield* users.countDocuments()).toBe(2)
    }).pipe(Effect.provide(withPool())))

  it.live.skipIf(!caps.killSessions)("[replica set] an interrupted operation is killed on the server", () =>
    Effect.gen(function*() {
      yield* MongoPool.collection("c").insertOne({ _id: 1 })
      const comment = `lifeguard-kill-${Math.random()}`
      const fiber = yield* Effect.fork(
        MongoPool.promise((db, { session, signal }) =>
          db.collection("c").find({ $where: "sleep(10000) || true" }, { session, signal, comment }).toArray()
        )
      )
      yield* Effect.sleep("300 millis")
      yield* Fiber.interrupt(fiber)
      const ops = yield* MongoPool.promise((db) => db.admin().command({ currentOp: 1, "command.comment": comment }))
      expect(ops.inprog).toStrictEqual([])
    }).pipe(Effect.provide(withPool())))
})

describe("spans", () => {
  it.live("the driver's commands become spans under the operation's span", () =>
    Effect.gen(function*() {
      const spans: Array<{ name: string; parent: string | undefined; attributes: ReadonlyMap<string, unknown> }> = []
      const tracer = yield* Effect.tracer
      const recording = {
        ...tracer,
        span: (...args: Parameters<typeof tracer.span>) => {
          const span = tracer.span(...args)
          const parent = Option.getOrUndefined(args[1])
          spans.push({ name: args[0], parent: parent?._tag === "Span" ? parent.name : undefined, attributes: span.attributes })
          return span
        }
      }
      yield* users.insertOne({ _id: 1, name: "a", joined: new Date() }).pipe(
        Effect.withSpan("app.signup"),
        Effect.provide(withPool({ commandSpans: true })),
        Effect.withTracer(recording as typeof tracer)
      )
      const insert = spans.find((s) => s.name === "insert users")
      expect(insert).toBeDefined()
      expect(insert!.parent).toBe("app.signup")
      expect(insert!.attributes.get("db.system")).toBe("mongodb")
      expect(insert!.attributes.get("db.collection.name")).toBe("users")
      expect(insert!.attributes.get("db.operation.name")).toBe("insert")
    }))
})
