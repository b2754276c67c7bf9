/**
 * Running the servers tests start themselves (PgBouncer, a primary and its standby): as the
 * `postgres` user when we are root (both refuse to run as root), with a deadline on every step.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { chmod, chown, mkdtemp } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

/** The uid/gid to run servers as: the `postgres` user when we are root, else ourselves. */
const runAs = (): { readonly uid: number; readonly gid: number } | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((entry) => entry.startsWith("postgres:"))
  if (line === undefined) {
    throw new Error("running as root and there is no postgres user to run the servers as (PgBouncer and PostgreSQL refuse root)")
  }
  const [, , uid, gid] = line.split(":")
  return { uid: Number(uid), gid: Number(gid) }
}

const user = runAs()

/** A fresh directory under os.tmpdir() that the server user owns. */
export const serverTempDir = async (prefix: string): Promise<string> => {
  const dir = await mkdtemp(Path.join(Os.tmpdir(), prefix))
  if (user !== undefined) await chown(dir, user.uid, user.gid)
  await chmod(dir, 0o700)
  return dir
}

/** Runs a command to completion as the server user; rejects with its output when it fails or overruns. */
export const runTool = (command: string, args: ReadonlyArray<string>, timeoutMs: number): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, killSignal: "SIGKILL", ...(user ?? {}), env: { ...process.env, LC_ALL: "C" } },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout)
        const why = error.killed ? `did not finish within ${timeoutMs} ms` : error.message
        reject(new Error(`${Path.basename(command)} ${args.join(" ")}: ${why}\n${stderr.trim()}\n${stdout.trim()}`.trim()))
      }
    )
  })

/** A long-running server process, its output kept for error messages. */
export interface ServerProcess {
  readonly child: ChildProcess
  /** The last few kilobytes the process printed. */
  readonly output: () => string
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. */
  readonly stop: (timeoutMs: number) => Promise<void>
}

export const spawnServer = (command: string, args: ReadonlyArray<string>): ServerProcess => {
  const child = spawn(command, args, { ...(user ?? {}), stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-8_000)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve()
    child.once("exit", () => resolve())
    child.once("error", (error) => {
      keep(Buffer.from(String(error)))
      resolve()
    })
  })
  let gone = false
  void exited.then(() => {
    gone = true
  })
  return {
    child,
    output: () => output,
    exited,
    stop: async (timeoutMs) => {
      if (gone) return
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
      await exited
      clearTimeout(timer)
    }
  }
}

/** Polls `ready` (undefined = ready, else why not) until it holds or `timeoutMs` passes. */
export const waitUntil = async (
  ready: () => Promise<string | undefined>,
  timeoutMs: number,
  what: string,
  stillRunning: () => string | undefined = () => undefined
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let why: string | undefined = "not tried"
  for (;;) {
    why = await ready()
    if (why === undefined) return
    const dead = stillRunning()
    if (dead !== undefined) throw new Error(`${what}: ${dead}`)
    if (Date.now() >= deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms (last: ${why})`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
