/**
 * The PostgreSQL server `npm start` runs against: DATABASE_URL, else a private embedded
 * server in a temporary folder that is stopped and removed when the scope closes.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { startEmbedded } from "../../test/utils/postgres.js"

export interface Server {
  readonly url: string
  /** Whether this process started the server. */
  readonly embedded: boolean
}

export const server = (log: (line: string) => void): Effect.Effect<Server, Error, Scope.Scope> => {
  const configured = process.env.DATABASE_URL
  if (configured !== undefined && configured !== "") {
    return Effect.succeed({ url: configured, embedded: false })
  }
  return Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const started = performance.now()
        const embedded = await startEmbedded()
        log(`embedded PostgreSQL on 127.0.0.1:${embedded.port} (${embedded.dataDir}), ` +
          `started in ${Math.round(performance.now() - started)}ms`)
        return embedded
      },
      catch: (error) => error instanceof Error ? error : new Error(String(error))
    }),
    // A Ctrl-C in a terminal reaches the postgres process too; stop returns at once for a server
    // that has already exited.
    (embedded) =>
      Effect.promise(async () => {
        await embedded.stop()
        log("embedded PostgreSQL stopped and removed")
      })
  ).pipe(Effect.map((embedded) => ({ url: embedded.url, embedded: true })))
}
