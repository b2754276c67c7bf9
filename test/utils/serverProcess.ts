/**
 * Running the servers tests start themselves (Toxiproxy, PgBouncer, a primary and its standby),
 * with a deadline on every step: output kept for error messages, a spawn failure or early exit an
 * error at once, and PostgreSQL's tools and PgBouncer run as the `postgres` user when we are root
 * (they refuse root).
 */
import { execFile, spawn } from "node:child_process"
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

/** A long-running server process (Toxiproxy, PgBouncer), its output kept for error messages. */
export interface ServerProcess {
  /** An Error about this server: `what` happened, followed by the last lines it printed. */
  readonly why: (what: string) => Error
  /**
   * Polls `check` (undefined = ready, else why not) until it holds; rejects at once when the process
   * fails to spawn or exits first, or after `timeoutMs`. On a rejection the process is stopped.
   */
  readonly until: (check: () => Promise<string | undefined>, timeoutMs: number, doing: string) => Promise<void>
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; resolves once it is gone. */
  readonly stop: (timeoutMs?: number) => Promise<void>
}

const defaultStopTimeoutMs = 5_000

/**
 * Spawns `command`; `describe` names it in every error. `asServerUser`: run as the postgres user
 * when we are root (PgBouncer refuses root); otherwise as ourselves.
 */
export const spawnServer = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly describe: string; readonly asServerUser: boolean }
): ServerProcess => {
  const child = spawn(command, args, { ...(options.asServerUser ? user ?? {} : {}), stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-8_000)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  const why = (what: string) =>
    new Error(`${options.describe} ${what}` + (output.length > 0 ? `\n--- its output ---\n${output.slice(-3_000)}` : ""))
  let gone = false
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve())
    child.once("error", () => resolve())
  })
  void exited.then(() => {
    gone = true
  })
  const died = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(why(`could not be spawned: ${error.message}`)))
    child.once("exit", (code, signal) => reject(why(`exited before it was ready (code ${code}, signal ${signal})`)))
  })
  died.catch(() => {})
  const stop = async (timeoutMs = defaultStopTimeoutMs) => {
    if (gone) return
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    await exited
    clearTimeout(timer)
  }
  const until = async (check: () => Promise<string | undefined>, timeoutMs: number, doing: string) => {
    try {
      // The poll ends with the process too, so nothing keeps probing a dead server.
      const last = await Promise.race([poll(check, timeoutMs, () => !gone), died])
      if (last !== undefined) throw why(`did not ${doing} within ${timeoutMs} ms (last: ${last})`)
    } catch (error) {
      await stop()
      throw error
    }
  }
  return { why, until, stop }
}

/** Polls `ready` every 50 ms until it holds (undefined), `timeoutMs` passes or `going()` turns false; the last reason, if any. */
const poll = async (
  ready: () => Promise<string | undefined>,
  timeoutMs: number,
  going: () => boolean = () => true
): Promise<string | undefined> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const why = await ready()
    if (why === undefined || !going() || Date.now() >= deadline) return why
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Polls `ready` (undefined = ready, else why not) until it holds or `timeoutMs` passes. */
export const waitUntil = async (ready: () => Promise<string | undefined>, timeoutMs: number, what: string): Promise<void> => {
  const last = await poll(ready, timeoutMs)
  if (last !== undefined) throw new Error(`${what}: not ready within ${timeoutMs} ms (last: ${last})`)
}
