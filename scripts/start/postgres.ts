/**
 * The PostgreSQL backend of `npm start`: one `lifeguard/pg` pool per scenario (an @effect/sql
 * client), an operation that inserts a row and reads it back, and a separate plain connection
 * that asks `pg_stat_activity` how many connections the pool really has open.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Reactivity from "@effect/experimental/Reactivity"
import pg from "pg"
import { PgPool } from "../../src/pg/index.js"
import { withoutPassword } from "../../src/pg/internal/config.js"
import type { Backend } from "./scenario.js"

const toError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)))

const connect = (url: string, applicationName: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ connectionString: url, application_name: applicationName })
        // A broken connection surfaces as a failed query; without a listener it would crash the process.
        client.on("error", () => {})
        await client.connect()
        return client
      },
      catch: (error) => new Error(`cannot connect to ${withoutPassword(url)}: ${toError(error).message}`)
    }),
    (client) => Effect.promise(() => client.end().catch(() => {}))
  )

export const backend = (url: string): Effect.Effect<Backend, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const run = `lifeguard-start-${process.pid}`
    const monitor = yield* connect(url, `${run}-monitor`)
    const query = <R extends pg.QueryResultRow>(text: string, values: ReadonlyArray<unknown> = []) =>
      Effect.tryPromise({ try: () => monitor.query<R>(text, values as Array<unknown>), catch: toError })
    // One table per run, so runs against a shared DATABASE_URL never meet; unlogged, as nothing
    // here needs to survive a crash.
    const table = `lifeguard_start_${process.pid}`
    yield* Effect.acquireRelease(
      query(`CREATE UNLOGGED TABLE IF NOT EXISTS ${table} (
        id bigserial PRIMARY KEY, worker int NOT NULL, seq int NOT NULL, payload text NOT NULL)`),
      () => Effect.ignore(query(`DROP TABLE IF EXISTS ${table}`))
    )

    let scenarios = 0
    return {
      name: "postgres",
      open: (scenario, onEvent) =>
        Effect.gen(function*() {
          // Its own application_name per scenario: the server may still list the last
          // scenario's connections for a moment after they were closed.
          const applicationName = `${run}-${++scenarios}`
          const sql = yield* PgPool.make({
            url,
            name: `start-${scenario.workers}w`,
            applicationName,
            maxSize: scenario.poolSize,
            onEvent
          }).pipe(Effect.provide(Reactivity.layer))
          const rows = sql(table)
          return {
            // Each statement checks a connection out and returns it: statement mode, as the
            // pooler document's workers do.
            operation: (worker, index) =>
              Effect.gen(function*() {
                const payload = `worker ${worker} op ${index}`
                const [inserted] = yield* sql<{ id: string }>`
                  INSERT INTO ${rows} (worker, seq, payload) VALUES (${worker}, ${index}, ${payload}) RETURNING id`
                const [read] = yield* sql<{ payload: string }>`SELECT payload FROM ${rows} WHERE id = ${inserted!.id}`
                if (read?.payload !== payload) {
                  return yield* Effect.fail(new Error(`row ${inserted!.id} read back as ${JSON.stringify(read)}`))
                }
              }),
            stats: sql.pool.stats,
            serverConnections: query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
              [applicationName]
            ).pipe(Effect.map((result) => result.rows[0]!.n))
          }
        })
    } satisfies Backend
  })
