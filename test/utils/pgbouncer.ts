/**
 * A private PgBouncer (Debian's `pgbouncer` package) in front of a PostgreSQL server, for tests.
 *
 * `startPgBouncer(upstreamUrl)` writes its own ini and userlist in a fresh directory, starts it on a
 * free 127.0.0.1 port with pool_mode=transaction and waits, within a deadline, until it answers;
 * a child that fails to spawn or exits early is an error at once, with what it printed. `stop()`
 * ends it within a deadline (SIGTERM, then SIGKILL) and removes the directory.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { spawnServer } from "./child.js"
import { freePort, probe } from "./postgres.js"

export interface PgBouncerServer {
  /** The upstream's URL with PgBouncer's host and port. */
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

const binary = process.env.PGBOUNCER_BIN ?? "/usr/sbin/pgbouncer"
const startTimeoutMs = 15_000
const stopTimeoutMs = 5_000

export const startPgBouncer = async (upstreamUrl: string): Promise<PgBouncerServer> => {
  const upstream = new URL(upstreamUrl)
  const port = await freePort()
  const dir = await mkdtemp(Path.join(Os.tmpdir(), "lifeguard-pgbouncer-"))
  const user = decodeURIComponent(upstream.username || "postgres")
  const password = decodeURIComponent(upstream.password)
  const database = upstream.pathname.slice(1) || "postgres"
  const ini = [
    "[databases]",
    `* = host=${upstream.hostname} port=${upstream.port || "5432"} user=${user}${password ? ` password=${password}` : ""}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    // No unix socket: instances never fight over a socket directory.
    "unix_socket_dir =",
    "auth_type = trust",
    `auth_file = ${dir}/userlist.txt`,
    "pool_mode = transaction",
    "max_client_conn = 500",
    "default_pool_size = 20",
    "ignore_startup_parameters = extra_float_digits,options",
    ""
  ].join("\n")
  await writeFile(Path.join(dir, "pgbouncer.ini"), ini)
  await writeFile(Path.join(dir, "userlist.txt"), `"${user}" ""\n`)
  // PgBouncer refuses to run as root; as root it drops to the postgres user, who must read its files.
  const asRoot = process.getuid?.() === 0
  if (asRoot) await chmod(dir, 0o755)

  const args = [...(asRoot ? ["-u", "postgres"] : []), Path.join(dir, "pgbouncer.ini")]
  const server = spawnServer(binary, args, `PgBouncer (${binary}) on 127.0.0.1:${port}`, "\n(is it installed? apt-get install -y pgbouncer)")
  const through = new URL(upstreamUrl)
  through.hostname = "127.0.0.1"
  through.port = String(port)
  through.pathname = `/${database}`
  const url = through.toString()
  const stop = async () => {
    await server.stop(stopTimeoutMs)
    await rm(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + startTimeoutMs
  const ready = server.until((async () => {
    for (;;) {
      const failure = await probe(url, 1_000)
      if (failure === undefined) return
      if (Date.now() > deadline) throw server.why(`did not answer within ${startTimeoutMs} ms: ${failure}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })())
  try {
    await ready
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  return { url, port, stop }
}
