/**
 * Real faults between a lifeguard/mongodb pool and a private FerretDB, injected by Toxiproxy (and,
 * last, by killing the server). Each scenario asserts behaviour (typed errors, bounds, nothing
 * lost or written twice, nothing hung, no socket left open) and records its figures for
 * docs/reliability.md (scripts/reliability-report.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Logger, LogLevel, Option } from "effect"
import type { PoolEvent } from "../../src/PoolEvent.js"
import { type FerretServer, startFerretDB, uniqueDb } from "../utils/ferretdb.js"
import { uniqueName } from "../utils/postgres.js"
import { type FaultyLink, startToxiproxy, type ToxiproxyServer } from "../utils/toxiproxy.js"
import {
  checkWrites,
  type LoadReport,
  mix,
  recordResult,
  serverConnectionsAfterClose,
  sleep,
  startLoad,
  type Subject,
  timeToRecover
} from "./harness.js"
import { mongoAdapter } from "./mongodb.js"

// The driver notices a dead server by its heartbeat: 500 ms is its minimum, so scenarios stay short.
const driver = { heartbeatFrequencyMS: 500, serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 }
const adapter = mongoAdapter(uniqueDb("lg_reliability"), driver)

let ferret: FerretServer
let toxiproxy: ToxiproxyServer
beforeAll(async () => {
  ferret = await startFerretDB()
  toxiproxy = await startToxiproxy()
  await adapter.prepare(ferret.url)
}, 60_000)
afterAll(async () => {
  await toxiproxy?.stop()
  await ferret?.stop()
})

const seed = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)
const withSeed = (name: string) => `${name} (RELIABILITY_SEED=${seed})`
// FerretDB has no server-side error of a "bad input" kind the harness checks (it is pg's SQLSTATE 22).
const weights = { bad: 0 }

/** The pool logs every failed set-up; a fault run makes hundreds. */
const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

const acquireTimeout = 1_500
const createTimeout = 1_000
const checkTimeout = 1_000
const maxConnecting = 2
/** Shorter than acquireTimeout: load fibers give up first; probes have no deadline of their own. */
const deadline = 1_000
const settings = (name: string) => ({ name, maxSize: 6, maxConnecting, acquireTimeout, createTimeout, checkTimeout })

/** How long the proxy refuses connections in the "refused" scenario. */
const outageMs = 3_000

const upstream = () => `127.0.0.1:${ferret.port}`

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit)
    ? Option.getOrUndefined(Exit.causeOption(exit).pipe(
      Option.flatMap((cause) => cause._tag === "Fail" ? Option.some(cause.error) : Option.none())
    ))
    : undefined

/** Set-ups in progress at once, lifeguard's (lease slots) and the driver's (sockets), and their peaks. */
const attempts = () => {
  const pending = { lease: new Set<number>(), socket: new Set<number>() }
  const peak = { lease: 0, socket: 0 }
  const created = { lease: 0, socket: 0 }
  let counting = false
  return {
    peak,
    created,
    count: (on: boolean) => {
      counting = on
      if (on) {
        peak.lease = pending.lease.size
        peak.socket = pending.socket.size
        created.lease = created.socket = 0
      }
    },
    onEvent: (event: PoolEvent) => {
      const which = "address" in event ? "socket" : "lease"
      if (event._tag === "ConnectionCreated") {
        pending[which].add(event.connectionId)
        if (counting) created[which]++
        peak[which] = Math.max(peak[which], pending[which].size)
      } else if (event._tag === "ConnectionReady" || event._tag === "ConnectionClosed") {
        pending[which].delete(event.connectionId)
      }
    }
  }
}

interface Run {
  readonly report: LoadReport
  readonly recoveryMs: number
  readonly probeTook?: number
  readonly probe?: Exit.Exit<void, unknown>
  readonly stats: { readonly inUse: number }
}

/**
 * One scenario: a load through a fresh proxy, `fault` while it runs (resolving once traffic may
 * flow again), the time until an operation started afterwards succeeds, then the common checks.
 */
const scenario = (
  prefix: string,
  fault: (link: FaultyLink, subject: Subject, counter: ReturnType<typeof attempts>) => Effect.Effect<Partial<Run>>
) =>
  Effect.gen(function*() {
    const name = uniqueName(prefix)
    const link = yield* Effect.promise(() => toxiproxy.proxy(name, upstream()))
    const counter = attempts()
    const run = yield* Effect.scoped(Effect.gen(function*() {
      const subject = yield* adapter.make(ferret.url, link, settings(name), counter.onEvent)
      const load = yield* startLoad(subject, adapter, {
        fibers: 20,
        pick: mix(seed, weights),
        run: name,
        watchdog: "15 seconds",
        deadline,
        slowMs: 200,
        bigRows: 300
      })
      yield* sleep(1_500)
      const extra = yield* fault(link, subject, counter)
      const recoveryMs = yield* timeToRecover(load.nextOk, 20_000)
      yield* sleep(1_000)
      const report = yield* load.stop
      return { ...extra, recoveryMs, report, stats: yield* subject.stats } as Run
    }))
    const leaked = yield* Effect.promise(() => serverConnectionsAfterClose(adapter, ferret.url, name))
    const writes = yield* Effect.promise(() => checkWrites(adapter, ferret.url, name, run.report.acked))
    yield* Effect.promise(() => toxiproxy.client.get(name).then((proxy) => proxy.remove()))

    console.info(`mongodb ${prefix}: ${run.report.ok}/${run.report.ops} ok, slowest ${run.report.maxMs} ms, recovery ${run.recoveryMs} ms, ` +
      `writes acked ${writes.acknowledged} found ${writes.found}, committed without ack ${writes.unacknowledgedCommitted}, ` +
      `errors ${JSON.stringify(run.report.errors)}`)
    expect(run.report.untyped).toStrictEqual([])
    expect(run.report.hung).toBe(0)
    // Work in flight ends by its deadline (plus an interrupted call's own bound), never later.
    expect(run.report.maxMs).toBeLessThan(deadline + checkTimeout + 2_000)
    // Each id is written once: a duplicate key would be a write the pool or the driver sent twice.
    expect(run.report.errors.MongoDuplicateKeyError).toBeUndefined()
    expect(Number.isFinite(run.recoveryMs)).toBe(true)
    expect(run.stats.inUse).toBe(0)
    expect(leaked).toBe(0)
    expect(writes.lost).toStrictEqual([])
    expect(writes.duplicated).toStrictEqual([])
    expect(writes.acknowledged).toBeGreaterThan(0)
    return { name, run, writes, leaked, counter }
  })

const record = (
  scenarioName: string,
  faults: string,
  result: Effect.Effect.Success<ReturnType<typeof scenario>>,
  notes: string
) =>
  recordResult({
    scenario: scenarioName,
    adapter: adapter.name,
    load: "20 fibers, mixed reads/writes/slow/large/streamed, 1 s deadline each",
    faults,
    badInputs: 0,
    ops: result.run.report.ops,
    ok: result.run.report.ok,
    errors: result.run.report.errors,
    writesAcknowledged: result.writes.acknowledged,
    writesFound: result.writes.found,
    writesDuplicated: result.writes.duplicated.length,
    connectionsLeaked: result.leaked + result.run.stats.inUse,
    fibersHung: result.run.report.hung,
    recoveryMs: result.run.recoveryMs,
    notes
  })

describe("Toxiproxy between a lifeguard/mongodb pool and FerretDB", () => {
  it.live(withSeed("blackhole: checkouts fail at acquireTimeout with the last error, and the pool serves again"), () =>
    Effect.gen(function*() {
      const result = yield* scenario("mrel-blackhole", (link, subject) =>
        Effect.gen(function*() {
          yield* Effect.promise(() => link.addToxic("timeout", { timeout: 0 }))
          // Stuck calls hit their deadline, a heartbeat times out (the driver clears its pool), set-ups createTimeout.
          yield* sleep(deadline + checkTimeout + createTimeout + 1_000)
          const [took, probe] = yield* Effect.timed(Effect.exit(subject.read))
          yield* sleep(500)
          yield* Effect.promise(() => link.clearToxics())
          return { probe, probeTook: Duration.toMillis(took) }
        }))
      const { run } = result
      const probeError = failureOf(run.probe!) as { _tag?: string; lastConnectError?: { _tag?: string; message?: string } }
      console.info(`mongodb blackhole: probe ${probeError?._tag} after ${run.probeTook} ms (last: ${probeError?.lastConnectError?.message})`)
      expect(probeError?._tag).toBe("PoolTimeoutError")
      expect(probeError.lastConnectError?._tag).toBe("MongoUnavailableError")
      expect(run.probeTook).toBeGreaterThanOrEqual(acquireTimeout - 50)
      expect(run.probeTook).toBeLessThan(acquireTimeout + 2_000)
      expect(run.report.errors.Deadline ?? 0).toBeGreaterThan(0)
      record("blackhole", "timeout toxic (0 = drop everything) on both directions for ~5 s", result,
        `a checkout during the blackhole failed after ${run.probeTook} ms (acquireTimeout ${acquireTimeout} ms) with ` +
          `PoolTimeoutError carrying MongoUnavailableError; slowest operation ${run.report.maxMs} ms (deadline ${deadline} ms)`)
    }).pipe(quiet), 40_000)

  it.live(withSeed("reset_peer mid-load: in-flight work fails with typed errors, and the pool recovers"), () =>
    Effect.gen(function*() {
      const result = yield* scenario("mrel-reset", (link) =>
        Effect.gen(function*() {
          yield* Effect.promise(() => link.addToxic("reset_peer", { timeout: 0 }))
          yield* sleep(1_500)
          yield* Effect.promise(() => link.clearToxics())
          return {}
        }))
      const { run } = result
      expect(Object.keys(run.report.errors).length).toBeGreaterThan(0)
      record("reset_peer", "reset_peer toxic (RST on the next data) on both directions for 1.5 s", result,
        `errors seen: ${Object.keys(run.report.errors).join(", ")}`)
    }).pipe(quiet), 40_000)

  it.live(withSeed("proxy disabled: connection attempts stay within maxConnecting, and the pool recovers"), () =>
    Effect.gen(function*() {
      const result = yield* scenario("mrel-refused", (link, _subject, counter) =>
        Effect.gen(function*() {
          counter.count(true)
          yield* Effect.promise(() => link.setEnabled(false))
          yield* sleep(outageMs)
          yield* Effect.promise(() => link.setEnabled(true))
          counter.count(false)
          return {}
        }))
      const { counter } = result
      console.info(`mongodb refused: attempts in ${outageMs} ms: leases ${counter.created.lease}, sockets ${counter.created.socket}; ` +
        `peak pending: leases ${counter.peak.lease}, sockets ${counter.peak.socket}`)
      expect(counter.peak.lease).toBeLessThanOrEqual(maxConnecting)
      expect(counter.peak.socket).toBeLessThanOrEqual(maxConnecting)
      // Backoff: no set-up slot retries faster than the schedule's first step (100 ms), whatever the load.
      expect(counter.created.lease).toBeLessThanOrEqual(maxConnecting * (outageMs / 100))
      expect(counter.created.lease).toBeGreaterThan(0)
      record("refused", `proxy disabled (connections refused, open ones cut) for ${outageMs} ms`, result,
        `attempts during the ${outageMs} ms outage: ${counter.created.lease} lease set-ups, ${counter.created.socket} driver sockets; ` +
          `at most ${counter.peak.lease} / ${counter.peak.socket} at once (maxConnecting ${maxConnecting})`)
    }).pipe(quiet), 40_000)

  it.live(withSeed("FerretDB killed and restarted under load: no fiber hangs, writes survive, recovery measured"), () =>
    Effect.gen(function*() {
      const result = yield* scenario("mrel-kill", () =>
        Effect.gen(function*() {
          yield* Effect.promise(() => ferret.kill())
          yield* sleep(2_000)
          yield* Effect.promise(() => ferret.startServer())
          return {}
        }))
      expect(Object.keys(result.run.report.errors).length).toBeGreaterThan(0)
      record("kill", "FerretDB SIGKILLed, started again on the same port and data 2 s later", result,
        `recovery measured from the restart's listening line`)
    }).pipe(quiet), 40_000)
})
