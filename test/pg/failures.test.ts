import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Ref, Schedule } from "effect"
import * as Net from "node:net"
import pg from "pg"
import { PgPool } from "../../src/pg/index.js"
import { adminQuery, backendsOf, sharedServer, uniqueName } from "../utils/postgres.js"

const server = await sharedServer()
afterAll(() => server.stop())

/** A pool whose connections this test can find on the server by application_name. */
const withPool = (options: Partial<PgPool.Options> = {}) => {
  const name = uniqueName("lifeguard")
  return { name, layer: PgPool.layer({ url: server.url, name, ...options }) }
}

const backends = (name: string) => Effect.promise(() => backendsOf(server.url, name))

/** Polls until `check` holds (bounded, so a broken adapter fails instead of hanging). */
const eventually = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean): Effect.Effect<A> => {
  const loop: Effect.Effect<A> = Effect.flatMap(
    effect,
    (a) => check(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("10 millis"), loop)
  )
  return loop.pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("condition not reached within 5 seconds") }),
    Effect.orDie
  )
}

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(Effect.exit(effect)), ([duration, exit]) => ({ ms: Duration.toMillis(duration), exit }))

describe("the server never sees more than maxSize connections", () => {
  const { layer, name } = withPool({ maxSize: 10 })
  it.scopedLive("100 fibers share 10 connections", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const peak = yield* Ref.make(0)
      // One admin connection samples pg_stat_activity while the load runs.
      const admin = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: server.url, application_name: "lifeguard-test-admin" })
          await client.connect()
          return client
        }),
        (client) => Effect.promise(() => client.end())
      )
      const count = Effect.promise(() =>
        admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [name])
      ).pipe(Effect.map((result) => result.rows[0].n as number))
      const sampler = yield* Effect.fork(
        count.pipe(
          Effect.flatMap((n) => Ref.update(peak, (max) => Math.max(max, n))),
          Effect.repeat(Schedule.spaced("2 millis"))
        )
      )
      yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => Effect.repeatN(sql`SELECT pg_sleep(0.002), ${i}::int AS worker`, 9),
        { concurrency: "unbounded", discard: true }
      )
      yield* Fiber.interrupt(sampler)
      const seen = yield* Ref.get(peak)
      expect(seen).toBeLessThanOrEqual(10)
      // The load really was spread: most of the pool was open at once.
      expect(seen).toBeGreaterThanOrEqual(5)
      const pool = yield* PgPool.PgPool
      const stats = yield* pool.stats
      expect(stats.checkouts).toBe(1000)
      expect(stats.connectionsCreated).toBeLessThanOrEqual(10)
    }).pipe(Effect.provide(layer)))
})

describe("connections that die", () => {
  const { layer, name } = withPool({ maxSize: 5 })
  it.live("pg_terminate_backend mid-load: in-flight statements fail typed, later ones run on fresh connections", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      let stopped = false
      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const load = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 20 }, () => 0),
        () =>
          sql`SELECT pg_sleep(0.02)`.pipe(
            Effect.exit,
            Effect.tap((exit) => Effect.sync(() => exits.push(exit))),
            Effect.repeat({ while: () => !stopped })
          ),
        { concurrency: "unbounded", discard: true }
      ))
      const before = yield* eventually(backends(name), (rows) => rows.length === 5)
      const killed = yield* Effect.promise(() =>
        adminQuery<{ ok: boolean }>(
          server.url,
          "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1",
          [name]
        )
      )
      expect(killed.length).toBe(5)
      yield* Effect.sleep("300 millis")
      stopped = true
      yield* Fiber.join(load)

      const failures = exits.filter(Exit.isFailure)
      expect(failures.length).toBeGreaterThanOrEqual(1)
      for (const failure of failures) {
        // A typed failure (SqlError), never a defect or an interruption.
        const error = Option.getOrThrow(Exit.causeOption(failure).pipe(Option.flatMap((cause) =>
          cause._tag === "Fail" ? Option.some(cause.error) : Option.none()
        )))
        expect(error).toMatchObject({ _tag: "SqlError" })
      }
      // Statements after the kill ran, on connections the server has not seen before.
      const after = yield* Effect.forEach(Array.from({ length: 10 }, () => 0), () =>
        sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.01)`, { concurrency: 10 })
      const oldPids = new Set(before.map((row) => row.pid))
      for (const [row] of after) expect(oldPids.has(row!.pid)).toBe(false)
      expect(exits.filter(Exit.isSuccess).length).toBeGreaterThan(failures.length)
      // An admin shutdown message (57P01) clears the pool once: the next generation.
      const stats = yield* pool.stats
      expect(stats.generation).toBeGreaterThanOrEqual(1)
      expect(stats.total).toBeLessThanOrEqual(5)
    }).pipe(Effect.provide(layer)))

  it.live("an idle connection killed on the server is replaced at checkout, not handed out", () =>
    Effect.gen(function*() {
      const { layer, name } = withPool({ maxSize: 1 })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [first] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        yield* Effect.promise(() => adminQuery(server.url, "SELECT pg_terminate_backend($1)", [first!.pid]))
        yield* eventually(backends(name), (rows) => rows.length === 0)
        const [second] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        expect(second!.pid).not.toBe(first!.pid)
      }).pipe(Effect.provide(layer))
    }))
})

describe("a server that accepts but never answers", () => {
  it.scopedLive("connects are cut at createTimeout, checkouts fail at acquireTimeout, no socket is left open", () =>
    Effect.gen(function*() {
      const sockets = new Set<Net.Socket>()
      const silent = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer((socket) => {
            // Read (and ignore) whatever the client sends, so its disconnect is seen here.
            socket.resume()
            sockets.add(socket)
            socket.on("close", () => sockets.delete(socket))
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
      )
      const port = (silent.address() as Net.AddressInfo).port
      const exit = yield* elapsed(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql`SELECT 1`
      }).pipe(Effect.provide(PgPool.layer({
        url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        name: "silent",
        acquireTimeout: "600 millis",
        createTimeout: "200 millis",
        maxSize: 2,
        // About checkouts: the layer must build without the start-up check.
        initializationFailTimeout: false
      }))))
      expect(exit.ms).toBeLessThan(2_000)
      const error = Exit.isFailure(exit.exit) ? Option.getOrThrow(Exit.causeOption(exit.exit)) : undefined
      const sqlError = error?._tag === "Fail" ? error.error : undefined
      expect(sqlError?.message).toMatch(/pool "silent": no connection within/)
      expect(sqlError?.message).toMatch(/createTimeout/)
      // Every half-open connection was dropped by the client, not left to the server.
      yield* eventually(Effect.sync(() => sockets.size), (open) => open === 0)
    }))
})

/**
 * Interrupts `fiber` once its `pg_sleep(30)` runs on the pool's one connection, and checks the cancel: the
 * interrupt returns soon, by then the server has stopped the query, and the same connection went back to
 * the pool clean rather than being closed.
 */
const interruptSleeping = (name: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pool = yield* PgPool.PgPool
    const [busy] = yield* eventually(
      backends(name),
      (rows) => rows.some((row) => row.state === "active" && row.query.includes("pg_sleep(30)"))
    )
    const { ms } = yield* elapsed(Fiber.interrupt(fiber))
    expect(ms).toBeLessThan(3_000)
    expect(yield* backends(name)).toMatchObject([{ pid: busy!.pid, state: "idle" }])
    expect(yield* pool.stats).toMatchObject({ total: 1, idle: 1, inUse: 0, connectionsClosed: 0 })
    expect(yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`).toStrictEqual([{ pid: busy!.pid }])
  })

describe("cancellation", () => {
  it.live("interrupting a pg_sleep cancels it on the server; the connection comes back only after", () =>
    Effect.gen(function*() {
      const { layer, name } = withPool({ maxSize: 1 })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const fiber = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
        yield* interruptSleeping(name, fiber)
      }).pipe(Effect.provide(layer))
    }))

  it.live("a queued statement starts from the previous one's callback, and is cancelled like any other when interrupted", () =>
    Effect.gen(function*() {
      const { layer, name } = withPool({ maxSize: 1 })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pool = yield* PgPool.PgPool
        const first = yield* Effect.fork(sql`SELECT pg_sleep(0.2)`)
        yield* eventually(pool.stats, (stats) => stats.inUse === 1)
        // Queued behind the first: the pool sends it when the first one's result comes in.
        const queued = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
        yield* eventually(pool.stats, (stats) => stats.waiting === 1)
        yield* Fiber.join(first)
        yield* interruptSleeping(name, queued)
      }).pipe(Effect.provide(layer))
    }))

  it.live("interrupting a statement inside a transaction cancels it and rolls the transaction back", () =>
    Effect.gen(function*() {
      const { layer, name } = withPool({ maxSize: 1 })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const fiber = yield* Effect.fork(sql.withTransaction(sql`SELECT pg_sleep(30)`))
        yield* eventually(backends(name), (rows) => rows.some((row) => row.query.includes("pg_sleep")))
        const { ms } = yield* elapsed(Fiber.interrupt(fiber))
        expect(ms).toBeLessThan(3_000)
        expect(yield* backends(name)).toMatchObject([{ state: "idle" }])
        expect(yield* sql`SELECT now() = statement_timestamp() AS fresh`).toStrictEqual([{ fresh: true }])
      }).pipe(Effect.provide(layer))
    }))
})

describe("the return path", () => {
  it.live("a connection returned inside a transaction block is rolled back before reuse", () =>
    Effect.gen(function*() {
      const { layer, name } = withPool({ maxSize: 1 })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pool = yield* PgPool.PgPool
        const [{ pid }] = (yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`) as [{ pid: number }]

        // A bare BEGIN through the pooled path.
        yield* sql`BEGIN`
        expect(yield* backends(name)).toMatchObject([{ pid, state: "idle" }])
        yield* Effect.sleep("5 millis")
        expect(yield* sql`SELECT now() = statement_timestamp() AS fresh`).toStrictEqual([{ fresh: true }])

        // A statement that opens a transaction and fails inside it: pg calls it back before the
        // ReadyForQuery that says so, and the connection must still be rolled back before reuse.
        // The next statement waits for the connection meanwhile, so it is handed over at once.
        const failing = yield* Effect.fork(Effect.exit(sql.unsafe("SELECT pg_sleep(0.1); BEGIN; SELECT 1/0")))
        yield* eventually(pool.stats, (stats) => stats.inUse === 1)
        const next = yield* Effect.fork(sql`SELECT now() = statement_timestamp() AS fresh`)
        expect(Exit.isFailure(yield* Fiber.join(failing))).toBe(true)
        expect(yield* Fiber.join(next)).toStrictEqual([{ fresh: true }])
        expect(yield* backends(name)).toMatchObject([{ pid, state: "idle" }])

        // A reserved connection given back in a failed transaction block.
        yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* sql.reserve
          yield* connection.executeUnprepared("BEGIN", [], undefined)
          yield* Effect.ignore(connection.executeUnprepared("SELECT 1/0", [], undefined))
        }))
        expect(yield* backends(name)).toMatchObject([{ pid, state: "idle" }])
        yield* Effect.sleep("5 millis")
        expect(yield* sql`SELECT now() = statement_timestamp() AS fresh`).toStrictEqual([{ fresh: true }])

        // Rolled back, not thrown away.
        expect(yield* pool.stats).toMatchObject({ total: 1, connectionsClosed: 0 })
      }).pipe(Effect.provide(layer))
    }))

  it.live("discardOnReturn drops session state", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SET application_name = 'changed'`
      const [row] = yield* sql<{ name: string }>`SELECT current_setting('application_name') AS name`
      expect(row!.name).not.toBe("changed")
    }).pipe(Effect.provide(withPool({ maxSize: 1, discardOnReturn: true }).layer)))
})

describe("transactions wait like any checkout", () => {
  it.live("a transaction that cannot get a connection fails at acquireTimeout, and can be interrupted sooner", () =>
    Effect.gen(function*() {
      const { layer } = withPool({ maxSize: 1, acquireTimeout: "300 millis" })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const release = yield* Deferred.make<void>()
        const holding = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          sql.withTransaction(Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release)))
        )
        yield* Deferred.await(holding)

        const timedOut = yield* elapsed(sql.withTransaction(sql`SELECT 1`))
        expect(timedOut.ms).toBeLessThan(2_000)
        const error = Exit.isFailure(timedOut.exit) ? Option.getOrThrow(Exit.causeOption(timedOut.exit)) : undefined
        expect(error?._tag).toBe("Fail")
        const sqlError = (error as { readonly error: import("@effect/sql").SqlError.SqlError }).error
        const poolError = PgPool.poolError(sqlError)
        expect(Option.map(poolError, (e) => e._tag)).toStrictEqual(Option.some("PoolTimeoutError"))
        expect(sqlError.message).toContain(`no connection within`)

        // With @effect/sql-pg this wait cannot be interrupted; here the caller's own timeout wins.
        const interrupted = yield* elapsed(
          sql.withTransaction(sql`SELECT 1`).pipe(Effect.timeoutOption("50 millis"))
        )
        expect(interrupted.exit).toStrictEqual(Exit.succeed(Option.none()))
        expect(interrupted.ms).toBeLessThan(250)

        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect(yield* sql.withTransaction(sql`SELECT 1::int AS ok`)).toStrictEqual([{ ok: 1 }])
      }).pipe(Effect.provide(layer))
    }))
})
