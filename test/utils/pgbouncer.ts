/**
 * A real PgBouncer (Debian's `pgbouncer` package; `.ci/run` installs it) in front of a
 * PostgreSQL server, for tests. Each instance writes its own ini and user list to a temporary
 * directory, listens on a free 127.0.0.1 port, and runs as the postgres user when we are root.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { existsSync } from "node:fs"
import { rm, writeFile } from "node:fs/promises"
import * as Path from "node:path"
import { freePort, probe } from "./postgres.js"
import { serverTempDir, spawnServer } from "./serverProcess.js"

export interface PgBouncerOptions {
  /** The server PgBouncer forwards to; its database is the one clients reach. */
  readonly target: string
  readonly poolMode?: "session" | "transaction" | "statement"
  /** Server connections per (database, user) pair. */
  readonly poolSize?: number
  readonly maxClientConn?: number
}

export interface PgBouncerServer {
  /** What clients connect to: the target's database and user, through PgBouncer. */
  readonly url: string
  /** PgBouncer's admin console (`SHOW POOLS`, `SHOW SERVERS`, ...). */
  readonly adminUrl: string
  readonly port: number
  readonly stop: () => Promise<void>
}

const binary = "/usr/sbin/pgbouncer"
const startTimeoutMs = 15_000
const stopTimeoutMs = 5_000

/** Starts PgBouncer; throws an Error that says why when it cannot. */
export const startPgBouncer = async (options: PgBouncerOptions): Promise<PgBouncerServer> => {
  if (!existsSync(binary)) {
    throw new Error(`PgBouncer is not installed (${binary} is missing): apt-get install -y pgbouncer (.ci/run does)`)
  }
  const target = new URL(options.target)
  const database = decodeURIComponent(target.pathname.slice(1)) || "postgres"
  const user = decodeURIComponent(target.username) || "postgres"
  const password = decodeURIComponent(target.password)
  const port = await freePort()
  const dir = await serverTempDir("lifeguard-pgbouncer-")
  const ini = Path.join(dir, "pgbouncer.ini")
  const server = [
    `host=${target.hostname}`,
    `port=${target.port || "5432"}`,
    `dbname=${database}`,
    `user=${user}`,
    ...(password === "" ? [] : [`password=${password}`])
  ].join(" ")
  await writeFile(Path.join(dir, "userlist.txt"), `"${user}" ""\n`, { mode: 0o644 })
  await writeFile(
    ini,
    [
      "[databases]",
      `${database} = ${server}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      // No unix socket: instances never fight over a socket file.
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${Path.join(dir, "userlist.txt")}`,
      `admin_users = ${user}`,
      `pool_mode = ${options.poolMode ?? "transaction"}`,
      `default_pool_size = ${options.poolSize ?? 10}`,
      "reserve_pool_size = 0",
      `max_client_conn = ${options.maxClientConn ?? 200}`,
      // Extra server connections would blur "the server never sees more than the pool size".
      "min_pool_size = 0",
      "server_lifetime = 3600",
      "server_idle_timeout = 600",
      "ignore_startup_parameters = extra_float_digits",
      `pidfile = ${Path.join(dir, "pgbouncer.pid")}`,
      ""
    ].join("\n"),
    { mode: 0o644 }
  )
  const bouncer = spawnServer(binary, [ini], {
    describe: `PgBouncer on 127.0.0.1:${port} (in front of ${target.host}/${database})`,
    asServerUser: true
  })
  const url = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`
  const removeDir = () => rm(dir, { recursive: true, force: true })
  const stop = async () => {
    await bouncer.stop(stopTimeoutMs)
    await removeDir()
  }
  try {
    await bouncer.until(() => probe(url), startTimeoutMs, "accept connections")
  } catch (error) {
    await removeDir()
    throw error
  }
  return { url, adminUrl: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/pgbouncer`, port, stop }
}

/** PgBouncer as a scoped resource, stopped (within its deadline) with the scope. */
export const pgbouncerScoped = (options: PgBouncerOptions): Effect.Effect<PgBouncerServer, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => startPgBouncer(options)), (bouncer) => Effect.promise(bouncer.stop))
