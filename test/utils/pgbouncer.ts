/**
 * A private PgBouncer (Debian's `pgbouncer` package) in front of a PostgreSQL server, for tests.
 *
 * `startPgBouncer(upstreamUrl)` writes its own ini and userlist in a fresh directory, starts it on a
 * free 127.0.0.1 port with pool_mode=transaction and waits, within a deadline, until it answers;
 * a child that fails to spawn or exits early is an error at once, with what it printed. `stop()`
 * ends it within a deadline (SIGTERM, then SIGKILL) and removes the directory.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
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

  const log: Array<string> = []
  const remember = (chunk: Buffer) => {
    log.push(chunk.toString())
    if (log.length > 40) log.shift()
  }
  const why = (what: string) =>
    new Error(
      `PgBouncer (${binary}) on 127.0.0.1:${port} ${what}` +
        (log.length > 0 ? `\n--- its output ---\n${log.join("").slice(-3000)}` : "") +
        (what.includes("spawn") ? "\n(install it with: apt-get install -y pgbouncer)" : "")
    )
  const args = [...(asRoot ? ["-u", "postgres"] : []), Path.join(dir, "pgbouncer.ini")]
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", remember)
  child.stderr!.on("data", remember)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  let early: ((error: Error) => void) | undefined
  const died = new Promise<never>((_, reject) => {
    early = reject
  })
  died.catch(() => {})
  child.once("error", (error) => early?.(why(`could not be spawned: ${error.message}`)))
  child.once("exit", (code, signal) => early?.(why(`exited before it was ready (code ${code}, signal ${signal})`)))

  const through = new URL(upstreamUrl)
  through.hostname = "127.0.0.1"
  through.port = String(port)
  through.pathname = `/${database}`
  const url = through.toString()
  const stop = async () => {
    await kill(child, exited)
    await rm(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + startTimeoutMs
  const ready = (async () => {
    for (;;) {
      const failure = await probe(url, 1_000)
      if (failure === undefined) return
      if (Date.now() > deadline) throw why(`did not answer within ${startTimeoutMs} ms: ${failure}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  try {
    await Promise.race([ready, died])
  } catch (error) {
    await stop()
    throw error
  }
  early = undefined
  return { url, port, stop }
}

const kill = async (child: ChildProcess, exited: Promise<void>): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  child.kill("SIGTERM")
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), stopTimeoutMs)
  })
  const outcome = await Promise.race([exited, late])
  clearTimeout(timer)
  if (outcome === "late") {
    child.kill("SIGKILL")
    await exited
  }
}
