/**
 * A real MongoDB-compatible server for tests, the bench and `npm start`: FerretDB 1.24 with its
 * SQLite handler, run by the launcher in tools/ferretdb (built and cached by scripts/go-tool.sh).
 *
 * `sharedServer()` finds one server per process: `MONGODB_URL`, else a FerretDB this process
 * starts. `startFerretDB()` always starts a private instance, for tests that stop, restart or kill
 * their server.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { MongoClient } from "mongodb"
import { goTool } from "./goTool.js"
import { sharedPerProcess } from "./sharedServer.js"
import { freePort } from "./postgres.js"

export interface MongoServer {
  readonly url: string
  /** true when this process started the server (FerretDB) */
  readonly started: boolean
  /** stops and removes a started server; a no-op for a server this process did not start */
  readonly stop: () => Promise<void>
}

export interface FerretServer extends MongoServer {
  readonly port: number
  readonly dataDir: string
  /** SIGKILLs the server process, keeping its data directory and port */
  readonly kill: () => Promise<void>
  /** stops the server process (SIGTERM), keeping its data directory and port */
  readonly stopServer: () => Promise<void>
  /** starts the server again on the same port and data directory */
  readonly startServer: () => Promise<void>
}

const startTimeoutMs = 30_000
const stopTimeoutMs = 10_000
const probeTimeoutMs = 5_000

/** Resolves to undefined when a server answers `ping` at `url`, else to the reason it did not. */
export const probe = async (url: string, timeoutMs = probeTimeoutMs): Promise<string | undefined> => {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs })
  try {
    await client.db("admin").command({ ping: 1 })
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await client.close().catch(() => {})
  }
}

/** Waits for the child to print its "listening" line; rejects at once if it fails to spawn or exits. */
const awaitListening = (child: ChildProcess, port: number, output: () => string): Promise<void> =>
  new Promise((resolve, reject) => {
    let stdout = ""
    const done = (error?: Error) => {
      clearTimeout(timer)
      child.stdout?.off("data", onData)
      child.off("error", onError)
      child.off("exit", onExit)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onData = (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes("listening on")) done()
    }
    const onError = (error: Error) => done(new Error(`could not spawn: ${error.message}`))
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`exited (${signal ?? `code ${code}`}) before listening on 127.0.0.1:${port}${output()}`))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      done(new Error(`did not listen on 127.0.0.1:${port} within ${startTimeoutMs} ms${output()}`))
    }, startTimeoutMs)
    child.stdout?.on("data", onData)
    child.once("error", onError)
    child.once("exit", onExit)
  })

/** Sends `signal` and resolves once the process exited; SIGKILLs it if it outlives the deadline. */
const terminate = (child: ChildProcess, signal: NodeJS.Signals): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill(signal)
  })

/**
 * Starts a private FerretDB on a free 127.0.0.1 port with a fresh SQLite directory under
 * os.tmpdir(). Throws an Error that says why when it cannot (no Go, a failed build, a crash).
 */
export const startFerretDB = async (): Promise<FerretServer> => {
  const binary = await goTool("ferretdb")
  const dataDir = await mkdtemp(Path.join(Os.tmpdir(), "lifeguard-ferretdb-"))
  let port = await freePort()
  let child: ChildProcess | undefined
  const log: Array<string> = []
  const output = () => (log.length > 0 ? `\n--- server output ---\n${log.join("").slice(-4000)}` : "")

  const startServer = async () => {
    if (child !== undefined) return
    log.length = 0
    const proc = spawn(binary, ["-port", String(port), "-dir", Path.join(dataDir, "data")], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    proc.stderr.on("data", (chunk: Buffer) => {
      log.push(chunk.toString())
      if (log.length > 40) log.shift()
    })
    proc.once("exit", () => {
      if (child === proc) child = undefined
    })
    child = proc
    try {
      await awaitListening(proc, port, output)
    } catch (error) {
      child = undefined
      await terminate(proc, "SIGKILL")
      throw new Error(
        `FerretDB (${binary}, data ${dataDir}) failed to start: ${error instanceof Error ? error.message : error}`
      )
    }
  }
  const stopWith = (signal: NodeJS.Signals) => async () => {
    const running = child
    child = undefined
    if (running !== undefined) await terminate(running, signal)
  }

  try {
    // A port found free can be taken before the server binds it: try a fresh one once more.
    try {
      await startServer()
    } catch (error) {
      if (!String(error).includes("address already in use")) throw error
      port = await freePort()
      await startServer()
    }
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true })
    throw error
  }
  const stopServer = stopWith("SIGTERM")
  return {
    url: `mongodb://127.0.0.1:${port}/`,
    started: true,
    port,
    dataDir,
    kill: stopWith("SIGKILL"),
    stopServer,
    startServer,
    stop: async () => {
      await stopServer()
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}

const findServer = async (): Promise<MongoServer> => {
  const configured = process.env.MONGODB_URL
  if (configured !== undefined && configured !== "") {
    const failure = await probe(configured)
    if (failure !== undefined) throw new Error(`MONGODB_URL is set but the server does not answer: ${failure}`)
    return { url: configured, started: false, stop: () => Promise.resolve() }
  }
  return startFerretDB()
}

const shared = sharedPerProcess(findServer)

/**
 * The server this process's tests share: MONGODB_URL, else a FerretDB started here. Memoized per
 * process; never stop, restart or kill it in a test.
 */
export const sharedServer: () => Promise<MongoServer> = shared.get

/**
 * The shared server as a scoped resource. Reference counted: a started server is stopped when the
 * last scope that uses it closes.
 */
export const sharedServerScoped: Effect.Effect<MongoServer, never, Scope.Scope> = shared.scoped

/** A private FerretDB as a scoped resource, stopped and removed with the scope. */
export const ferretScoped: Effect.Effect<FerretServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(startFerretDB),
  (server) => Effect.promise(server.stop)
)

/** What the server at `url` can do that FerretDB 1.24 cannot: a replica set has all three. */
export interface Capabilities {
  readonly transactions: boolean
  readonly killSessions: boolean
  readonly failPoints: boolean
}

export const capabilities = async (url: string): Promise<Capabilities> => {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: probeTimeoutMs })
  try {
    const admin = client.db("admin")
    const hello = await admin.command({ hello: 1 })
    const supports = (command: Record<string, unknown>) =>
      admin.command(command).then(() => true, (error) => (error as { code?: number }).code !== 59)
    return {
      transactions: typeof hello.setName === "string" || hello.msg === "isdbgrid",
      killSessions: await supports({ killSessions: [] }),
      failPoints: await supports({ configureFailPoint: "failCommand", mode: "off" })
    }
  } finally {
    await client.close().catch(() => {})
  }
}

/** A fresh database name, so tests on a shared server do not see each other's documents. */
export const uniqueDb = (prefix: string) => `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
