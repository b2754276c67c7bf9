import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Ref, Schedule, Stream } from "effect"
import pg from "pg"
import { PgPool } from "../../src/pg/index.js"
import type { PoolConfigError } from "../../src/PoolError.js"
import { type PgBouncerServer, startPgBouncer } from "../utils/pgbouncer.js"
import { adminQuery, sharedServer, uniqueName } from "../utils/postgres.js"

const server = await sharedServer()
const database = decodeURIComponent(new URL(server.url).pathname.slice(1)) || "postgres"
// Five application instances of 20 connections each, in front of a server pool of 10.
const serverPoolSize = 10
let bouncer: PgBouncerServer
beforeAll(async () => {
  bouncer = await startPgBouncer({ target: server.url, poolMode: "transaction", poolSize: serverPoolSize })
})
afterAll(async () => {
  await bouncer?.stop()
  await server.stop()
})

const poolOptions = (name: string, options: Partial<PgPool.Options> = {}): PgPool.Options => ({
  url: bouncer.url,
  name,
  pooler: "transaction",
  acquireTimeout: "10 seconds",
  ...options
})

/** Several pools standing for several application instances, each its own SqlClient. */
const instances = (count: number, maxSize: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) => PgPool.make(poolOptions(uniqueName(`bouncer-app${i}`), { maxSize })),
    { concurrency: "unbounded" }
  )

/** The server's client connections to this database, other than the one asking. */
const serverConnections = (admin: pg.Client) =>
  Effect.promise(() =>
    admin.query<{ n: number; in_tx: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int AS in_tx
       FROM pg_stat_activity
       WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      [database]
    )
  ).pipe(Effect.map((result) => result.rows[0]!))

const adminClient = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: server.url, application_name: "lifeguard-test-admin" })
    await client.connect()
    return client
  }),
  (client) => Effect.promise(() => client.end())
)

/** What PgBouncer's admin console says about its pool for our database. */
const bouncerPool = Effect.promise(async () => {
  const client = new pg.Client({ connectionString: bouncer.adminUrl })
  await client.connect()
  try {
    const result = await client.query({ text: "SHOW POOLS", queryMode: "simple" } as pg.QueryConfig)
    return result.rows.find((row) => row.database === database) as Record<string, number> | undefined
  } finally {
    await client.end()
  }
})

describe("several instances behind one PgBouncer (pool_mode = transaction)", () => {
  it.scopedLive("5 pools of 20 share 10 server connections, and every transaction sees only its own state", () =>
    Effect.gen(function*() {
      const clients = yield* instances(5, 20)
      const admin = yield* adminClient
      const peak = yield* Ref.make(0)
      const sampler = yield* Effect.fork(
        serverConnections(admin).pipe(
          Effect.flatMap(({ n }) => Ref.update(peak, (max) => Math.max(max, n))),
          Effect.repeat(Schedule.spaced("5 millis"))
        )
      )
      const leaks = yield* Ref.make<Array<string>>([])
      const leak = (what: string) => Ref.update(leaks, (all) => [...all, what])
      // Each worker: transactions that set a local setting, fill a temporary table of the same name as
      // everyone else's, and check that only their own state is visible; between them, a statement
      // outside any transaction checks that nothing was left behind on whichever server connection it got.
      const worker = (sql: SqlClient.SqlClient, id: string) =>
        Effect.gen(function*() {
          const seen = yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`SELECT set_config('lifeguard.owner', ${id}, true)`
            yield* sql`CREATE TEMP TABLE scratch (owner text) ON COMMIT DROP`
            yield* sql`INSERT INTO scratch VALUES (${id}), (${id})`
            yield* sql`SELECT pg_sleep(0.002)`
            const [row] = yield* sql<{ owner: string; rows: number; mine: number }>`
              SELECT current_setting('lifeguard.owner') AS owner,
                     (SELECT count(*)::int FROM scratch) AS rows,
                     (SELECT count(*)::int FROM scratch WHERE owner = ${id}) AS mine`
            return row!
          }))
          if (seen.owner !== id || seen.rows !== 2 || seen.mine !== 2) yield* leak(`${id} saw ${JSON.stringify(seen)}`)
          const [after] = yield* sql<{ owner: string | null; scratch: string | null; in_tx: boolean }>`
            SELECT current_setting('lifeguard.owner', true) AS owner,
                   to_regclass('pg_temp.scratch')::text AS scratch,
                   now() <> statement_timestamp() AS in_tx`
          if ((after!.owner ?? "") !== "" || after!.scratch !== null || after!.in_tx) {
            yield* leak(`after ${id}: ${JSON.stringify(after)}`)
          }
        })
      yield* Effect.forEach(
        clients.flatMap((sql, i) => Array.from({ length: 20 }, (_, j) => ({ sql, id: `i${i}w${j}` }))),
        ({ id, sql }) => Effect.forEach([1, 2, 3, 4, 5], (n) => worker(sql, `${id}t${n}`), { discard: true }),
        { concurrency: "unbounded", discard: true }
      )
      yield* Fiber.interrupt(sampler)

      expect(yield* Ref.get(leaks)).toStrictEqual([])
      const seen = yield* Ref.get(peak)
      expect(seen).toBeLessThanOrEqual(serverPoolSize)
      // The load really used the server pool, and the instances held more client connections than it.
      expect(seen).toBeGreaterThanOrEqual(5)
      const stats = yield* Effect.forEach(clients, (client) => client.pool.stats)
      expect(stats.reduce((sum, s) => sum + s.connectionsCreated, 0)).toBeGreaterThan(serverPoolSize)
      expect(stats.every((s) => s.checkouts >= 100)).toBe(true)
      console.log(
        `pgbouncer figures: ${JSON.stringify({
          clientConnections: stats.reduce((sum, s) => sum + s.connectionsCreated, 0),
          peakServerConnections: seen,
          transactions: 500
        })}`
      )
      // Unnamed statements only: none was left prepared on the server connections.
      const [prepared] = yield* clients[0]!<{ n: number }>`SELECT count(*)::int AS n FROM pg_prepared_statements`
      expect(prepared!.n).toBe(0)
    }).pipe(Effect.provide(Reactivity.layer)), 60_000)

  it.scopedLive("a client interrupted mid-transaction leaves nothing behind", () =>
    Effect.gen(function*() {
      const [sql] = yield* instances(1, 5)
      const table = uniqueName("bouncer_tx").replace(/-/g, "_")
      yield* sql!`CREATE TABLE ${sql!(table)} (id int)`
      yield* Effect.addFinalizer(() => Effect.ignore(sql!`DROP TABLE IF EXISTS ${sql!(table)}`))
      const admin = yield* adminClient
      const inside = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach([1, 2, 3], (i) =>
        Effect.fork(sql!.withTransaction(Effect.gen(function*() {
          yield* sql!`INSERT INTO ${sql!(table)} VALUES (${i})`
          yield* Deferred.succeed(inside, undefined)
          yield* sql!`SELECT pg_sleep(30)`
        }))))
      yield* Deferred.await(inside)
      // Wait until all three are inside their transaction on the server, then interrupt them.
      yield* serverConnections(admin).pipe(Effect.repeat({ until: ({ n }) => n >= 3 }))
      const [took] = yield* Effect.timed(Effect.forEach(fibers, Fiber.interrupt))
      expect(Duration.toMillis(took)).toBeLessThan(5_000)
      // A bare BEGIN on a pooled statement is rolled back before its connection goes back: the next
      // statement runs (and commits) on its own, not inside a transaction left open on a server connection.
      yield* sql!`BEGIN`
      yield* sql!`INSERT INTO ${sql!(table)} VALUES (99)`

      // The interrupted transactions' rows are gone; the autocommitted one is there.
      expect(yield* sql!`SELECT id FROM ${sql!(table)}`).toStrictEqual([{ id: 99 }])
      const { in_tx } = yield* serverConnections(admin)
      expect(in_tx).toBe(0)
      const pool = yield* bouncerPool
      expect(pool?.sv_active).toBe(0)
      expect(pool?.cl_waiting).toBe(0)
    }).pipe(Effect.provide(Reactivity.layer)))

  it.scopedLive("interrupting a running query cancels it on the server through PgBouncer", () =>
    Effect.gen(function*() {
      const name = uniqueName("bouncer-cancel")
      const sql = yield* PgPool.make(poolOptions(name, { maxSize: 2 }))
      const sleeping = Effect.promise(() =>
        adminQuery<{ n: number }>(
          server.url,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
          [database]
        )
      ).pipe(Effect.map(([row]) => row!.n))
      const fiber = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
      yield* sleeping.pipe(Effect.repeat({ until: (n) => n === 1 }))
      const [took] = yield* Effect.timed(Fiber.interrupt(fiber))
      expect(Duration.toMillis(took)).toBeLessThan(3_000)
      expect(yield* sleeping).toBe(0)
      // Cancelled, not given up: the connection went back and serves the next statement.
      expect(yield* sql.pool.stats).toMatchObject({ inUse: 0, connectionsClosed: 0 })
      expect(yield* sql`SELECT 1::int AS ok`).toStrictEqual([{ ok: 1 }])
    }).pipe(Effect.provide(Reactivity.layer)))
})

describe("what @effect/sql offers that a transaction pooler allows", () => {
  it.scopedLive("parameters, values, raw, inserts, savepoints, streams and transactionSettings", () =>
    Effect.gen(function*() {
      const sql = yield* PgPool.make(poolOptions(uniqueName("bouncer-sql"), {
        maxSize: 4,
        transactionSettings: { statement_timeout: "7s", "lifeguard.mode": "tx" }
      }))
      const table = uniqueName("bouncer_sql").replace(/-/g, "_")
      yield* sql`CREATE TABLE ${sql(table)} (id int, name text)`
      yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP TABLE IF EXISTS ${sql(table)}`))
      expect(yield* sql`SELECT ${1}::int AS one, ${"x"}::text AS param`).toStrictEqual([{ one: 1, param: "x" }])
      expect(yield* sql`SELECT 1::int, 2::int`.values).toStrictEqual([[1, 2]])
      expect(((yield* sql`SELECT 1::int AS one`.raw) as { rowCount: number }).rowCount).toBe(1)
      yield* sql`INSERT INTO ${sql(table)} ${sql.insert([{ id: 1, name: "a" }, { id: 2, name: "b" }])}`

      const inside = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (3, 'c')`
        yield* sql.withTransaction(Effect.zipRight(sql`INSERT INTO ${sql(table)} VALUES (4, 'd')`, Effect.fail("inner")))
          .pipe(Effect.ignore)
        const [settings] = yield* sql<{ timeout: string; mode: string }>`
          SELECT current_setting('statement_timeout') AS timeout, current_setting('lifeguard.mode') AS mode`
        return settings
      }))
      // transactionSettings hold inside every transaction, and only there.
      expect(inside).toStrictEqual({ timeout: "7s", mode: "tx" })
      const [outside] = yield* sql<{ mode: string | null }>`SELECT current_setting('lifeguard.mode', true) AS mode`
      expect(outside!.mode ?? "").toBe("")
      expect(yield* sql`SELECT id FROM ${sql(table)} ORDER BY id`).toStrictEqual([
        { id: 1 },
        { id: 2 },
        { id: 3 }
      ])
      expect(yield* Effect.exit(sql.withTransaction(
        Effect.zipRight(sql`INSERT INTO ${sql(table)} VALUES (5, 'e')`, Effect.fail("outer"))
      ))).toStrictEqual(Exit.fail("outer"))
      expect((yield* sql`SELECT id FROM ${sql(table)}`).length).toBe(3)

      const streamed = yield* Stream.runCollect(sql<{ n: number }>`SELECT generate_series(1, 1000) AS n`.stream)
      expect(Chunk.size(streamed)).toBe(1000)
      expect(yield* sql.pool.stats).toMatchObject({ inUse: 0 })
    }).pipe(Effect.provide(Reactivity.layer)))

  it.scopedLive("LISTEN needs listenUrl behind a transaction pooler; with it, notifications arrive", () =>
    Effect.gen(function*() {
      const without = yield* PgPool.make(poolOptions(uniqueName("bouncer-nolisten")))
      const error = yield* Effect.flip(Stream.runDrain(without.listen("lifeguard_chan")))
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain("set listenUrl")

      const name = uniqueName("bouncer-listen")
      const sql = yield* PgPool.make(poolOptions(name, { listenUrl: server.url }))
      const channel = uniqueName("chan").replace(/-/g, "_")
      const received = yield* Effect.fork(Stream.runCollect(Stream.take(sql.listen(channel), 1)))
      yield* Effect.promise(() =>
        adminQuery<{ n: number }>(
          server.url,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
          [`${name}:listen`]
        )
      ).pipe(Effect.repeat({ until: ([row]) => row!.n === 1 }))
      // notify goes through PgBouncer; the listener sits on its direct connection.
      yield* sql.notify(channel, "through the pooler")
      expect(Chunk.toArray(yield* Fiber.join(received))).toStrictEqual(["through the pooler"])
    }).pipe(Effect.provide(Reactivity.layer)))

  it.scopedLive("session state is refused with a configuration error that says what to do instead", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(PgPool.make(poolOptions("bouncer-config", {
        sessionSettings: { statement_timeout: "5s" },
        discardOnReturn: true
      })))
      expect(error._tag).toBe("PoolConfigError")
      expect((error as PoolConfigError).problems).toHaveLength(2)
      expect(error.message).toContain("sessionSettings cannot be kept behind a transaction-mode pooler")
      expect(error.message).toContain("transactionSettings")
      expect(error.message).toContain("discardOnReturn")
    }).pipe(Effect.provide(Reactivity.layer)))
})
