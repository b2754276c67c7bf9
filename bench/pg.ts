/**
 * Suite `pg`: `SELECT 1` through four pools of 10 connections to the same
 * PostgreSQL server, with 1,000, 100 and 10 concurrent workers: raw `pg.Pool`,
 * @effect/sql-pg's `PgClient`, lifeguard's `SqlClient` from `lifeguard/pg`,
 * and lifeguard's core `Pool` over `pg.Client` with a plain `client.query`
 * (`lifeguard-pool`: what the pool itself costs in front of a real driver,
 * without @effect/sql's per-statement work).
 *
 * The server is `DATABASE_URL`, else the one the tests use (`sharedServer()`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import pgLib from "pg"
import { sharedServer } from "../test/utils/postgres.js"
import { Pool } from "lifeguard"
import type { Contender, EffectContender, PromiseContender, Result, Suite } from "./measure.js"
import { interleaved, median, range, runWindow, withRatios } from "./measure.js"

const connections = 10
const configs = [
  { workers: 1000, maxSize: connections },
  { workers: 100, maxSize: connections },
  { workers: 10, maxSize: connections }
]

/**
 * Keeps `n` statements running at once, long enough that a pool opening
 * connections a few at a time has opened all `n` before timing starts.
 */
const warm = <E, R>(query: Effect.Effect<unknown, E, R>, n: number) =>
  Effect.forEach(range(n), () => query, { concurrency: "unbounded", discard: true })

/** An `SqlClient` layer's contender: each cycle is one `SELECT 1` through the client. */
const sqlClientContender = (
  name: string,
  layer: (url: string, maxConnections: number) => Layer.Layer<SqlClient.SqlClient, unknown>,
  url: string
): EffectContender => ({
  kind: "effect",
  name,
  setup: (maxConnections) =>
    Effect.gen(function*() {
      const context = yield* Layer.build(layer(url, maxConnections))
      const sql = Context.get(context, SqlClient.SqlClient)
      const select = sql`SELECT 1`
      yield* warm(sql`SELECT pg_sleep(0.2)`, maxConnections)
      return (work) => Effect.zipRight(select, work)
    })
})

const pgPool = (url: string): PromiseContender => ({
  kind: "promise",
  name: "pg-pool",
  setup: async (max) => {
    const pool = new pgLib.Pool({ connectionString: url, max })
    await Promise.all(range(max).map(() => pool.query("SELECT pg_sleep(0.2)")))
    return {
      acquire: () => pool.query("SELECT 1"),
      release: () => {},
      close: () => pool.end()
    }
  }
})

/** The core pool of `pg.Client`s, each statement a plain `client.query` inside `pool.use`. */
const lifeguardPool = (url: string): EffectContender => ({
  kind: "effect",
  name: "lifeguard-pool",
  setup: (maxSize) =>
    Effect.gen(function*() {
      const connect = Effect.promise(async () => {
        const client = new pgLib.Client({ connectionString: url })
        await client.connect()
        return client
      })
      const pool = yield* Pool.make({
        acquire: Effect.acquireRelease(connect, (client) => Effect.promise(() => client.end())),
        maxSize
      })
      const query = (text: string) => pool.use((client) => Effect.promise(() => client.query(text)))
      const select = query("SELECT 1")
      yield* warm(query("SELECT pg_sleep(0.2)"), maxSize)
      return (work) => Effect.zipRight(select, work)
    })
})

const effectSqlPg = (url: string) =>
  sqlClientContender(
    "effect-sql-pg",
    (u, maxConnections) => PgClient.layer({ url: Redacted.make(u), maxConnections }),
    url
  )

/**
 * lifeguard's adapter, loaded when the suite runs so that a broken
 * `lifeguard/pg` fails this suite alone.
 */
const lifeguardPg = async (url: string): Promise<EffectContender> => {
  const { PgPool } = await import("lifeguard/pg").catch((error: unknown) => {
    throw new Error(`lifeguard/pg (dist/pg/index.js, built by npm run build) cannot be loaded, so the pg suite cannot measure lifeguard: ${String(error)}`)
  })
  return sqlClientContender("lifeguard", (u, maxSize) => PgPool.layer({ url: u, maxSize }), url)
}

export const pg: Suite = {
  name: "pg",
  reference: "pg-pool",
  run: async ({ quick, reps, log }) => {
    const url = process.env.DATABASE_URL || (await sharedServer()).url
    log(`pg: server ${url.replace(/:[^:@/]*@/, ":***@")}`)
    const contenders: ReadonlyArray<Contender> = [await lifeguardPg(url), lifeguardPool(url), pgPool(url), effectSqlPg(url)]
    const windowMs = quick ? 300 : 1500
    const warmUpMs = quick ? 300 : 1000
    const items = configs.flatMap((config) => contenders.map((contender) => ({ config, contender })))
    const samples = await interleaved(reps, items, async ({ config, contender }, warmUp) => {
      const t = await runWindow(contender, { ...config, windowMs: warmUp ? warmUpMs : windowMs })
      const qps = t.cycles / (t.elapsedMs / 1000)
      if (!warmUp) log(`pg workers${config.workers}-conns${config.maxSize} ${contender.name}: ${Math.round(qps)} q/s`)
      return qps
    })
    const results: Array<Result> = items.map(({ config, contender }, i) => ({
      suite: "pg",
      config: `workers${config.workers}-conns${config.maxSize}`,
      contender: contender.name,
      opsPerSec: median(samples[i]!),
      samples: samples[i]!
    }))
    return withRatios(results, "pg-pool", (r) => r.opsPerSec ?? undefined)
  }
}
