/**
 * A server child process for tests (Toxiproxy, PgBouncer): spawned with its output kept for error
 * messages, an early death turned into an error at once, and a stop with a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process"

export interface ServerChild {
  readonly child: ChildProcess
  /** An Error about this server: `what` happened, followed by the last lines it printed. */
  readonly why: (what: string) => Error
  /**
   * Resolves as `ready` does, or rejects at once when the child fails to spawn or exits first;
   * on a rejection the child is stopped.
   */
  readonly until: <A>(ready: Promise<A>) => Promise<A>
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the child is gone. */
  readonly stop: (timeoutMs?: number) => Promise<void>
}

export const spawnServer = (
  binary: string,
  args: ReadonlyArray<string>,
  describe: string,
  hint = ""
): ServerChild => {
  const log: Array<string> = []
  const remember = (chunk: Buffer) => {
    log.push(chunk.toString())
    if (log.length > 40) log.shift()
  }
  const why = (what: string) =>
    new Error(
      `${describe} ${what}` + (log.length > 0 ? `\n--- its output ---\n${log.join("").slice(-3000)}` : "") + hint
    )
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", remember)
  child.stderr!.on("data", remember)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const died = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(why(`could not be spawned: ${error.message}`)))
    child.once("exit", (code, signal) => reject(why(`exited before it was ready (code ${code}, signal ${signal})`)))
  })
  died.catch(() => {})
  const stop = async (timeoutMs = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    child.kill("SIGTERM")
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeoutMs)
    })
    const outcome = await Promise.race([exited, late])
    clearTimeout(timer)
    if (outcome === "late") {
      child.kill("SIGKILL")
      await exited
    }
  }
  const until = async <A>(ready: Promise<A>) => {
    try {
      return await Promise.race([ready, died])
    } catch (error) {
      await stop()
      throw error
    }
  }
  return { child, why, until, stop }
}
