/**
 * A private Toxiproxy server for tests and the soak, on 127.0.0.1, driven by toxiproxy-node-client.
 *
 * `startToxiproxy()` spawns the cached binary (test/utils/goTool.ts) with its API on a free port and
 * waits for the API to answer, within a deadline; a child that fails to spawn or exits early is an
 * error at once, with the last lines it printed. `proxy()` opens a proxy listening on a free
 * 127.0.0.1 port. `stop()` ends the child within a deadline (SIGTERM, then SIGKILL).
 */
import { type ICreateToxicBody, type Proxy, type Toxic, Toxiproxy, type ToxicType } from "toxiproxy-node-client"
import { spawnServer } from "./serverProcess.js"
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
  const server = spawnServer(binary, ["-host", "127.0.0.1", "-port", String(port)], {
    describe: `Toxiproxy (${binary}) on 127.0.0.1:${port}`,
    asServerUser: false
  })
  const why = server.why
  const client = new Toxiproxy(apiUrl)
  await server.until(
    () => client.getVersion().then(() => undefined, (error: Error) => error.message),
    startTimeoutMs,
    "answer on its API"
  )

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
    stop: () => server.stop(stopTimeoutMs)
  }
}
