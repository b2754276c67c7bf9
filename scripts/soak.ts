/**
 * npm run soak -- --minutes N [--adapter postgres|mongodb] [--json] [--seed S] [--fibers F]
 *
 * A random load on a lifeguard/pg pool (the default) or a lifeguard/mongodb pool through
 * Toxiproxy, against the shared PostgreSQL (DATABASE_URL, else 127.0.0.1:5432, else an embedded
 * one) or FerretDB (MONGODB_URL, else a private one), with a random fault switched on and off
 * every few seconds. Prints throughput, errors by type, connections, waiters and heap
 * used every 5 s; at the end asserts that the heap did not grow past a bound, that no fiber hung,
 * no connection leaked and every acknowledged write is stored once. Not run in CI.
 */
import { Effect, Logger, LogLevel } from "effect"
import { writeFileSync, mkdirSync } from "node:fs"
import { type Adapter, mix, pgAdapter, runScenario, seeded, sleep } from "../test/reliability/harness.js"
import { mongoAdapter } from "../test/reliability/mongodb.js"
import * as FerretDB from "../test/utils/ferretdb.js"
import * as Postgres from "../test/utils/postgres.js"
import { type FaultyLink, startToxiproxy } from "../test/utils/toxiproxy.js"

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? undefined : process.argv[i + 1]
}
const minutes = Number(arg("minutes") ?? 1)
const json = process.argv.includes("--json")
const seed = Number(arg("seed") ?? Date.now() % 1_000_000)
const fibers = Number(arg("fibers") ?? 50)
const adapterName = arg("adapter") ?? "postgres"

/** Per adapter: the server, the pool under test and what its load may do. */
const subjects: Record<string, () => { adapter: Adapter; server: () => Promise<{ url: string; stop: () => Promise<void> }>; weights?: Record<string, number> }> = {
  postgres: () => ({ adapter: pgAdapter, server: Postgres.sharedServer }),
  mongodb: () => ({
    // Heartbeats every 500 ms (the driver's minimum) so an outage is seen within a fault's few seconds.
    adapter: mongoAdapter(FerretDB.uniqueDb("lg_soak"), { heartbeatFrequencyMS: 500, serverSelectionTimeoutMS: 2_000, connectTimeoutMS: 1_000 }),
    server: FerretDB.sharedServer,
    // FerretDB has no server-side error of the harness's "bad input" kind (pg's SQLSTATE 22).
    weights: { bad: 0 }
  })
}
if (!(adapterName in subjects)) throw new Error(`--adapter must be one of ${Object.keys(subjects).join(", ")} (got ${adapterName})`)
const { adapter, server: startServer, weights } = subjects[adapterName]!()
/** Heap after the run may exceed the heap after warm-up by this much, at most. */
const heapBoundMb = 64

type Fault = { readonly name: string; readonly apply: (link: FaultyLink) => Promise<void> }
const faults: ReadonlyArray<Fault> = [
  { name: "latency 50±25 ms", apply: (l) => l.addToxic("latency", { latency: 50, jitter: 25 }) },
  { name: "blackhole", apply: (l) => l.addToxic("timeout", { timeout: 0 }) },
  { name: "reset_peer", apply: (l) => l.addToxic("reset_peer", { timeout: 0 }) },
  { name: "refused", apply: (l) => l.setEnabled(false) },
  { name: "bandwidth 200 KB/s", apply: (l) => l.addToxic("bandwidth", { rate: 200 }, { stream: "downstream" }) },
  {
    name: "slicer",
    apply: (l) => l.addToxic("slicer", { average_size: 64, size_variation: 48, delay: 200 }, { stream: "downstream" })
  }
]

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)
const log = (line: object) => console.log(json ? JSON.stringify(line) : Object.entries(line).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" "))

const main = async () => {
  const server = await startServer()
  const toxiproxy = await startToxiproxy()
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
  try {
    await adapter.prepare(server.url)
    const url = new URL(server.url)
    const name = Postgres.uniqueName("soak")
    const link = await toxiproxy.proxy(name, `${url.hostname}:${url.port || (adapterName === "mongodb" ? "27017" : "5432")}`)
    const random = seeded(seed)
    const injected: Record<string, number> = {}
    let heapAfterWarmup = 0
    let heapPeak = 0
    const startedAt = Date.now()
    const run = await Effect.runPromise(runScenario({
      adapter,
      url: server.url,
      target: link,
      settings: { name, maxSize: 10, acquireTimeout: 3_000, createTimeout: 1_000, checkTimeout: 1_000 },
      load: { fibers, pick: mix(seed, weights), watchdog: "30 seconds", deadline: 5_000, slowMs: 200, bigRows: 500 },
      body: (subject, load) =>
        Effect.gen(function*() {
          let last = yield* load.snapshot
          let lastAt = Date.now()
          const end = startedAt + minutes * 60_000
          let nextFaultAt = Date.now() + 5_000
          let faulty = false
          while (Date.now() < end) {
            yield* sleep(5_000)
            if (Date.now() >= nextFaultAt) {
              yield* Effect.promise(async () => {
                await link.clearToxics()
                await link.setEnabled(true)
              })
              faulty = !faulty && random() < 0.7
              if (faulty) {
                const fault = faults[Math.floor(random() * faults.length)]!
                injected[fault.name] = (injected[fault.name] ?? 0) + 1
                yield* Effect.promise(() => fault.apply(link))
              }
              nextFaultAt = Date.now() + 3_000 + random() * 7_000
            }
            gc()
            const heap = process.memoryUsage().heapUsed
            if (heapAfterWarmup === 0) heapAfterWarmup = heap
            heapPeak = Math.max(heapPeak, heap)
            const now = yield* load.snapshot
            const stats = yield* subject.stats
            const errors: Record<string, number> = {}
            for (const [key, n] of Object.entries(now.errors)) {
              const delta = n - (last.errors[key] ?? 0)
              if (delta > 0) errors[key] = delta
            }
            log({
              t: Math.round((Date.now() - startedAt) / 1000),
              opsPerSec: Math.round((now.ok - last.ok) / ((Date.now() - lastAt) / 1000)),
              errors,
              total: stats.total,
              inUse: stats.inUse,
              idle: stats.idle,
              pending: stats.pending,
              waiting: stats.waiting,
              heapMb: mb(heap),
              hung: now.hung
            })
            last = now
            lastAt = Date.now()
          }
          yield* Effect.promise(async () => {
            await link.clearToxics()
            await link.setEnabled(true)
          })
          yield* sleep(8_000)
        })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
    gc()
    const heapEnd = process.memoryUsage().heapUsed
    const summary = {
      scenario: "soak",
      adapter: adapter.name,
      seed,
      minutes,
      fibers,
      ops: run.report.ops,
      ok: run.report.ok,
      errors: run.report.errors,
      untyped: run.report.untyped.length,
      badInputs: run.report.tried.bad ?? 0,
      faultsInjected: injected,
      writesAcknowledged: run.writes.acknowledged,
      writesFound: run.writes.found,
      writesDuplicated: run.writes.duplicated.length,
      writesLost: run.writes.lost.length,
      connectionsLeaked: run.leaked,
      fibersHung: run.report.hung,
      heapAfterWarmupMb: mb(heapAfterWarmup),
      heapPeakMb: mb(heapPeak),
      heapEndMb: mb(heapEnd),
      heapBoundMb
    }
    mkdirSync(".tmp/reliability", { recursive: true })
    writeFileSync(`.tmp/reliability/${adapter.name}-soak.json`, JSON.stringify(summary, null, 2))
    log(summary)
    const problems: Array<string> = []
    if (heapEnd - heapAfterWarmup > heapBoundMb * 1024 * 1024) {
      problems.push(`heap grew from ${mb(heapAfterWarmup)} MB to ${mb(heapEnd)} MB (bound +${heapBoundMb} MB)`)
    }
    if (run.report.hung > 0) problems.push(`${run.report.hung} operations hung`)
    if (run.leaked > 0) problems.push(`${run.leaked} connections leaked`)
    if (run.report.untyped.length > 0) problems.push(`untyped errors: ${run.report.untyped.slice(0, 3).join("; ")}`)
    if (run.writes.lost.length > 0) problems.push(`${run.writes.lost.length} acknowledged writes lost`)
    if (run.writes.duplicated.length > 0) problems.push(`${run.writes.duplicated.length} writes stored twice`)
    if (problems.length > 0) {
      console.error(`soak failed (seed ${seed}):\n  ${problems.join("\n  ")}`)
      process.exitCode = 1
    }
  } finally {
    await toxiproxy.stop()
    await server.stop()
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
