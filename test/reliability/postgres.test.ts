/**
 * Real faults between a lifeguard/pg pool and the shared PostgreSQL server, injected by Toxiproxy.
 * Each scenario asserts behaviour (typed errors, bounds, nothing lost, nothing hung, nothing
 * leaked) and records its figures for docs/reliability.md (scripts/reliability-report.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Logger, LogLevel, Option } from "effect"
import { sharedServer, uniqueName } from "../utils/postgres.js"
import { startToxiproxy, type ToxiproxyServer } from "../utils/toxiproxy.js"
import {
  mix,
  pgAdapter as adapter,
  recordResult,
  resultOf,
  runScenario,
  type ScenarioRun,
  sleep,
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

/** What every scenario must end with, whatever the fault. */
const expectSound = (run: ScenarioRun<unknown>) => {
  expect(run.report.untyped).toStrictEqual([])
  expect(run.report.hung).toBe(0)
  expect(run.leaked).toBe(0)
  expect(run.writes.lost).toStrictEqual([])
  expect(run.writes.duplicated).toStrictEqual([])
  expect(run.report.ok).toBeGreaterThan(0)
}

const through = (name: string) => Effect.promise(() => toxiproxy.proxy(name, upstream))

describe("Toxiproxy between a lifeguard/pg pool and PostgreSQL", () => {
  it.live(withSeed("blackhole: checkouts fail at acquireTimeout, in-flight work by its deadline, and the pool serves again"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-blackhole")
      const link = yield* through(name)
      const acquireTimeout = 1_500
      const createTimeout = 1_000
      const checkTimeout = 1_000
      // Shorter than acquireTimeout: load fibers give up first; the probe below has no deadline of its own.
      const deadline = 1_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 6, acquireTimeout, createTimeout, checkTimeout, validateAfterIdle: 200 },
        load: { fibers: 20, pick: mix(seed), watchdog: "15 seconds", deadline, slowMs: 300, bigRows: 300 },
        body: (subject, load) =>
          Effect.gen(function*() {
            yield* sleep(1_500)
            yield* Effect.promise(() => link.addToxic("timeout", { timeout: 0 }))
            // Stuck queries hit their deadline, their cancel its bound, and the replacements' set-ups createTimeout.
            yield* sleep(deadline + checkTimeout + createTimeout + 500)
            // A checkout once set-ups have failed: the typed timeout, with the set-up's own error.
            const [took, probe] = yield* Effect.timed(Effect.exit(subject.read))
            yield* sleep(500)
            const during = yield* load.snapshot
            yield* Effect.promise(() => link.clearToxics())
            const recoveryMs = yield* timeToRecover(load.nextOk, 20_000)
            yield* sleep(1_000)
            return { probeTook: Duration.toMillis(took), probe, during, recoveryMs }
          })
      })
      const probeError = failureOf(run.extra.probe) as { cause?: { _tag?: string; lastConnectError?: { _tag?: string } } }
      expect(adapter.classify(probeError)).toBe("PoolTimeoutError")
      expect(probeError.cause?.lastConnectError?._tag).toBe("ConnectTimeoutError")
      expect(run.extra.probeTook).toBeGreaterThanOrEqual(acquireTimeout - 50)
      expect(run.extra.probeTook).toBeLessThan(acquireTimeout + 2_000)
      // Work in flight ends by its deadline (plus the cancel's own bound), never later.
      expect(run.report.maxMs).toBeLessThan(deadline + checkTimeout + 2_000)
      expect(run.extra.during.errors.Deadline ?? 0).toBeGreaterThan(0)
      expect(run.extra.recoveryMs).toBeLessThan(createTimeout + longestBackoffMs + 1_000)
      expectSound(run)
      recordResult(resultOf(run, adapter, {
        scenario: "blackhole",
        load: "20 fibers, mixed reads/writes/slow/large/bad, 1 s deadline each",
        faults: "timeout toxic (0: every byte dropped, nothing closed) both ways for ~5.5 s",
        recoveryMs: run.extra.recoveryMs,
        notes: `a checkout during the blackhole failed after ${Math.round(run.extra.probeTook)} ms (acquireTimeout ` +
          `${acquireTimeout} ms) with PoolTimeoutError carrying ConnectTimeoutError; slowest operation ` +
          `${run.report.maxMs} ms (deadline ${deadline} ms + checkTimeout ${checkTimeout} ms for the cancel)`
      }))
    }).pipe(quiet), 60_000)

  it.live(withSeed("latency and jitter on every packet under 100 fibers: slower, no timeouts, FIFO kept"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-latency")
      const link = yield* through(name)
      const acquireTimeout = 10_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 10, acquireTimeout },
        load: { fibers: 100, pick: mix(seed, { slow: 0, big: 1, stream: 1 }), watchdog: "30 seconds", bigRows: 200 },
        body: (subject, load) =>
          Effect.gen(function*() {
            yield* sleep(2_000)
            const before = yield* load.snapshot
            yield* Effect.promise(() => link.addToxic("latency", { latency: 20, jitter: 10 }))
            const faultAt = Date.now()
            yield* sleep(3_000)
            // FIFO: 30 more callers, each asking after the one before; connections must reach them in that order.
            const granted: Array<number> = []
            const probes: Array<Fiber.RuntimeFiber<void, unknown>> = []
            for (let ticket = 0; ticket < 30; ticket++) {
              probes.push(yield* Effect.fork(subject.roundTrip(() => granted.push(ticket))))
              yield* sleep(2)
            }
            yield* Fiber.joinAll(probes)
            const during = yield* load.snapshot
            const faultSeconds = (Date.now() - faultAt) / 1000
            yield* Effect.promise(() => link.clearToxics())
            yield* sleep(500)
            return {
              granted,
              baseline: before.ok / 2,
              degraded: (during.ok - before.ok) / faultSeconds,
              perSecond: during.okPerSecond.slice(2)
            }
          })
      })
      expect(run.report.errors).toStrictEqual({})
      expect(run.extra.granted).toStrictEqual(Array.from({ length: 30 }, (_, i) => i))
      // Degrades, never stalls: every second under the toxic still served.
      for (const n of run.extra.perSecond) expect(n).toBeGreaterThan(0)
      expectSound(run)
      recordResult(resultOf(run, adapter, {
        scenario: "latency",
        load: "100 fibers on 10 connections, reads and writes; 30 ordered callers for FIFO",
        faults: "latency 20 ms ± 10 ms jitter on every packet, both ways, for ~3.5 s",
        recoveryMs: null,
        notes: `no timeouts below acquireTimeout ${acquireTimeout} ms; ${Math.round(run.extra.baseline)} ops/s before, ` +
          `${Math.round(run.extra.degraded)} ops/s under the toxic; the 30 ordered callers were served in order`
      }))
    }).pipe(quiet), 60_000)

  it.live(withSeed("reset_peer on every connection mid-load: typed failures, nothing broken reused, recovery"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-reset")
      const link = yield* through(name)
      const createTimeout = 1_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 8, acquireTimeout: 3_000, createTimeout, checkTimeout: 1_000 },
        load: { fibers: 40, pick: mix(seed), watchdog: "20 seconds", deadline: 5_000, slowMs: 300, bigRows: 500 },
        body: (_, load) =>
          Effect.gen(function*() {
            yield* sleep(1_500)
            yield* Effect.promise(() => link.addToxic("reset_peer", { timeout: 0 }))
            yield* sleep(1_000)
            const during = yield* load.snapshot
            yield* Effect.promise(() => link.clearToxics())
            const recoveryMs = yield* timeToRecover(load.nextOk, 20_000)
            // Operations that start from here on must all succeed: a reused broken connection would fail one.
            yield* sleep(1_000)
            const settled = yield* load.snapshot
            yield* sleep(2_000)
            const after = yield* load.snapshot
            return { during, recoveryMs, settled, after }
          })
      })
      const failed = (r: { readonly ops: number; readonly ok: number }) => r.ops - r.ok
      expect(failed(run.extra.during)).toBeGreaterThan(0)
      expect(failed(run.extra.after) - failed(run.extra.settled)).toBe(0)
      expect(run.extra.after.ok).toBeGreaterThan(run.extra.settled.ok)
      expect(run.extra.recoveryMs).toBeLessThan(createTimeout + longestBackoffMs + 1_000)
      expectSound(run)
      recordResult(resultOf(run, adapter, {
        scenario: "reset_peer",
        load: "40 fibers, mixed reads/writes/slow/large/bad, 5 s deadline each",
        faults: "reset_peer (TCP RST at once) on every connection, old and new, for 1 s",
        recoveryMs: run.extra.recoveryMs,
        notes: `${failed(run.extra.during)} operations failed with typed errors during the reset; ` +
          `none of the ${run.extra.after.ops - run.extra.settled.ops} started 1 s after recovery failed`
      }))
    }).pipe(quiet), 60_000)

  it.live(withSeed("connection refused for 30 s: attempts bounded by maxConnecting and the backoff, whatever the waiters"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-refused")
      const link = yield* through(name)
      const maxConnecting = 2
      const createTimeout = 1_000
      const outageMs = 30_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 10, maxConnecting, acquireTimeout: 2_000, createTimeout },
        // 200 fibers retrying at once after each acquireTimeout: always some hundred waiters.
        load: { fibers: 200, pick: mix(seed, { slow: 0, big: 0, stream: 0 }), watchdog: "20 seconds" },
        body: (subject, load) =>
          Effect.gen(function*() {
            yield* sleep(1_000)
            const attemptsBefore = (yield* subject.stats).connectionsCreated + (yield* subject.stats).connectFailures
            yield* Effect.promise(() => link.setEnabled(false))
            const from = yield* subject.stats
            yield* sleep(outageMs)
            const to = yield* subject.stats
            yield* Effect.promise(() => link.setEnabled(true))
            const recoveryMs = yield* timeToRecover(load.nextOk, 20_000)
            yield* sleep(1_000)
            return { attempts: to.connectFailures - from.connectFailures, peakWaiting: to.waiting, attemptsBefore, recoveryMs }
          })
      })
      // Each of maxConnecting set-up chains tries at once, then after each delay of the default
      // schedule (100 ms doubling, capped at 5 s, jittered down to x0.8) that fits in the outage.
      let perChain = 1
      for (let step = 0, elapsed = 0; ; step++) {
        elapsed += 0.8 * Math.min(100 * 2 ** step, 5_000)
        if (elapsed > outageMs) break
        perChain++
      }
      const bound = maxConnecting * perChain
      expect(run.extra.attempts).toBeGreaterThan(0)
      expect(run.extra.attempts).toBeLessThanOrEqual(bound)
      expect(run.extra.peakWaiting).toBeGreaterThan(50)
      expect(run.extra.recoveryMs).toBeLessThan(createTimeout + longestBackoffMs + 1_000)
      expectSound(run)
      recordResult(resultOf(run, adapter, {
        scenario: "refused",
        load: "200 fibers, reads and writes, acquireTimeout 2 s and straight back in the queue",
        faults: "proxy disabled for 30 s: every connection refused",
        recoveryMs: run.extra.recoveryMs,
        notes: `${run.extra.attempts} connection attempts in 30 s with ${run.extra.peakWaiting} waiting ` +
          `(bound: maxConnecting ${maxConnecting} x ${perChain} steps of the backoff = ${bound})`
      }))
    }).pipe(quiet), 90_000)

  it.live(withSeed("bandwidth limit and slicer on large results and streams: whole or a typed error"), () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-bandwidth")
      const link = yield* through(name)
      const rows = 3_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 4, acquireTimeout: 20_000, checkTimeout: 2_000 },
        load: {
          fibers: 8,
          pick: mix(seed, { read: 10, write: 10, slow: 0, bad: 5, big: 40, stream: 40 }),
          watchdog: "40 seconds",
          deadline: 15_000,
          bigRows: rows
        },
        body: (subject) =>
          Effect.gen(function*() {
            yield* sleep(1_000)
            yield* Effect.promise(() => link.addToxic("bandwidth", { rate: 300 }, { stream: "downstream" }))
            yield* Effect.promise(() =>
              link.addToxic("slicer", { average_size: 64, size_variation: 48, delay: 200 }, { stream: "downstream" })
            )
            yield* sleep(4_000)
            // Large reads cut short by their caller: typed, and the connection is not handed on half-read.
            const cut = yield* Effect.forEach([0, 1, 2, 3], (i) =>
              Effect.exit(Effect.timeout(i % 2 === 0 ? subject.big(rows) : subject.stream(rows), 150)))
            yield* sleep(2_000)
            yield* Effect.promise(() => link.clearToxics())
            const whole = yield* Effect.all([subject.big(rows), subject.stream(rows)])
            return { cut, whole }
          })
      })
      for (const exit of run.extra.cut) {
        if (Exit.isFailure(exit)) expect(adapter.classify(failureOf(exit))).toBe("TimeoutException")
      }
      expect(run.extra.whole).toStrictEqual([rows, rows])
      expect((run.report.tried.big ?? 0) + (run.report.tried.stream ?? 0)).toBeGreaterThan(0)
      expectSound(run)
      recordResult(resultOf(run, adapter, {
        scenario: "bandwidth+slicer",
        load: `8 fibers on 4 connections, mostly ${rows}-row results and streams checked row by row`,
        faults: "bandwidth 300 KB/s and slicer (64 ± 48 byte packets) downstream for ~6 s; 4 reads cut at 150 ms",
        recoveryMs: null,
        notes: `${run.extra.cut.filter(Exit.isFailure).length} of 4 cut reads failed with TimeoutException; ` +
          `every result that arrived was whole (checked row by row)`
      }))
    }).pipe(quiet), 60_000)
})
