/**
 * Suite `pg`: `SELECT 1` over 10 connections to the same PostgreSQL server,
 * with 1,000, 100 and 10 concurrent workers: raw `pg.Pool`, @effect/sql-pg's
 * `PgClient`, lifeguard's `SqlClient` from `lifeguard/pg`, and lifeguard's
 * core `Pool` over `pg.Client` with a plain `client.query` (`lifeguard-pool`:
 * what the pool itself costs in front of a real driver, without @effect/sql's
 * per-statement work). Two floors read it: `pg-pool-fibers` (the same fibers
 * over `pg.Pool`) and `handoff-ceiling` (the least a fair fiber hand-off costs).
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
import { makeHandOff } from "./contenders.js"
import { interleaved, median, range, runWindow, withRatios } from "./measure.js"

const connections = 10
// A statement gives up the thread by itself: no extra yield per cycle (hold "none").
const configs = [
  { workers: 1000, maxSize: connections, hold: "none" as const },
  { workers: 100, maxSize: connections, hold: "none" as const },
  { workers: 10, maxSize: connections, hold: "none" as const }
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

/** One statement on a client, through pg's callback API. */
const send = (client: pgLib.Client | pgLib.Pool, text: string) =>
  Effect.async<pgLib.QueryResult, Error>((resume) => {
    client.query(text, (error: Error | undefined, result: pgLib.QueryResult) =>
      resume(error ? Effect.fail(error) : Effect.succeed(result)))
  })

const connectClients = (url: string, n: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      Promise.all(range(n).map(async () => {
        const client = new pgLib.Client({ connectionString: url })
        await client.connect()
        return client
      }))
    ),
    (clients) => Effect.promise(() => Promise.all(clients.map((client) => client.end())))
  )

/**
 * Effect fibers over `pg.Pool`'s callback API, no Effect pool in between: what
 * running the workers as fibers costs by itself, with `pg.Pool`'s own queue
 * handing connections on inside its callbacks.
 */
const pgPoolFibers = (url: string): EffectContender => ({
  kind: "effect",
  name: "pg-pool-fibers",
  setup: (max) =>
    Effect.gen(function*() {
      const pool = new pgLib.Pool({ connectionString: url, max })
      yield* Effect.addFinalizer(() => Effect.promise(() => pool.end()))
      const select = send(pool, "SELECT 1")
      yield* warm(send(pool, "SELECT pg_sleep(0.2)"), max)
      return (work) => Effect.zipRight(select, work)
    })
})

/**
 * The least a fair hand-off between fibers costs in front of `pg.Client`s
 * (`makeHandOff`: arrays and resume callbacks, no deadlines, no events, no
 * interruption safety), shaped like `pool.use`: the fiber that ran the
 * statement gives the client on. The floor under `lifeguard-pool`.
 */
const handoffCeiling = (url: string): EffectContender => ({
  kind: "effect",
  name: "handoff-ceiling",
  setup: (max) =>
    Effect.gen(function*() {
      // A copy: the hand-off takes clients out of its array, and every client must be closed at the end.
      const clients = yield* connectClients(url, max)
      const handOff = makeHandOff([...clients])
      const query = (text: string) =>
        Effect.flatMap(handOff.take, (client) => Effect.ensuring(send(client, text), Effect.sync(() => handOff.give(client))))
      return (work) => Effect.zipRight(query("SELECT 1"), work)
    })
})

/**
 * The core pool of `pg.Client`s, each statement a plain `client.query` inside
 * `pool.use`, in its callback form: the promise form adds a promise and a
 * microtask hop per query, whichever pool is in front of it (see
 * docs/benchmarks.md).
 */
const lifeguardPool = (url: string): EffectContender => ({
  kind: "effect",
  name: "lifeguard-pool",
  setup: (maxSize) =>
    Effect.gen(function*() {
      const connect = Effect.map(connectClients(url, 1), ([client]) => client!)
      const pool = yield* Pool.make({ acquire: connect, maxSize })
      const query = (text: string) => pool.use((client) => send(client, text))
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
    const contenders: ReadonlyArray<Contender> = [
      await lifeguardPg(url),
      lifeguardPool(url),
      pgPool(url),
      effectSqlPg(url),
      pgPoolFibers(url),
      handoffCeiling(url)
    ]
    const windowMs = quick ? 300 : 1500
    const warmUpMs = quick ? 300 : 1000
    const items = configs.flatMap((config) => contenders.map((contender) => ({ config, contender })))
    // The server shares the two cores with the bench: more repetitions than the other suites, for a steadier median.
    const samples = await interleaved(quick ? reps : Math.max(reps, 7), items, async ({ config, contender }, warmUp) => {
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
