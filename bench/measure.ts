/**
 * Measurement helpers shared by the suites: the result shape, the worker
 * harnesses that drive a contender for a time window, heap probes and
 * statistics.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cause from "effect/Cause"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"

/** One line of `--json` output: one contender in one configuration of one suite. */
export interface Result {
  readonly suite: string
  readonly config: string
  readonly contender: string
  /** Checkouts (or queries) per second, the median over repetitions; null where a suite measures something else. */
  readonly opsPerSec: number | null
  /** This contender's figure divided by the suite's reference contender's in the same configuration. */
  ratio?: number
  /** The per-repetition values the median was taken from. */
  readonly samples?: ReadonlyArray<number>
  readonly bytesPerWaiter?: number
  /** Heap per parked waiter including the waiting fiber or promise chain itself. */
  readonly totalBytesPerWaiter?: number
  readonly p50Ms?: number
  readonly p90Ms?: number
  readonly p99Ms?: number
  readonly maxMs?: number
  readonly fifo?: boolean
  /** Checkouts served out of request order. */
  readonly outOfOrder?: number
  readonly nsPerCheckout?: number
  /** The client process's CPU time per operation, in microseconds (`process.cpuUsage`). */
  readonly cpuUsPerOp?: number
  /** nsPerCheckout relative to the same contender's smallest configuration. */
  growth?: number
}

/** What every suite gets from the command line. */
export interface RunOptions {
  readonly quick: boolean
  readonly reps: number
  readonly log: (message: string) => void
}

/** A suite: a name and a run producing results. */
export interface Suite {
  readonly name: string
  readonly reference?: string
  readonly run: (options: RunOptions) => Promise<ReadonlyArray<Result>>
}

// ---------------------------------------------------------------------------
// Contenders

/**
 * A pool driven from Effect: given the work to do while holding a
 * connection, the effect of one full checkout, work and return. The setup
 * runs in a scope that closes after the measurement.
 */
export interface EffectContender {
  readonly kind: "effect"
  readonly name: string
  readonly setup: (maxSize: number) => Effect.Effect<(work: Effect.Effect<void>) => Effect.Effect<void, unknown>, unknown, Scope.Scope>
}

/** A pool driven from plain async functions through its promise API. */
export interface PromiseContender {
  readonly kind: "promise"
  readonly name: string
  readonly setup: (maxSize: number) => Promise<PromisePool>
}

export interface PromisePool {
  readonly acquire: () => Promise<unknown>
  readonly release: (resource: unknown) => void
  readonly close: () => Promise<void>
}

export type Contender = EffectContender | PromiseContender

// ---------------------------------------------------------------------------
// Throughput and wait-time runs

/** One measurement window: `workers` loops of checkout, trivial work, return. */
export interface Window {
  readonly maxSize: number
  readonly workers: number
  readonly windowMs: number
  /**
   * What a worker does while it holds a connection. `"yield"` (the default)
   * gives up the thread once, as any real use of a connection does, so that
   * workers beyond the pool's size really queue; `"none"` returns at once,
   * which under Effect's cooperative scheduler lets a fiber cycle through
   * its whole time slice without anyone else asking.
   */
  readonly hold?: "yield" | "none"
  /** Keep going past the window until this many cycles completed (up to `maxWindowMs`). */
  readonly minCycles?: number
  readonly maxWindowMs?: number
  /** Record each checkout's wait and its place in the request order. */
  readonly waits?: WaitRecorder
}

export interface Throughput {
  readonly cycles: number
  readonly elapsedMs: number
  /** CPU time the process used in the window (all threads), to tell a slow pool from a busy machine. */
  readonly cpuMs: number
}

const now = () => performance.now()

/** How long workers get to line up before the window opens without the stragglers. */
const settleMs = 100

/**
 * Shared by all workers of one run. The window opens once every worker has
 * asked for its first checkout, so it measures a full wait queue rather than
 * a thundering start; or, should some workers not get to run at all (a fiber
 * that never waits keeps the thread), `settleMs` after the start. A cycle
 * counts if it completed inside the window; work still in flight when it
 * closes is not counted, so every contender is cut off the same way. With
 * `minCycles` the window stretches until that many cycles completed, up to
 * `maxWindowMs`.
 */
class Clock {
  cycles = 0
  start = 0
  end = 0
  private deadline = Infinity
  private hardDeadline = Infinity
  private readonly minCycles: number
  constructor(readonly window: Window) {
    this.minCycles = window.minCycles ?? 0
  }
  private cpuStart: NodeJS.CpuUsage | undefined
  private cpu: NodeJS.CpuUsage | undefined
  open() {
    if (this.start !== 0) return
    this.window.waits?.open()
    this.cpuStart = process.cpuUsage()
    this.start = now()
    this.deadline = this.start + this.window.windowMs
    this.hardDeadline = this.start + Math.max(this.window.windowMs, this.window.maxWindowMs ?? 0)
  }
  live(t: number): boolean {
    return this.end === 0 && (t < this.deadline || (this.cycles < this.minCycles && t < this.hardDeadline))
  }
  /** When the workers were let go. */
  private released = 0
  release() {
    this.released = now()
  }
  /** Called after each completed cycle; true while the worker should go on. */
  tick(): boolean {
    const t = now()
    if (this.start === 0) {
      if (t - this.released >= settleMs) this.open()
      return true
    }
    if (this.live(t)) {
      this.cycles++
      return true
    }
    this.stop(t)
    return false
  }
  /** Called once, when the window closes. */
  onStop: () => void = () => {}
  stop(t: number) {
    if (this.end !== 0) return
    this.end = t
    this.cpu = process.cpuUsage(this.cpuStart)
    this.window.waits?.finish(t)
    this.onStop()
  }
  result(): Throughput {
    const cpu = this.cpu ?? { user: 0, system: 0 }
    return { cycles: this.cycles, elapsedMs: this.end - this.start, cpuMs: (cpu.user + cpu.system) / 1000 }
  }
}

/**
 * Wait times in ms and the order checkouts were served in. Each worker
 * registers its request (a ticket, in request order) and is served; when the
 * window closes, requests still waiting count too, with the wait they had so
 * far, so that a pool cannot look fair by starving a few callers forever.
 */
export class WaitRecorder {
  private values = new Float64Array(1 << 16)
  count = 0
  private nextTicket = 0
  private highestServed = -1
  /** Served after a request made later than theirs had been served. */
  outOfOrder = 0
  /** Per worker: the ticket it waits with (-1 when not waiting) and since when. */
  private waitingTicket: Int32Array
  private waitingSince: Float64Array
  private opened = false
  private finished = false
  constructor(workers: number) {
    this.waitingTicket = new Int32Array(workers).fill(-1)
    this.waitingSince = new Float64Array(workers)
  }
  request(worker: number, t: number) {
    this.waitingTicket[worker] = this.nextTicket++
    this.waitingSince[worker] = t
  }
  served(worker: number, t: number) {
    const ticket = this.waitingTicket[worker]!
    this.waitingTicket[worker] = -1
    if (this.finished) return
    if (this.opened) this.push(t - this.waitingSince[worker]!)
    if (ticket < this.highestServed) this.outOfOrder++
    else this.highestServed = ticket
  }
  /** From now on waits are recorded; the order is checked from the start. */
  open() {
    this.opened = true
  }
  /** Closes the books at `t`: whoever still waits, waited this long, and was overtaken if a later ticket was served. */
  finish(t: number) {
    if (this.finished) return
    this.finished = true
    for (let w = 0; w < this.waitingTicket.length; w++) {
      const ticket = this.waitingTicket[w]!
      if (ticket < 0) continue
      this.push(t - this.waitingSince[w]!)
      if (ticket < this.highestServed) this.outOfOrder++
    }
  }
  private push(waitMs: number) {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.count++] = waitMs
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.count).sort()
  }
}

/** Runs one window against a contender and returns the cycles counted. */
export const runWindow = (contender: Contender, window: Window): Promise<Throughput> =>
  contender.kind === "effect" ? runEffectWindow(contender, window) : runPromiseWindow(contender, window)

const runEffectWindow = (contender: EffectContender, window: Window): Promise<Throughput> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    // The pool's scope closes after the workers are gone, before the harness's own.
    const poolScope = yield* Scope.make()
    const checkout = yield* Scope.extend(contender.setup(window.maxSize), poolScope)
    const clock = new Clock(window)
    const gate = yield* Deferred.make<void>()
    // The worker that sees the window close wakes the main fiber at once: a
    // timer could be starved for seconds by a pool that keeps fibers busy.
    const stopped = yield* Deferred.make<void>()
    clock.onStop = () => Deferred.unsafeDone(stopped, Exit.void)
    let started = 0
    let entered = 0
    let failure: Cause.Cause<unknown> | undefined
    const held = window.hold === "none" ? Effect.void : Effect.yieldNow()
    const worker = (w: number): Effect.Effect<void, unknown> => {
      const waits = window.waits
      let going = true
      const step = () => {
        going = clock.tick()
      }
      const loop = (body: Effect.Effect<void, unknown>) =>
        Effect.whileLoop({ while: () => going, body: () => body, step })
      if (waits === undefined) return loop(checkout(held))
      const cycle = checkout(Effect.zipRight(Effect.sync(() => waits.served(w, now())), held))
      return loop(Effect.suspend(() => {
        waits.request(w, now())
        return cycle
      }))
    }
    const fibers: Array<Fiber.RuntimeFiber<void>> = new Array(window.workers)
    for (let i = 0; i < window.workers; i++) {
      fibers[i] = yield* Effect.fork(
        Effect.sync(() => started++).pipe(
          Effect.zipRight(Deferred.await(gate)),
          // The last worker in opens the window itself: a fiber that never
          // waits can keep the main fiber from running for a long while.
          Effect.zipRight(Effect.sync(() => {
            if (++entered === window.workers) clock.open()
          })),
          Effect.zipRight(worker(i)),
          Effect.catchAllCause((cause) =>
            Effect.sync(() => {
              failure ??= cause
              clock.stop(now())
            })
          )
        )
      )
    }
    while (started < window.workers) yield* Effect.sleep(1)
    clock.release()
    yield* Deferred.succeed(gate, undefined)
    // Should no worker complete a cycle after the deadline, the timer ends the window.
    const limit = Math.max(window.windowMs, window.maxWindowMs ?? 0)
    while (clock.start === 0) yield* Effect.sleep(10)
    yield* Effect.ignore(Effect.timeout(Deferred.await(stopped), limit + 10))
    clock.stop(now())
    // Workers still parked are interrupted, not served: serving them first
    // takes seconds in a pool whose every release wakes every waiter.
    yield* Fiber.interruptAll(fibers)
    yield* Scope.close(poolScope, Exit.void)
    if (failure !== undefined) return yield* Effect.failCause(failure)
    return clock.result()
  })))

const runPromiseWindow = async (contender: PromiseContender, window: Window): Promise<Throughput> => {
  const pool = await contender.setup(window.maxSize)
  const clock = new Clock(window)
  let openGate!: () => void
  const gate = new Promise<void>((resolve) => {
    openGate = resolve
  })
  const { acquire, release } = pool
  const waits = window.waits
  const yields = window.hold !== "none"
  let entered = 0
  const worker = async (w: number) => {
    await gate
    if (++entered === window.workers) clock.open()
    if (waits === undefined) {
      do {
        const resource = await acquire()
        if (yields) await undefined
        release(resource)
      } while (clock.tick())
      return
    }
    do {
      waits.request(w, now())
      const resource = await acquire()
      waits.served(w, now())
      if (yields) await undefined
      release(resource)
    } while (clock.tick())
  }
  const workers: Array<Promise<void>> = new Array(window.workers)
  for (let i = 0; i < window.workers; i++) workers[i] = worker(i)
  clock.release()
  openGate()
  try {
    await Promise.all(workers)
  } finally {
    await pool.close()
  }
  clock.stop(now())
  return clock.result()
}

// ---------------------------------------------------------------------------
// Heap probes

type Gc = () => void

/** `global.gc`, enabled at run time when node was started without `--expose-gc`. */
export const gc: Gc = (() => {
  const exposed = (globalThis as { gc?: Gc }).gc
  if (exposed !== undefined) return exposed
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as Gc
})()

/** Heap in use after full collections. */
export const settledHeap = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

// ---------------------------------------------------------------------------
// Statistics

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** The value below which a fraction `p` of the sorted values fall (nearest rank). */
export const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

/**
 * Runs `measure` for every item in each of `reps` repetitions, rotating the
 * order per repetition so that drift (heat, other load) hits all alike,
 * after one unrecorded warm-up round over the items `warmUp` picks (all by
 * default). Returns the samples per item, in item order.
 */
export const interleaved = async <T, S>(
  reps: number,
  items: ReadonlyArray<T>,
  measure: (item: T, warmUp: boolean) => Promise<S>,
  warmUp: (item: T) => boolean = () => true
): Promise<Array<Array<S>>> => {
  const samples = items.map((): Array<S> => [])
  for (const item of items) if (warmUp(item)) await measure(item, true)
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < items.length; k++) {
      const i = (k + rep) % items.length
      gc()
      samples[i]!.push(await measure(items[i]!, false))
    }
  }
  return samples
}

/** Fills in `ratio` against the reference contender of the same configuration. */
export const withRatios = (
  results: Array<Result>,
  reference: string,
  value: (r: Result) => number | undefined
): Array<Result> => {
  for (const r of results) {
    const ref = results.find((x) => x.config === r.config && x.contender === reference)
    const a = value(r)
    const b = ref === undefined ? undefined : value(ref)
    if (a !== undefined && b !== undefined && b > 0) r.ratio = a / b
  }
  return results
}

export const range = (n: number): Array<number> => Array.from({ length: n }, (_, i) => i)
