/**
 * The MongoDB backend of `npm start`: one `lifeguard/mongodb` pool per scenario, an operation
 * that inserts a document and reads it back (two leases, statement mode), and the connections
 * the server has open for the pool: `serverStatus.connections` counts every client of the
 * server, so the count is the driver's own, from its CMAP events (FerretDB reports none either).
 *
 * The server is MONGODB_URL, else a FerretDB started from tools/ferretdb when Go can build it.
 */
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import { MongoPool } from "../../src/mongodb/index.js"
import type { Backend } from "./scenario.js"

const withoutPassword = (url: string) => url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")

/**
 * MONGODB_URL, else a private FerretDB stopped with the scope; none (with the reason logged)
 * when there is neither a URL nor a Go toolchain to build the launcher.
 */
export const server = (log: (line: string) => void): Effect.Effect<Option.Option<string>, never, Scope.Scope> => {
  const configured = process.env.MONGODB_URL
  if (configured !== undefined && configured !== "") {
    log(`MONGODB_URL is set: running MongoDB scenarios on ${withoutPassword(configured)}`)
    return Effect.succeed(Option.some(configured))
  }
  return Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const { startFerretDB } = await import("../../test/utils/ferretdb.js")
      const started = performance.now()
      const ferret = await startFerretDB()
      log(`FerretDB on 127.0.0.1:${ferret.port} (${ferret.dataDir}), started in ${Math.round(performance.now() - started)}ms`)
      return ferret
    }),
    (ferret) =>
      Effect.promise(async () => {
        await ferret.stop()
        log("FerretDB stopped and removed")
      })
  ).pipe(
    Effect.map((ferret) => Option.some(ferret.url)),
    Effect.catchAll((error) =>
      Effect.sync(() => {
        log(
          `no MongoDB scenarios: set MONGODB_URL, or install Go so that tools/ferretdb can be built ` +
            `(${String(error.error instanceof Error ? error.error.message : error.error).split("\n")[0]})`
        )
        return Option.none<string>()
      })
    )
  )
}

export const backend = (url: string): Effect.Effect<Backend, never, Scope.Scope> =>
  Effect.sync(() => {
    const database = `lifeguard_start_${process.pid}`
    let scenarios = 0
    return {
      name: "mongodb",
      open: (scenario, onEvent) =>
        Effect.gen(function*() {
          const mongo = yield* MongoPool.make({
            url,
            database,
            name: `start-${scenario.workers}w`,
            maxSize: scenario.poolSize,
            // Lease events only: the scenario engine measures checkout waits from them.
            onEvent: (event) => {
              if (!("address" in event)) onEvent(event)
            }
          })
          const docs = mongo.db.collection<{ _id: string; worker: number; seq: number }>(`run${++scenarios}`)
          yield* Effect.addFinalizer(() => Effect.promise(() => docs.drop().catch(() => false)))
          return {
            operation: (worker, index) =>
              Effect.gen(function*() {
                const _id = `${worker}-${index}`
                yield* mongo.promise((_, { session }) => docs.insertOne({ _id, worker, seq: index }, { session }))
                const read = yield* mongo.promise((_, { session, signal }) => docs.findOne({ _id }, { session, signal }))
                if (read?.seq !== index) {
                  return yield* Effect.fail(new Error(`document ${_id} read back as ${JSON.stringify(read)}`))
                }
              }),
            stats: mongo.pool.stats,
            serverConnections: Effect.map(
              mongo.driverConnections,
              (servers) => servers.reduce((n, s) => n + s.idle + s.inUse + s.pending, 0)
            )
          }
        })
    } satisfies Backend
  })
