/**
 * Real faults between a lifeguard/pg pool and the shared PostgreSQL server, injected by Toxiproxy.
 * Each scenario asserts behaviour (typed errors, bounds, nothing lost, nothing hung, nothing
 * leaked) and records its figures for docs/reliability.md (scripts/reliability-report.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Logger, LogLevel, Option } from "effect"
import { sharedServer, uniqueName } from "../utils/postgres.js"
import { startToxiproxy, type ToxiproxyServer } from "../utils/toxiproxy.js"
import {
  checkWrites,
  eventCounter,
  mix,
  pgAdapter as adapter,
  recordResult,
  serverConnectionsAfterClose,
  sleep,
  startLoad,
  timeToRecover
} from "./harness.js"

const server = await sharedServer()
const upstream = (() => {
  const url = new URL(server.url)
  return `${url.hostname}:${url.port || "5432"}`
})()
let toxiproxy: ToxiproxyServer
beforeAll(async () => {
  toxiproxy = await startToxiproxy()
  await adapter.prepare(server.url)
})
afterAll(async () => {
  await toxiproxy?.stop()
  await server.stop()
})

const seed = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)
// The seed picks each fiber's mix of operations; a failure names it so the same mix can be replayed.
const withSeed = (name: string) => `${name} (RELIABILITY_SEED=${seed})`

/** The default retry schedule's longest step: 5 s, jittered up to x1.2. */
const longestBackoffMs = 6_000

/** The pool logs every failed set-up; a fault run makes hundreds. */
const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.causeOption(exit).pipe(
    Option.flatMap((cause) => cause._tag === "Fail" ? Option.some(cause.error) : Option.none())
  )) : undefined

describe("Toxiproxy between a lifeguard/pg pool and PostgreSQL", () => {
  it.live(withSeed("blackhole: checkouts fail at acquireTimeout, in-flight work by its deadline, and the pool serves again"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-blackhole")
      const link = yield* Effect.promise(() => toxiproxy.proxy(name, upstream))
      const events = eventCounter()
      const acquireTimeout = 1_500
      const createTimeout = 1_000
      const checkTimeout = 1_000
      // Shorter than acquireTimeout: load fibers give up first; the probe below has no deadline of its own.
      const deadline = 1_000
      const settings = { name, maxSize: 6, acquireTimeout, createTimeout, checkTimeout, validateAfterIdle: 200 }
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const subject = yield* adapter.make(server.url, link, settings, events.onEvent)
        const pick = mix(seed)
        const load = yield* startLoad(subject, adapter, { fibers: 20, pick, run: name, watchdog: "15 seconds", deadline, slowMs: 300, bigRows: 300 })
        yield* sleep(1_500)
        yield* Effect.promise(() => link.addToxic("timeout", { timeout: 0 }))
        // Stuck queries hit their deadline, their cancel its bound, and the replacements' set-ups createTimeout.
        yield* sleep(deadline + checkTimeout + createTimeout + 500)
        // A checkout once set-ups have failed: the typed timeout, with the set-up's own error.
        const [probeTook, probe] = yield* Effect.timed(Effect.exit(subject.read))
        yield* sleep(500)
        const during = yield* load.snapshot
        yield* Effect.promise(() => link.clearToxics())
        const recoveryMs = yield* timeToRecover(load.nextOk, 20_000)
        yield* sleep(1_000)
        const report = yield* load.stop
        return { probeTook: Duration.toMillis(probeTook), probe, during, recoveryMs, report, stats: yield* subject.stats }
      }))
      const leaked = yield* Effect.promise(() => serverConnectionsAfterClose(adapter, server.url, name))
      const writes = yield* Effect.promise(() => checkWrites(adapter, server.url, name, run.report.acked))

      const probeError = failureOf(run.probe) as { cause?: { _tag?: string; lastConnectError?: { _tag?: string } } }
      expect(adapter.classify(probeError)).toBe("PoolTimeoutError")
      expect(probeError.cause?.lastConnectError?._tag).toBe("ConnectTimeoutError")
      expect(run.probeTook).toBeGreaterThanOrEqual(acquireTimeout - 50)
      expect(run.probeTook).toBeLessThan(acquireTimeout + 2_000)
      // Work in flight ends by its deadline (plus the cancel's own bound), never later.
      expect(run.report.maxMs).toBeLessThan(deadline + checkTimeout + 2_000)
      expect(run.during.errors.Deadline ?? 0).toBeGreaterThan(0)
      expect(run.report.untyped).toStrictEqual([])
      expect(run.report.hung).toBe(0)
      expect(run.recoveryMs).toBeLessThan(createTimeout + longestBackoffMs + 1_000)
      expect(run.stats.inUse).toBe(0)
      expect(leaked).toBe(0)
      expect(writes.lost).toStrictEqual([])
      expect(writes.duplicated).toStrictEqual([])
      recordResult({
        scenario: "blackhole",
        adapter: adapter.name,
        load: "20 fibers, mixed reads/writes/slow/large/bad, 1 s deadline each",
        faults: "timeout toxic (0 = drop everything) on both directions for ~5.5 s",
        badInputs: run.report.tried.bad ?? 0,
        ops: run.report.ops,
        ok: run.report.ok,
        errors: run.report.errors,
        writesAcknowledged: writes.acknowledged,
        writesFound: writes.found,
        writesDuplicated: writes.duplicated.length,
        connectionsLeaked: leaked + run.stats.inUse,
        fibersHung: run.report.hung,
        recoveryMs: run.recoveryMs,
        notes: `a checkout during the blackhole failed after ${run.probeTook} ms (acquireTimeout ${acquireTimeout} ms) ` +
          `with PoolTimeoutError carrying ConnectTimeoutError; slowest operation ${run.report.maxMs} ms (deadline ${deadline} ms)`
      })
    }).pipe(quiet), 60_000)
})
