import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { PgPool } from "../../src/pg/index.js"
import { backendsOf, sharedServer, uniqueName } from "../utils/postgres.js"

const server = await sharedServer()
afterAll(() => server.stop())

const withPool = (options: Partial<PgPool.Options> = {}) => PgPool.layer({ url: server.url, ...options })

describe("drop-in for PgClient", () => {
  it.live("statements compile exactly as @effect/sql-pg compiles them", () =>
    Effect.gen(function*() {
      const compileAll = Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const statements = [
          sql`SELECT * FROM ${sql("people")} WHERE id IN ${sql.in([1, 2, 3])} AND name = ${"x"}`,
          sql`INSERT INTO people ${sql.insert([{ firstName: "a", age: 1 }, { firstName: "b", age: 2 }])} RETURNING *`,
          sql`UPDATE people SET ${sql.update({ id: 1, firstName: "c" }, ["id"])} WHERE id = ${1}`,
          sql`SELECT ${sql.json({ nestedKey: [1, 2] })}::jsonb AS doc`,
          sql`SELECT ${sql.and([sql`a = ${1}`, sql`b = ${2}`])}`
        ]
        return statements.map((statement) => statement.compile())
      })
      const transformQueryNames = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
      const ours = yield* compileAll.pipe(Effect.provide(withPool({ transformQueryNames })))
      const theirs = yield* compileAll.pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(server.url), transformQueryNames, maxConnections: 1 }))
      )
      expect(ours).toStrictEqual(theirs)
      expect(ours[1]![0]).toContain(`"first_name"`)
    }))

  it.live("runs statements, values, raw results, json and result-name transforms", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      expect(yield* sql`SELECT 1::int AS one, ${"x"}::text AS param`).toStrictEqual([{ one: 1, param: "x" }])
      expect(yield* sql`SELECT 1::int, 2::int`.values).toStrictEqual([[1, 2]])
      const raw = (yield* sql`SELECT 1::int AS one`.raw) as { readonly rowCount: number }
      expect(raw.rowCount).toBe(1)
      expect(yield* sql`SELECT ${sql.json({ a: [1] })}::jsonb AS doc`).toStrictEqual([{ doc: { a: [1] } }])
      expect(yield* sql`SELECT 1::int AS first_name`).toStrictEqual([{ firstName: 1 }])
      expect(yield* sql`SELECT 1::int AS first_name`.withoutTransform).toStrictEqual([{ first_name: 1 }])
    }).pipe(
      Effect.provide(withPool({ transformResultNames: (name) => name.replace(/_(.)/g, (_, c: string) => c.toUpperCase()) }))
    ))

  it.live("a row transform that throws fails its statement or stream as a defect, and the connection serves the next one", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      const exit = yield* Effect.exit(sql`SELECT 1::int AS boom`)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      const streamed = yield* Effect.exit(Stream.runCollect(sql`SELECT 1::int AS boom`.stream))
      expect(Exit.isFailure(streamed) && Cause.isDie(streamed.cause)).toBe(true)
      expect(yield* sql`SELECT 1::int AS ok`).toStrictEqual([{ ok: 1 }])
      expect(yield* pool.stats).toMatchObject({ inUse: 0 })
    }).pipe(
      Effect.provide(withPool({
        transformResultNames: (name) => {
          if (name === "boom") throw new Error("a transform that throws")
          return name
        }
      }))
    ))

  it.live("a failing statement is a SqlError that names the pool and the server's reason", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`SELECT * FROM no_such_table`)
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain(`pool "named"`)
      expect(error.message).toContain(`relation "no_such_table" does not exist`)
      expect((error.cause as { readonly code: string }).code).toBe("42P01")
      // The connection survived the error and serves the next statement.
      expect(yield* sql`SELECT 1::int AS ok`).toStrictEqual([{ ok: 1 }])
      const pool = yield* PgPool.PgPool
      expect(yield* pool.stats).toMatchObject({ total: 1, connectionsClosed: 0 })
    }).pipe(Effect.provide(withPool({ name: "named" }))))

  it.live("layerConfig reads DATABASE_URL and PG_POOL_* through Effect Config", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      expect(yield* sql`SELECT current_setting('application_name') AS name`).toStrictEqual([{ name: "from-env" }])
      expect(pool.options).toMatchObject({ name: "from-env", maxSize: 3, acquireTimeout: 2_000 })
    }).pipe(
      Effect.provide(
        PgPool.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
            new Map([
              ["DATABASE_URL", server.url],
              ["PG_POOL_NAME", "from-env"],
              ["PG_POOL_MAX_SIZE", "3"],
              ["PG_POOL_ACQUIRE_TIMEOUT", "2 seconds"]
            ]),
            // As the environment provider does.
            { pathDelim: "_" }
          )))
        )
      )
    ))

  it.live("session settings and application_name are set on every new connection", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`SELECT current_setting('statement_timeout') AS timeout, current_setting('application_name') AS app`
      expect(rows).toStrictEqual([{ timeout: "1min", app: "with-settings" }])
    }).pipe(Effect.provide(withPool({ applicationName: "with-settings", sessionSettings: { statement_timeout: "1min" } }))))
})

describe("transactions", () => {
  it.live("commit, rollback and savepoints work as in @effect/sql, on one pinned connection", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const table = uniqueName("tx").replace(/-/g, "_")
      yield* sql`CREATE TABLE ${sql(table)} (id int)`
      const result = yield* sql.withTransaction(Effect.gen(function*() {
        const pid = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        yield* sql`INSERT INTO ${sql(table)} VALUES (1)`
        // A nested transaction is a savepoint: its failure rolls back only its own work.
        yield* sql.withTransaction(
          Effect.zipRight(sql`INSERT INTO ${sql(table)} VALUES (2)`, Effect.fail("inner failure"))
        ).pipe(Effect.ignore)
        yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (3)`)
        const again = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        expect(again).toStrictEqual(pid)
        return yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} ORDER BY id`
      }))
      expect(result).toStrictEqual([{ id: 1 }, { id: 3 }])
      const failed = yield* Effect.exit(sql.withTransaction(
        Effect.zipRight(sql`INSERT INTO ${sql(table)} VALUES (4)`, Effect.fail("outer failure"))
      ))
      expect(failed).toStrictEqual(Exit.fail("outer failure"))
      expect(yield* sql`SELECT id FROM ${sql(table)} ORDER BY id`).toStrictEqual([{ id: 1 }, { id: 3 }])
      yield* sql`DROP TABLE ${sql(table)}`
    }).pipe(Effect.provide(withPool({ maxSize: 2 }))))
})

describe("streams", () => {
  const streamApp = uniqueName("lifeguard-stream")
  it.live("a stream holds its connection until it ends, and gives it back when interrupted", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      const all = yield* Stream.runCollect(sql<{ n: number }>`SELECT generate_series(1, 1000) AS n`.stream)
      expect(Chunk.size(all)).toBe(1000)
      expect(Chunk.unsafeLast(all)).toStrictEqual({ n: 1000 })

      const first = yield* Stream.runHead(sql`SELECT generate_series(1, 100000) AS n`.stream)
      expect(first).toStrictEqual(Option.some({ n: 1 }))
      // runHead ended the stream early: the cursor was closed and the connection is back, clean.
      expect(yield* pool.stats).toMatchObject({ inUse: 0, idle: 1, total: 1 })
      expect(yield* sql`SELECT 1::int AS ok`).toStrictEqual([{ ok: 1 }])

      const fiber = yield* Effect.fork(Stream.runDrain(
        Stream.tap(sql`SELECT generate_series(1, 100000) AS n`.stream, () => Effect.sleep("1 millis"))
      ))
      yield* Effect.sleep("50 millis")
      expect(yield* pool.stats).toMatchObject({ inUse: 1 })
      yield* Fiber.interrupt(fiber)
      expect(yield* pool.stats).toMatchObject({ inUse: 0, idle: 1 })
      expect(yield* sql`SELECT 2::int AS ok`).toStrictEqual([{ ok: 2 }])
    }).pipe(Effect.provide(withPool({ maxSize: 1 }))))

  it.live("interrupting a stream whose query is still running cancels it on the server", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      const fiber = yield* Effect.fork(Stream.runDrain(sql`SELECT pg_sleep(30)`.stream))
      const running = Effect.promise(() => backendsOf(server.url, streamApp)).pipe(
        Effect.map((rows) => rows.some((row) => row.state === "active" && row.query.includes("pg_sleep")))
      )
      while (!(yield* running)) yield* Effect.sleep("10 millis")
      const [duration] = yield* Effect.timed(Fiber.interrupt(fiber))
      expect(Duration.toMillis(duration)).toBeLessThan(3_000)
      expect(yield* running).toBe(false)
      expect(yield* pool.stats).toMatchObject({ inUse: 0, total: 1, connectionsClosed: 0 })
      expect(yield* sql`SELECT 3::int AS ok`).toStrictEqual([{ ok: 3 }])
    }).pipe(Effect.provide(withPool({ maxSize: 1, applicationName: streamApp }))))
})

describe("listen and notify", () => {
  const name = uniqueName("lifeguard-listen")
  it.live("notifications reach listeners, over a connection outside the pool", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const pool = yield* PgPool.PgPool
      const channel = uniqueName("chan")
      const received = yield* Effect.fork(Stream.runCollect(Stream.take(sql.listen(channel), 2)))
      const backend = `${name}:listen`
      // Wait until the LISTEN is in place before notifying.
      yield* Effect.promise(() => backendsOf(server.url, backend)).pipe(
        Effect.repeat({ until: (rows) => rows.some((row) => row.query.startsWith("LISTEN")) })
      )
      yield* sql.notify(channel, "one")
      yield* sql.notify(channel, "two")
      expect(Chunk.toArray(yield* Fiber.join(received))).toStrictEqual(["one", "two"])
      const stats = yield* pool.stats
      expect(stats.inUse).toBe(0)
    }).pipe(Effect.provide(withPool({ name }))))
})
