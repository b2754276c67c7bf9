/**
 * A private Toxiproxy server for tests and the soak, on 127.0.0.1, driven by toxiproxy-node-client.
 *
 * `startToxiproxy()` spawns the cached binary (test/utils/goTool.ts) with its API on a free port and
 * waits for the API to answer, within a deadline; a child that fails to spawn or exits early is an
 * error at once, with the last lines it printed. `proxy()` opens a proxy listening on a free
 * 127.0.0.1 port. `stop()` ends the child within a deadline (SIGTERM, then SIGKILL).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { type ICreateToxicBody, type Proxy, type Toxic, Toxiproxy, type ToxicType } from "toxiproxy-node-client"
import { goTool } from "./goTool.js"
import { freePort } from "./postgres.js"

export interface ToxiproxyServer {
  readonly apiUrl: string
  readonly client: Toxiproxy
  /** A proxy on a free 127.0.0.1 port forwarding to `upstream` ("host:port"). */
  readonly proxy: (name: string, upstream: string) => Promise<FaultyLink>
  readonly stop: () => Promise<void>
}

/** One proxy and the faults a test can switch on and off. */
export interface FaultyLink {
  readonly name: string
  readonly port: number
  readonly host: "127.0.0.1"
  readonly upstream: string
  /** Adds a toxic on both directions unless `stream` is given; resolves once Toxiproxy applied it. */
  readonly addToxic: (
    type: ToxicType,
    attributes: Record<string, number>,
    options?: { readonly stream?: "upstream" | "downstream"; readonly toxicity?: number }
  ) => Promise<void>
  /** Removes every toxic (the proxy stays enabled or disabled as it was). */
  readonly clearToxics: () => Promise<void>
  /** Disabled: the listener is closed (new connections are refused) and open ones are cut. */
  readonly setEnabled: (enabled: boolean) => Promise<void>
}

const startTimeoutMs = 15_000
const stopTimeoutMs = 5_000

export const startToxiproxy = async (): Promise<ToxiproxyServer> => {
  const binary = await goTool("toxiproxy")
  const port = await freePort()
  const apiUrl = `http://127.0.0.1:${port}`
  const log: Array<string> = []
  const remember = (chunk: Buffer) => {
    log.push(chunk.toString())
    if (log.length > 40) log.shift()
  }
  const child = spawn(binary, ["-host", "127.0.0.1", "-port", String(port)], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", remember)
  child.stderr!.on("data", remember)
  const why = (what: string) =>
    new Error(
      `Toxiproxy (${binary}) on 127.0.0.1:${port} ${what}` +
        (log.length > 0 ? `\n--- its output ---\n${log.join("").slice(-3000)}` : "")
    )
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  // Spawn failures and early exits reject at once instead of waiting for the start deadline.
  let early: ((error: Error) => void) | undefined
  const died = new Promise<never>((_, reject) => {
    early = reject
  })
  died.catch(() => {})
  child.once("error", (error) => early?.(why(`could not be spawned: ${error.message}`)))
  child.once("exit", (code, signal) => early?.(why(`exited before it was ready (code ${code}, signal ${signal})`)))

  const client = new Toxiproxy(apiUrl)
  const deadline = Date.now() + startTimeoutMs
  const ready = (async () => {
    for (;;) {
      try {
        await client.getVersion()
        return
      } catch (error) {
        if (Date.now() > deadline) {
          throw why(`did not answer on its API within ${startTimeoutMs} ms: ${(error as Error).message}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  })()
  try {
    await Promise.race([ready, died])
  } catch (error) {
    await kill(child, exited)
    throw error
  }
  early = undefined

  const proxy = async (name: string, upstream: string): Promise<FaultyLink> => {
    // A free port can be taken between the probe and the bind: try a few.
    let created: Proxy | undefined
    let listenPort = 0
    let lastError: unknown
    for (let attempt = 0; attempt < 5 && created === undefined; attempt++) {
      listenPort = await freePort()
      created = await client.createProxy({ name, listen: `127.0.0.1:${listenPort}`, upstream }).catch((error) => {
        lastError = error
        return undefined
      })
    }
    if (created === undefined) throw why(`could not open proxy "${name}" to ${upstream}: ${String(lastError)}`)
    const current = created
    let toxics = 0
    const active: Array<Toxic<unknown>> = []
    return {
      name,
      port: listenPort,
      host: "127.0.0.1",
      upstream,
      addToxic: async (type, attributes, options = {}) => {
        const streams = options.stream === undefined ? (["upstream", "downstream"] as const) : [options.stream]
        for (const stream of streams) {
          const toxic = await current.addToxic({
            name: `${type}-${stream}-${++toxics}`,
            type,
            stream,
            toxicity: options.toxicity ?? 1,
            attributes
          } as ICreateToxicBody<unknown>)
          active.push(toxic)
        }
      },
      clearToxics: async () => {
        for (const toxic of active.splice(0)) await toxic.remove()
      },
      setEnabled: async (enabled) => {
        await current.update({ enabled, listen: `127.0.0.1:${listenPort}`, upstream })
      }
    }
  }

  return {
    apiUrl,
    client,
    proxy,
    stop: () => kill(child, exited)
  }
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
