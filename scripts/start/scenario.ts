/**
 * The scenario engine of `npm start`: N workers share one pool of M connections, each doing
 * a fixed number of operations (or operations for a fixed time), while the pool's waiters and
 * the connections the server itself sees are sampled.
 */
import { Cause, Effect, Exit, Fiber, Schedule } from "effect"
import type { Scope } from "effect"
import type { PoolStats } from "../../src/Pool.js"
import type { PoolEvent } from "../../src/PoolEvent.js"

export interface Scenario {
  /** A name for the load, after the pooler document: "Under limit", "At limit", ... */
  readonly label: string
  readonly workers: number
  readonly poolSize: number
  /** Operations per worker; ignored when `durationMs` is set. */
  readonly operations: number
  readonly durationMs: number | undefined
}

/** A database behind a lifeguard pool. PostgreSQL today; MongoDB plugs in the same way. */
export interface Backend {
  readonly name: string
  /**
   * Opens a pool of `scenario.poolSize` connections for one scenario; closing the scope drains
   * it. The pool must call `onEvent` for its events: checkout waits are measured from them.
   */
  readonly open: (
    scenario: Scenario,
    onEvent: (event: PoolEvent) => void
  ) => Effect.Effect<Session, unknown, Scope.Scope>
}

export interface Session {
  /** Inserts a row and reads it back; fails when either fails or the row differs. */
  readonly operation: (worker: number, index: number) => Effect.Effect<void, unknown>
  readonly stats: Effect.Effect<PoolStats>
  /** How many connections from this scenario's pool the server lists right now. */
  readonly serverConnections: Effect.Effect<number, unknown>
}

export interface Progress {
  readonly scenario: Scenario
  readonly done: number
  readonly failed: number
  readonly elapsedMs: number
  readonly opsPerSec: number
  readonly waiting: number
  /** The last report of the scenario. */
  readonly final: boolean
}

export interface ScenarioResult {
  readonly backend: string
  readonly scenario: string
  readonly workers: number
  readonly poolSize: number
  /** Operations attempted. */
  readonly operations: number
  readonly succeeded: number
  readonly failed: number
  /** Percent of operations that succeeded. */
  readonly successRate: number
  readonly durationMs: number
  /** Operations that succeeded per second. */
  readonly opsPerSec: number
  /** Workers per connection. */
  readonly multiplexing: number
  /** Most connections from the pool that `pg_stat_activity` (or the server's equivalent) listed at once. */
  readonly peakServerConnections: number
  /** Times the server was asked; a peak from no samples means nothing. */
  readonly serverSamples: number
  /** Most connections the pool itself held at once (idle, in use and being set up). */
  readonly peakPoolConnections: number
  readonly peakWaiters: number
  readonly checkouts: number
  readonly p50WaitMs: number
  readonly p99WaitMs: number
  /** Distinct failure messages with how often each happened, most frequent first. */
  readonly errors: ReadonlyArray<{ readonly message: string; readonly count: number }>
}

export interface RunOptions {
  readonly onProgress?: (progress: Progress) => void
  readonly progressEveryMs?: number
  /** How often the server is asked for its connections. Default 20 ms. */
  readonly serverSampleEveryMs?: number
  /** How often the pool is asked for its waiters. Default 5 ms. */
  readonly poolSampleEveryMs?: number
}

/** The pooler document's names for a load relative to the pool size. */
export const label = (workers: number, poolSize: number): string => {
  const ratio = workers / poolSize
  if (ratio < 1) return "Under limit"
  if (ratio === 1) return "At limit"
  if (ratio <= 1.1) return "Just over"
  if (ratio <= 1.5) return "Moderate"
  if (ratio <= 2) return "Heavy"
  if (ratio <= 3) return "Extreme"
  return "Ultra"
}

/** Nearest-rank percentile of ascending `sorted`; 0 when empty. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

const round = (n: number, digits: number): number => {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

const keptErrorKinds = 5

const messageOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.squash(cause)
  const message = failure instanceof Error ? failure.message : String(failure)
  return message.split("\n")[0]!.slice(0, 200)
}

export const run = (
  backend: Backend,
  scenario: Scenario,
  options: RunOptions = {}
): Effect.Effect<ScenarioResult, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const waits: Array<number> = []
    const session = yield* backend.open(scenario, (event) => {
      if (event._tag === "ConnectionCheckedOut") waits.push(event.duration)
    })

    let succeeded = 0
    let failed = 0
    let peakServer = 0
    let serverSamples = 0
    let peakPool = 0
    let peakWaiters = 0
    let waitingNow = 0
    const errors = new Map<string, number>()

    const sampleServer = session.serverConnections.pipe(
      Effect.tap((n) =>
        Effect.sync(() => {
          serverSamples++
          if (n > peakServer) peakServer = n
        })
      ),
      // A failed sample is not a connection; the verdict requires at least one good sample.
      Effect.ignore
    )
    const samplePool = Effect.tap(session.stats, (s) =>
      Effect.sync(() => {
        waitingNow = s.waiting
        if (s.waiting > peakWaiters) peakWaiters = s.waiting
        if (s.total > peakPool) peakPool = s.total
      })
    )
    const every = (ms: number) => Schedule.spaced(`${ms} millis`)
    yield* Effect.forkScoped(Effect.repeat(sampleServer, every(options.serverSampleEveryMs ?? 20)))
    yield* Effect.forkScoped(Effect.repeat(samplePool, every(options.poolSampleEveryMs ?? 5)))

    const started = performance.now()
    const deadline = scenario.durationMs === undefined ? undefined : started + scenario.durationMs
    const report = (final: boolean) =>
      Effect.sync(() => {
        const elapsedMs = performance.now() - started
        options.onProgress?.({
          scenario,
          done: succeeded + failed,
          failed,
          elapsedMs,
          opsPerSec: elapsedMs > 0 ? (succeeded * 1000) / elapsedMs : 0,
          waiting: waitingNow,
          final
        })
      })
    const progress = options.onProgress === undefined
      ? undefined
      : yield* Effect.forkScoped(Effect.repeat(report(false), every(options.progressEveryMs ?? 250)))

    const more = (index: number) =>
      deadline === undefined ? index < scenario.operations : performance.now() < deadline
    const worker = (id: number) =>
      Effect.gen(function*() {
        for (let index = 0; more(index); index++) {
          const exit = yield* Effect.exit(session.operation(id, index))
          if (Exit.isSuccess(exit)) {
            succeeded++
          } else {
            failed++
            const message = messageOf(exit.cause)
            if (errors.has(message) || errors.size < keptErrorKinds) errors.set(message, (errors.get(message) ?? 0) + 1)
          }
        }
      })
    yield* Effect.forEach(Array.from({ length: scenario.workers }, (_, i) => i), worker, {
      concurrency: "unbounded",
      discard: true
    })
    const durationMs = performance.now() - started

    // The pool keeps its connections idle after the run, so one more look catches a peak
    // that fell between samples of a short scenario.
    yield* sampleServer
    yield* samplePool
    if (progress !== undefined) yield* Fiber.interrupt(progress)
    yield* report(true)

    const sorted = waits.slice().sort((a, b) => a - b)
    const operations = succeeded + failed
    return {
      backend: backend.name,
      scenario: scenario.label,
      workers: scenario.workers,
      poolSize: scenario.poolSize,
      operations,
      succeeded,
      failed,
      successRate: operations === 0 ? 0 : round((succeeded * 100) / operations, 2),
      durationMs: round(durationMs, 1),
      opsPerSec: durationMs > 0 ? round((succeeded * 1000) / durationMs, 1) : 0,
      multiplexing: round(scenario.workers / scenario.poolSize, 2),
      peakServerConnections: peakServer,
      serverSamples,
      peakPoolConnections: peakPool,
      peakWaiters,
      checkouts: waits.length,
      p50WaitMs: round(percentile(sorted, 50), 3),
      p99WaitMs: round(percentile(sorted, 99), 3),
      errors: [...errors].map(([message, count]) => ({ message, count })).sort((a, b) => b.count - a.count)
    } satisfies ScenarioResult
  }))

/** Whether a result is a pass: every operation succeeded and the server never saw more than the pool size. */
export const passed = (result: ScenarioResult): boolean =>
  result.operations > 0 &&
  result.failed === 0 &&
  result.serverSamples > 0 &&
  result.peakServerConnections <= result.poolSize
