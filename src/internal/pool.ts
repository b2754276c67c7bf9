/**
 * The pool's state machine.
 *
 * Every change to the pool's state happens inside one synchronous block (an
 * `Effect.sync` or the body of an `Effect.suspend`), so no other fiber can
 * observe it half done: a connection is handed to exactly one holder, and
 * `idle + inUse + pending = total` holds between any two blocks. Work that
 * takes time (connection set-up, closing, waiting) runs in fibers the pool
 * owns: set-ups and closes in fibers the drain waits for (up to its deadline), the deadline timer and the
 * maintenance as two long-lived fibers, all under the pool's scope.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ClearOptions, Pool, PoolStats, TypeId as PoolTypeId } from "../Pool.js"
import type { Options, ResolvedOptions } from "../PoolConfig.js"
import {
  ConnectTimeoutError,
  type PoolConfigError,
  PoolClearedError,
  PoolClosedError,
  type PoolCounts,
  type PoolError,
  PoolTimeoutError,
  PoolWaitQueueFullError
} from "../PoolError.js"
import type { CheckOutFailedReason, CloseReason, PoolEvent } from "../PoolEvent.js"
import { resolve } from "./config.js"
import * as WaiterDeferred from "./deferred.js"
import { describeError } from "./describe.js"
import * as Metrics from "./metrics.js"
import * as WaitQueue from "./waitQueue.js"

/** @internal */
export const TypeId: PoolTypeId = Symbol.for("lifeguard/Pool") as PoolTypeId

type State = "ready" | "paused" | "closed"

/** A connection as the pool sees it. */
class Entry<A> {
  state: "idle" | "inUse" | "closed" = "idle"
  lastUsedAt: number
  checkedOutAt: number
  uses = 0
  invalidated = false
  leakWatch: Fiber.RuntimeFiber<void> | undefined = undefined
  /** Set while a checkout validates it: closing the connection ends that check. */
  stopValidation: Deferred.Deferred<void> | undefined = undefined
  /** What a waiter handed this connection is completed with: made once, not at every hand-off. */
  readonly handedOff: Exit.Exit<Entry<A>> = Exit.succeed(this)

  constructor(
    readonly id: number,
    readonly value: A,
    readonly scope: Scope.CloseableScope,
    readonly generation: number,
    readonly retireAt: number,
    now: number
  ) {
    this.lastUsedAt = now
    this.checkedOutAt = now
  }
}

/**
 * A parked checkout. It is completed with the connection, or, when the pool
 * started a direct call for it at hand-off, with `callEnded` once that call
 * ended (its `run` has the outcome).
 */
type Waiter<A, E> = WaitQueue.Waiter<Entry<A> | "callEnded", PoolError | E> & Omit<Checkout<A, unknown, unknown, unknown>, "then" | "use"> & {
  /** A direct call its driver declined at hand-off goes on as `use`: `then` and `use` change to that. */
  then: Then<A, unknown, unknown, unknown>
  use: Use<A, unknown, unknown, unknown>
  /** The direct call the pool started for it, from hand-off until its caller has the outcome. */
  run: DirectRun<A> | undefined
}

/**
 * Work that the pool starts on a connection itself, at the moment it hands
 * one over: one call of a callback-style driver. The caller's fiber parks once
 * for the checkout and the call together, and a connection whose call ended
 * goes straight on to the next queued one from the driver's callback, with no
 * fiber switch in between (the way `pg.Pool` serves its own queue).
 *
 * @internal
 */
export interface Direct<A, B, E2> {
  /**
   * Starts the call on `connection` and returns true, or returns false to have
   * it run as `use` instead. `done` is called once, later (never from within
   * `start`), with the outcome; `clean` says the connection can go back as it
   * is, otherwise `settle` makes it fit first.
   */
  readonly start: (connection: A, done: (outcome: Effect.Effect<B, E2>, clean: boolean) => void) => boolean
  /** Makes a connection whose call ended dirty fit to go back; runs in the caller's fiber, uninterruptibly. */
  readonly settle: (connection: A) => Effect.Effect<void>
  /** The same call in the caller's fiber, as `pool.use` runs it: after a validation, or when `start` declines. */
  readonly use: (connection: A) => Effect.Effect<B, E2>
  /** Stops a started call whose caller was interrupted; ends once the connection is quiet (or given up). */
  readonly cancel: (connection: A) => Effect.Effect<void>
}

/** A direct call its driver declined, as the function `pool.use` runs (`use` is a method: it keeps its receiver). */
const asUse = <A>(direct: Direct<A, unknown, unknown>): Use<A, unknown, unknown, unknown> => (connection) => direct.use(connection)

/** What a waiter whose direct call ended is completed with. */
const callEnded = Exit.succeed("callEnded" as const)

/** A direct call from its start until its outcome is taken. */
class DirectRun<A> {
  /**
   * running: the call is under way. stopping: its caller was interrupted and
   * the cancel is under way; the connection waits for it. returned: it ended
   * and the connection is back. held: it ended and `outcome` returns the
   * connection; whoever runs `outcome` first does, once.
   */
  state: "running" | "stopping" | "returned" | "held" = "running"
  /** Set during `start`: a `done` called then waits for `start` to return. */
  starting = true
  outcome: Effect.Effect<unknown, unknown> = Effect.void
  /** When the pool handed the connection over and started the call. */
  readonly handedAt: number
  /** Told when the call ends: the waiter it was started for, or the parked fiber that started it. */
  waiter: { readonly deferred: Deferred.Deferred<Entry<A> | "callEnded", any> } | undefined = undefined
  resume: ((outcome: Effect.Effect<unknown, unknown>) => void) | undefined = undefined

  constructor(readonly entry: Entry<A>, readonly direct: Direct<A, unknown, unknown>) {
    this.handedAt = entry.checkedOutAt
  }
}

/** A connection just set up, before the pool registers it. */
interface Made<A> {
  readonly id: number
  readonly value: A
  readonly scope: Scope.CloseableScope
  readonly startedAt: number
}

type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/** What `pool.use` runs on the connection; `get` has none. */
type Use<A, X, Y, Z> = ((connection: A) => Effect.Effect<X, Y, Z>) | undefined

/**
 * What a checkout continues with once it holds a connection. One per pool
 * for `get` and one for `use` (which is handed its function): a parked
 * waiter holds no closure of its own.
 */
type Then<A, X, Y, Z> = (entry: Entry<A>, restore: Restore, use: Use<A, X, Y, Z>) => Effect.Effect<X, Y, Z>

/** A checkout under way, as the slow paths (waiting, validation) need it. */
interface Checkout<A, X, Y, Z> {
  readonly startedAt: number
  /** Arrival order, kept when a failed validation sends the checkout back to the queue. */
  readonly seq: number
  /** Restores the caller's interruptibility around the wait. */
  readonly restore: Restore
  /** Where `get`/`use` was called, for leak reports (only with leak detection on). */
  readonly site: Error | undefined
  readonly then: Then<A, X, Y, Z>
  readonly use: Use<A, X, Y, Z>
}

type Spawn<R> = (effect: Effect.Effect<void, never, R>) => Fiber.RuntimeFiber<void, never>

/** A set-up in flight: the attempt it is on, and its fiber, which ends only once the attempt has really stopped. */
interface SetUpRun {
  readonly generation: number
  id: number
  fiber: Fiber.RuntimeFiber<void, never> | undefined
  /** Stopped by clear with interruptInUse, its close already reported: no second ConnectionClosed, no new attempt. */
  stopped: boolean
  /** The current attempt's ConnectionClosed was emitted. */
  reported: boolean
}

/** Effect's default Clock, to recognise it. */
const defaultClock = Effect.runSync(Effect.clock)

/** Effect's default tracer, whose spans go nowhere. */
const defaultTracer = Effect.runSync(Effect.tracer)

/**
 * Reads a Clock in epoch milliseconds. Effect's default Clock is read from
 * its own monotonic source, performance.now(), without the BigInt its
 * nanosecond read allocates (a tenth of a contended checkout's time); any
 * other Clock (TestClock, a user's) is asked.
 */
const clockReader = (clock: Clock.Clock): () => number => {
  if (clock.constructor !== defaultClock.constructor) return () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
  const origin = Number(clock.unsafeCurrentTimeNanos()) / 1_000_000 - performance.now()
  return () => origin + performance.now()
}

/** Failed set-ups log the first of a run of the same error, then at most one summary per this interval. */
const failureLogInterval = 30_000

/** Compaction of abandoned waiters starts once this many sit in the queue. */
const compactionFloor = 64

const defaultRetrySchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.jittered
)

class PoolImpl<A, E, R> implements Pool<A, E> {
  readonly [TypeId]: PoolTypeId = TypeId
  readonly name: string

  private state: State
  private generation = 0
  private readonly idle: Array<Entry<A>> = []
  private readonly entries = new Map<A, Entry<A>>()
  private total = 0
  private pending = 0
  private inUse = 0
  private liveWaiters = 0
  /** Checkouts validating now; the drain waits for them as for connections in use. */
  private validating = 0
  private abandonedInQueue = 0
  private nextConnectionId = 0
  private nextSeq = 0
  private lastConnectError: unknown = undefined
  private subscribers = 0
  private timerKick: Deferred.Deferred<void> | undefined = undefined
  private timerParked = false
  private maintenanceKick: Deferred.Deferred<void> | undefined = undefined
  private readonly kickedEarly = { timer: false, maintenance: false }
  private allReturned: Deferred.Deferred<void> | undefined = undefined
  private drained: Deferred.Deferred<void> | undefined = undefined
  /** After a set-up gave up, minIdle is not refilled before this time (one maintenance interval): an outage is no busy loop. */
  private refillHeldUntil = 0
  /** The start-up check (initializationFailTimeout) while it runs. */
  private initializing: { readonly target: number; readonly done: Deferred.Deferred<void, unknown> } | undefined =
    undefined
  private drainDone = false
  private readonly counters = {
    checkouts: 0,
    waits: 0,
    timeouts: 0,
    connectionsCreated: 0,
    connectionsClosed: 0,
    connectFailures: 0,
    setupsLeftRunning: 0,
    closesLeftRunning: 0
  }
  /**
   * Pool-owned fibers the drain waits for, up to its deadline. Not a
   * FiberSet: closing the pool's scope must not hang on an acquire or a
   * release that never ends; the drain reports those instead.
   */
  private readonly setUps = new Set<SetUpRun>()
  /** Short tasks: closing connections, leak watches, reports. */
  private readonly tasks = new Set<Fiber.RuntimeFiber<void, never>>()
  private readonly failureLog = { key: "", at: 0, suppressed: 0 }
  private readonly metrics: Metrics.Metrics
  private readonly retrySchedule: Schedule.Schedule<unknown, unknown, R>

  constructor(
    readonly options: ResolvedOptions,
    private readonly config: Options<A, E, R>,
    private readonly context: Context.Context<R>,
    private readonly clock: Clock.Clock,
    private readonly waiters: WaitQueue.WaiterDeque<Waiter<A, E>>,
    private readonly waitQueue: Queue.Queue<Waiter<A, E>>,
    private readonly eventHub: PubSub.PubSub<PoolEvent>,
    runtime: Runtime.Runtime<R>,
    /** The long-lived fibers: deadline timer, maintenance, drain. */
    private readonly spawnBackground: Spawn<never>
  ) {
    this.name = options.name
    this.state = options.startPaused ? "paused" : "ready"
    this.metrics = Metrics.make(options)
    this.retrySchedule = config.retrySchedule ?? defaultRetrySchedule
    this.detectLeaks = options.leakDetectionThreshold !== Number.POSITIVE_INFINITY
    this.plainGet = this.makeGet(undefined)
    this.fork = Runtime.runFork(runtime)
    this.now = clockReader(clock)
  }

  /** Starts a fiber of the pool's own, with the context it was made in; nothing waits for it but the drain. */
  private readonly fork: <X, Y>(effect: Effect.Effect<X, Y, R>) => Fiber.RuntimeFiber<X, Y>

  private readonly spawnTask: Spawn<never> = (effect) => {
    const fiber = this.fork(effect)
    this.tasks.add(fiber)
    fiber.addObserver(() => this.tasks.delete(fiber))
    return fiber
  }

  // --- checkout -----------------------------------------------------------

  private readonly detectLeaks: boolean
  private readonly plainGet: Effect.Effect<A, PoolError | E, Scope.Scope>

  /** With leak detection on, each access records its call site for the leak report. */
  get get(): Effect.Effect<A, PoolError | E, Scope.Scope> {
    return this.detectLeaks ? this.makeGet(new Error()) : this.plainGet
  }

  private makeGet(site: Error | undefined): Effect.Effect<A, PoolError | E, Scope.Scope> {
    return Effect.uninterruptibleMask((restore) => this.checkout(restore, site, this.thenGet, undefined))
  }

  private readonly thenGet: Then<A, A, never, Scope.Scope> = (entry) =>
    Effect.flatMap(Effect.scope, (scope) =>
      Effect.as(
        // Unlike Effect.addFinalizer, Scope.addFinalizer does not diff FiberRefs: the return path needs none.
        Scope.addFinalizer(scope, this.release(entry)),
        entry.value
      ))

  readonly use = <B, E2, R2>(f: (connection: A) => Effect.Effect<B, E2, R2>): Effect.Effect<B, PoolError | E | E2, R2> => {
    const site = this.detectLeaks ? new Error() : undefined
    return Effect.uninterruptibleMask((restore) => this.checkout(restore, site, this.thenUse as Then<A, B, E2, R2>, f))
  }

  private readonly thenUse: Then<A, unknown, unknown, unknown> = (entry, restore, f) =>
    Effect.flatMap(Effect.exit(restore(f!(entry.value))), (exit) => Effect.zipRight(this.release(entry), exit))

  /** Checks out a connection for one direct call (see `Direct`); the fiber ways remain for what that cannot cover. */
  dispatch<B, E2>(direct: Direct<A, B, E2>): Effect.Effect<B, PoolError | E | E2> {
    const site = this.detectLeaks ? new Error() : undefined
    return Effect.uninterruptibleMask((restore) =>
      this.checkout(restore, site, this.thenDirect as unknown as Then<A, B, E2, never>, direct as unknown as Use<A, B, E2, never>)
    )
  }

  /** A checkout that holds its connection in its own fiber: the direct call starts here, or runs as `use`. */
  private readonly thenDirect: Then<A, unknown, unknown, unknown> = (entry, restore, use) => {
    const direct = use as unknown as Direct<A, unknown, unknown>
    const run = this.startDirect(entry, direct)
    if (run === undefined) return this.thenUse(entry, restore, asUse(direct))
    const ended = Effect.async<unknown, unknown>((resume) => {
      if (run.state === "running") run.resume = resume
      else resume(run.outcome)
    })
    return Effect.onInterrupt(restore(ended), () => this.stopDirect(run))
  }

  /** Whether a connection handed over outside any fiber can start a direct call: nothing needs the caller's fiber first. */
  private startsDirectly(entry: Entry<A>, now: number): boolean {
    return !this.detectLeaks && !this.needsValidation(entry, now)
  }

  private startDirect(entry: Entry<A>, direct: Direct<A, unknown, unknown>): DirectRun<A> | undefined {
    const run = new DirectRun(entry, direct)
    const started = direct.start(entry.value, (outcome, clean) => {
      if (run.starting) queueMicrotask(() => this.endDirect(run, outcome, clean))
      else this.endDirect(run, outcome, clean)
    })
    run.starting = false
    return started ? run : undefined
  }

  /**
   * A direct call ended: its connection goes back now (on to the next
   * waiter), then its caller hears. One whose cancel is under way waits for
   * that first: a late cancel must never reach the next user's call.
   */
  private endDirect(run: DirectRun<A>, outcome: Effect.Effect<unknown, unknown>, clean: boolean): void {
    if (run.state !== "running" && run.state !== "stopping") return
    if (clean && run.state === "running" && this.config.reset === undefined) {
      run.state = "returned"
      run.outcome = outcome
      this.checkIn(run.entry, true)
    } else {
      run.state = "held"
      run.outcome = Effect.uninterruptible(Effect.suspend(() => {
        if (run.state !== "held") return Effect.void
        run.state = "returned"
        const settled = clean ? outcome : Effect.zipRight(run.direct.settle(run.entry.value), outcome)
        // Decided when the connection goes back, not now: the settle may have invalidated it.
        return Effect.ensuring(settled, Effect.suspend(() => this.release(run.entry)))
      }))
    }
    if (run.waiter !== undefined) Deferred.unsafeDone(run.waiter.deferred, callEnded)
    else if (run.resume !== undefined) run.resume(run.outcome)
  }

  /**
   * The caller of a direct call was interrupted: the call is stopped, and the
   * connection comes back before the caller goes on. A call that does not end
   * when cancelled costs its connection, never a second user of it.
   */
  private stopDirect(run: DirectRun<A>): Effect.Effect<void> {
    const settle = Effect.suspend(() => {
      // Its outcome is nobody's now: not even a defect in it may replace the caller's interruption.
      if (run.state === "held") return Effect.catchAllCause(run.outcome, () => Effect.void)
      if (run.state === "stopping") {
        run.state = "returned"
        run.entry.invalidated = true
        this.checkIn(run.entry, false)
      }
      return Effect.void
    })
    if (run.state !== "running") return settle
    run.state = "stopping"
    return Effect.zipRight(run.direct.cancel(run.entry.value), settle)
  }

  /** Epoch milliseconds, with the sub-millisecond part when the clock has one. */
  private readonly now: () => number

  /**
   * Runs when the checkout effect runs (inside the mask), and continues with
   * `then` once a connection is handed out. Passing the continuation along,
   * rather than stacking combinators, keeps a parked waiter small.
   */
  private checkout<X, Y, Z>(
    restore: Restore,
    site: Error | undefined,
    then: Then<A, X, Y, Z>,
    use: Use<A, X, Y, Z>
  ): Effect.Effect<X, Y | PoolError | E, Z> {
    const startedAt = this.now()
    if (this.isListened()) this.emit({ _tag: "ConnectionCheckOutStarted", pool: this.name, time: startedAt })
    if (this.state !== "ready") return this.refuse(startedAt)
    if (this.liveWaiters === 0) {
      const entry = this.takeIdle(startedAt)
      if (entry !== undefined) {
        this.markCheckedOut(entry, startedAt, startedAt)
        // The fast path hands out without building a Checkout record.
        return this.needsValidation(entry, startedAt)
          ? this.validate(entry, { startedAt, seq: this.nextSeq++, restore, site, then, use })
          : this.deliver(entry, site, restore, then, use)
      }
    }
    return this.wait(startedAt, this.nextSeq++, restore, site, then, use, false)
  }

  private handOut<X, Y, Z>(entry: Entry<A>, checkout: Checkout<A, X, Y, Z>): Effect.Effect<X, Y | PoolError | E, Z> {
    return this.needsValidation(entry, entry.checkedOutAt)
      ? this.validate(entry, checkout)
      : this.deliver(entry, checkout.site, checkout.restore, checkout.then, checkout.use)
  }

  private deliver<X, Y, Z>(
    entry: Entry<A>,
    site: Error | undefined,
    restore: Restore,
    then: Then<A, X, Y, Z>,
    use: Use<A, X, Y, Z>
  ): Effect.Effect<X, Y, Z> {
    if (!this.detectLeaks) return then(entry, restore, use)
    return Effect.withFiberRuntime((fiber) => {
      this.startLeakWatch(entry, describeHolder(fiber, site))
      return then(entry, restore, use)
    })
  }

  private refuse(startedAt: number): Effect.Effect<never, PoolError> {
    const error = this.state === "closed"
      ? new PoolClosedError({ pool: this.name })
      : new PoolClearedError({ pool: this.name, generation: this.generation, reason: "the pool is paused" })
    this.checkoutFailed(startedAt, error._tag === "PoolClosedError" ? "poolClosed" : "connectionError", error)
    return Effect.fail(error)
  }

  /** Parks the checkout; `again` after a failed validation: it was admitted already and goes back to its place. */
  private wait<X, Y, Z>(
    startedAt: number,
    seq: number,
    restore: Restore,
    site: Error | undefined,
    then: Then<A, X, Y, Z>,
    use: Use<A, X, Y, Z>,
    again: boolean
  ): Effect.Effect<X, Y | PoolError | E, Z> {
    if (!again && this.liveWaiters >= this.options.maxWaiters) {
      const error = new PoolWaitQueueFullError({ pool: this.name, maxWaiters: this.options.maxWaiters })
      this.checkoutFailed(startedAt, "waitQueueFull", error)
      return Effect.fail(error)
    }
    // The waiter carries its checkout, so the closures below capture the waiter alone.
    const waiter: Waiter<A, E> = {
      deferred: WaiterDeferred.make(),
      startedAt,
      seq,
      settled: false,
      served: undefined,
      restore,
      site,
      then: then as Then<A, unknown, unknown, unknown>,
      use: use as Use<A, unknown, unknown, unknown>,
      run: undefined
    }
    if (again) this.waiters.insertInOrder(waiter)
    else this.waitQueue.unsafeOffer(waiter)
    this.liveWaiters++
    if (!again) this.counters.waits++
    this.metrics.waiters(this.liveWaiters)
    this.ensureCapacity()
    if (again || this.timerParked) this.kick("timer")
    const waited = Effect.matchCauseEffect(waiter.restore(WaiterDeferred.await_(waiter.deferred)), {
      onFailure: (cause) => {
        this.abandon(waiter)
        const failed = Effect.zipRight(this.traceWait(waiter.startedAt, Exit.failCause(cause)), Effect.failCause(cause))
        // Interrupted during the call the pool started for it: stop the call and see the connection back first.
        return waiter.run === undefined ? failed : Effect.zipRight(this.stopDirect(waiter.run), failed)
      },
      onSuccess: (served) => {
        waiter.served = undefined
        if (served === "callEnded") {
          const run = waiter.run!
          // A wait long enough to trace is recorded now, in the caller's fiber, ending at its hand-off.
          return run.handedAt - waiter.startedAt < this.options.traceWaitsOver
            ? run.outcome
            : Effect.zipRight(this.traceWait(waiter.startedAt, Exit.void, run.handedAt), run.outcome)
        }
        const handOut = this.handOut(served, waiter)
        return served.checkedOutAt - waiter.startedAt < this.options.traceWaitsOver
          ? handOut
          : Effect.zipRight(this.traceWait(waiter.startedAt, Exit.void), handOut)
      }
    })
    return waited as Effect.Effect<X, Y | PoolError | E, Z>
  }

  /**
   * Records a span for a checkout that waited long enough to matter, after the
   * fact and with its true start: a span per hand-off would cost more than the
   * hand-off itself. Effect's own tracer keeps no spans, and this one is never
   * a parent: without a tracer of the user's, none is made.
   */
  private traceWait(startedAt: number, outcome: Exit.Exit<unknown, unknown>, now = this.now()): Effect.Effect<void> {
    if (now - startedAt < this.options.traceWaitsOver) return Effect.void
    return Effect.withFiberRuntime((fiber) => {
      const tracer = fiber.currentTracer
      if (tracer === defaultTracer) return Effect.void
      const span = tracer.span(
        "lifeguard.pool.checkout",
        Option.fromNullable(fiber.currentSpan),
        fiber.currentContext,
        [],
        BigInt(Math.round(startedAt * 1_000_000)),
        "internal"
      )
      span.attribute("lifeguard.pool", this.name)
      span.attribute("lifeguard.pool.waited_ms", now - startedAt)
      span.attribute("lifeguard.pool.in_use", this.inUse)
      span.attribute("lifeguard.pool.waiting", this.liveWaiters)
      span.end(BigInt(Math.round(now * 1_000_000)), outcome)
      return Effect.void
    })
  }

  /** The caller stopped waiting: its slot is dead, and a connection it was handed at that instant moves on. */
  private abandon(waiter: Waiter<A, E>): void {
    if (!waiter.settled) {
      waiter.settled = true
      this.liveWaiters--
      this.abandonedInQueue++
      this.metrics.waiters(this.liveWaiters)
      this.checkoutFailed(waiter.startedAt, "interrupted", undefined)
      if (this.abandonedInQueue > compactionFloor && this.abandonedInQueue * 2 > this.waiters.length()) {
        this.waiters.compact()
        this.abandonedInQueue = 0
      }
    } else if (waiter.served !== undefined) {
      // Only connections are left in `served`: a direct call's run is never there.
      const entry = waiter.served as Entry<A>
      waiter.served = undefined
      this.putBack(entry)
    }
  }

  private needsValidation(entry: Entry<A>, now: number): boolean {
    return this.config.validate !== undefined && now - entry.lastUsedAt >= this.options.validateAfterIdle
  }

  /**
   * Validates in the caller's fiber, within the checkout's one deadline
   * (acquireTimeout) and checkTimeout. An interrupted caller stops the
   * check at once (it is interruptible even when the caller's interrupt came
   * just before it started) and gives the connection
   * back as it found it (the check said nothing about it). The pool closing
   * the connection (clear with interruptInUse, the drain deadline) stops the
   * check too, and the checkout goes on as after a failed one.
   */
  private validate<X, Y, Z>(entry: Entry<A>, checkout: Checkout<A, X, Y, Z>): Effect.Effect<X, Y | PoolError | E, Z> {
    const left = checkout.startedAt + this.options.acquireTimeout - this.now()
    const deadlineFirst = left < this.options.checkTimeout
    const stop = Deferred.unsafeMake<void>(FiberId.none)
    entry.stopValidation = stop
    this.validating++
    const checked = Effect.raceFirst(
      this.bounded(this.config.validate!(entry.value), Math.max(0, left)),
      Effect.as(Effect.interruptible(Deferred.await(stop)), false)
    )
    // An interrupt that reached the caller before the check started lands here, under the caller's
    // interruptibility, instead of waiting for the whole check; one that comes during the check stops it.
    return Effect.flatMap(Effect.exit(Effect.zipRight(checkout.restore(Effect.void), checked)), (exit) => {
      entry.stopValidation = undefined
      this.validating--
      this.checkAllReturned()
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
        this.putBack(entry)
        return Effect.failCause(exit.cause as Cause.Cause<never>)
      }
      if (deadlineFirst && Exit.isFailure(exit) && Cause.isFailType(exit.cause) && Cause.isTimeoutException(exit.cause.error)) {
        this.closeInUse(entry, "error", "validation did not finish within the checkout's acquireTimeout")
        return this.timeoutCheckout(checkout.startedAt)
      }
      const healthy = Exit.isSuccess(exit) && exit.value
      // The pool may have closed it meanwhile (clear with interruptInUse, the drain deadline): never hand that out.
      if (healthy && entry.state === "inUse") {
        // An interrupt that came during the check lands before the connection is used (a direct call would start at once).
        return Effect.matchCauseEffect(checkout.restore(Effect.void), {
          onFailure: (cause) => {
            this.putBack(entry)
            return Effect.failCause(cause)
          },
          onSuccess: () => this.deliver(entry, checkout.site, checkout.restore, checkout.then, checkout.use)
        })
      }
      if (entry.state === "inUse") this.closeInUse(entry, "error", "validation failed")
      // An interrupt that came while the check was stopped lands here, before the checkout takes another connection.
      return Effect.zipRight(checkout.restore(Effect.void), Effect.suspend(() => this.retryAfterInvalid(checkout)))
    })
  }

  /** After a failed validation the caller keeps its place: no older waiter is passed, no younger one passes it. */
  private retryAfterInvalid<X, Y, Z>(checkout: Checkout<A, X, Y, Z>): Effect.Effect<X, Y | PoolError | E, Z> {
    if (this.state !== "ready") return this.refuse(checkout.startedAt)
    const now = this.now()
    const head = this.liveHead()
    const entry = head === undefined || head.seq > checkout.seq ? this.takeIdle(now) : undefined
    if (entry === undefined) {
      return this.wait(checkout.startedAt, checkout.seq, checkout.restore, checkout.site, checkout.then, checkout.use, true)
    }
    this.markCheckedOut(entry, checkout.startedAt, now)
    return this.handOut(entry, checkout)
  }

  /** Runs a user check (validate or reset) bounded by checkTimeout; any failure counts as "broken". */
  private check(effect: Effect.Effect<boolean, unknown, R>): Effect.Effect<boolean> {
    return Effect.map(Effect.exit(this.bounded(effect, this.options.checkTimeout)), (exit) => Exit.isSuccess(exit) && exit.value)
  }

  private bounded(effect: Effect.Effect<boolean, unknown, R>, limit: number): Effect.Effect<boolean, unknown> {
    return effect.pipe(
      // Checks may run inside uninterruptible regions; the timeout must still be able to stop them.
      Effect.interruptible,
      Effect.timeout(Math.min(limit, this.options.checkTimeout)),
      Effect.provide(this.context)
    )
  }

  private timeoutError(): PoolTimeoutError {
    return new PoolTimeoutError({
      pool: this.name,
      timeout: Duration.millis(this.options.acquireTimeout),
      maxSize: this.options.maxSize,
      counts: this.counts(),
      lastConnectError: this.lastConnectError,
      createTimeout: Duration.millis(this.options.createTimeout)
    })
  }

  /** A checkout not in the queue ran out of time (its validation overran the deadline). */
  private timeoutCheckout(startedAt: number): Effect.Effect<never, PoolTimeoutError> {
    const error = this.timeoutError()
    this.counters.timeouts++
    this.checkoutFailed(startedAt, "timeout", error)
    return Effect.fail(error)
  }

  /** Takes the next idle connection, closing any that went stale, idle too long or past their lifetime. */
  private takeIdle(now: number): Entry<A> | undefined {
    while (this.idle.length > 0) {
      const entry = this.options.reuse === "lifo" ? this.idle.pop()! : this.idle.shift()!
      const reason = this.idleRetireReason(entry, now)
      if (reason === undefined) return entry
      this.destroy(entry, reason)
    }
    return undefined
  }

  private idleRetireReason(entry: Entry<A>, now: number): CloseReason | undefined {
    if (entry.generation !== this.generation) return "stale"
    if (now - entry.lastUsedAt >= this.options.idleTimeout) return "idle"
    if (now >= entry.retireAt) return "lifetime"
    return undefined
  }

  private markCheckedOut(entry: Entry<A>, startedAt: number, now: number): void {
    entry.state = "inUse"
    entry.uses++
    entry.checkedOutAt = now
    this.inUse++
    this.counters.checkouts++
    this.metrics.checkouts(1)
    this.metrics.checkoutWait(now - startedAt)
    this.updateUseGauges()
    if (this.isListened()) {
      this.emit({
        _tag: "ConnectionCheckedOut",
        pool: this.name,
        time: now,
        connectionId: entry.id,
        duration: now - startedAt
      })
    }
  }

  // --- return ------------------------------------------------------------

  private release(entry: Entry<A>): Effect.Effect<void> {
    if (this.config.reset === undefined || entry.state !== "inUse" || entry.invalidated || this.state === "closed") {
      return Effect.sync(() => this.checkIn(entry, true))
    }
    return Effect.flatMap(
      this.check(this.config.reset(entry.value)),
      (healthy) => Effect.sync(() => this.checkIn(entry, healthy))
    )
  }

  /**
   * Returns a connection its checkout never used (the caller was interrupted
   * as it was handed over, or while validating): no use is counted and its
   * idle time is kept, so maxUses and validateAfterIdle see it as before.
   */
  private putBack(entry: Entry<A>): void {
    if (entry.state !== "inUse") return
    entry.uses--
    this.checkIn(entry, true, false)
  }

  private checkIn(entry: Entry<A>, healthy: boolean, used = true): void {
    const now = this.now()
    if (this.isListened()) {
      this.emit({
        _tag: "ConnectionCheckedIn",
        pool: this.name,
        time: now,
        connectionId: entry.id,
        duration: now - entry.checkedOutAt
      })
    }
    // Closed while out (clear with interruptInUse, or the drain deadline): already accounted for.
    if (entry.state !== "inUse") return
    this.leftUse()
    if (used) this.metrics.connectionUse(now - entry.checkedOutAt)
    if (entry.leakWatch !== undefined) {
      entry.leakWatch.unsafeInterruptAsFork(FiberId.none)
      entry.leakWatch = undefined
    }
    const reason = this.returnRetireReason(entry, now, healthy)
    if (reason === undefined) {
      if (used) entry.lastUsedAt = now
      this.handOff(entry, now)
    } else {
      this.destroy(entry, reason)
    }
    this.updateUseGauges()
  }

  /** Every way a connection stops being in use comes through here, so the drain hears of the last one. */
  private leftUse(): void {
    this.inUse--
    this.checkAllReturned()
  }

  /** The drain waits until no connection is in use and no checkout validates one. */
  private checkAllReturned(): void {
    if (this.inUse === 0 && this.validating === 0 && this.allReturned !== undefined) {
      Deferred.unsafeDone(this.allReturned, Exit.void)
    }
  }

  /** Waits, up to `limit`, for every connection to come back and every validation to end. */
  private awaitReturned(limit: number): Effect.Effect<void, Cause.TimeoutException> {
    return Effect.suspend(() => {
      if (this.inUse === 0 && this.validating === 0) return Effect.void
      const allReturned = Deferred.unsafeMake<void>(FiberId.none)
      this.allReturned = allReturned
      return Effect.timeout(Deferred.await(allReturned), limit)
    })
  }

  private returnRetireReason(entry: Entry<A>, now: number, healthy: boolean): CloseReason | undefined {
    if (this.state === "closed") return "poolClosed"
    if (entry.generation !== this.generation) return "stale"
    if (!healthy) return "error"
    if (entry.invalidated) return "invalidated"
    if (entry.uses >= this.options.maxUses) return "maxUses"
    if (now >= entry.retireAt) return "lifetime"
    return undefined
  }

  /** Gives a connection to the oldest live waiter, or parks it idle. */
  private handOff(entry: Entry<A>, now: number): void {
    for (;;) {
      const waiter = this.waiters.poll(undefined)
      if (waiter === undefined) break
      if (waiter.settled) {
        this.abandonedInQueue--
        continue
      }
      waiter.settled = true
      this.liveWaiters--
      this.metrics.waiters(this.liveWaiters)
      this.markCheckedOut(entry, waiter.startedAt, now)
      if (waiter.then === this.thenDirect && this.startsDirectly(entry, now)) {
        const direct = waiter.use as unknown as Direct<A, unknown, unknown>
        const run = this.startDirect(entry, direct)
        if (run !== undefined) {
          waiter.run = run
          run.waiter = waiter
          return
        }
        waiter.then = this.thenUse
        waiter.use = asUse(direct)
      }
      waiter.served = entry
      Deferred.unsafeDone(waiter.deferred, entry.handedOff)
      return
    }
    entry.state = "idle"
    this.idle.push(entry)
    if (this.initializing !== undefined) this.checkInitialized()
  }

  readonly invalidate = (connection: A): Effect.Effect<void> =>
    Effect.sync(() => {
      const entry = this.entries.get(connection)
      if (entry === undefined) return
      entry.invalidated = true
      if (entry.state === "idle") {
        this.idle.splice(this.idle.indexOf(entry), 1)
        this.destroy(entry, "invalidated")
      }
    })

  // --- connections --------------------------------------------------------

  /** Starts set-ups while waiters (and minIdle) want more than idle and pending cover, within the limits. */
  private ensureCapacity(): void {
    if (this.state !== "ready") return
    let deficit = this.liveWaiters + this.idleWanted() - this.idle.length - this.pending
    if (deficit <= 0 || this.total >= this.options.maxSize || this.pending >= this.options.maxConnecting) return
    while (deficit > 0 && this.total < this.options.maxSize && this.pending < this.options.maxConnecting) {
      this.total++
      this.pending++
      deficit--
      const run: SetUpRun = { generation: this.generation, id: 0, fiber: undefined, stopped: false, reported: false }
      this.setUps.add(run)
      run.fiber = this.fork(this.setUp(run))
    }
    this.updateGauges()
  }

  /** Idle connections the pool sets up without a waiter: minIdle, or the start-up check's target. */
  private idleWanted(): number {
    const target = this.initializing === undefined ? 0 : this.initializing.target
    const minIdle = this.options.minIdle > 0 && this.now() < this.refillHeldUntil ? 0 : this.options.minIdle
    return Math.max(minIdle, target)
  }

  private setUpStillWanted(generation: number): boolean {
    return this.state === "ready" && generation === this.generation &&
      this.liveWaiters + this.idleWanted() > this.idle.length + this.pending - 1
  }

  /** Retrying cannot fix an error the user's isRetryable rejects; a timeout can always be retried. */
  private isRetryable(error: unknown): boolean {
    if (error instanceof ConnectTimeoutError || this.config.isRetryable === undefined) return true
    try {
      return this.config.isRetryable(error as E)
    } catch {
      return true
    }
  }

  /**
   * A set-up ended without a connection and without being interrupted. A
   * permanent error fails every waiter now (it would fail each of them the
   * same way); a schedule that ran out fails the oldest waiter.
   */
  private setUpGaveUp(generation: number, cause: Cause.Cause<unknown>): void {
    const failure = Cause.failureOption(cause)
    const permanent = Option.isSome(failure) && !this.isRetryable(failure.value)
    this.refillHeldUntil = this.now() + this.options.maintenanceInterval
    if (this.initializing !== undefined) {
      Deferred.unsafeDone(this.initializing.done, Exit.failCause(cause))
      this.initializing = undefined
    }
    if (this.liveWaiters === 0) {
      // A background set-up (for minIdle): no checkout to tell, so the pool is cleared, as CMAP asks.
      if (generation === this.generation && this.options.minIdle > 0) {
        const error = Cause.squash(cause)
        if (this.clearNow({ pause: this.options.startPaused, reason: error })) this.spawnTask(this.logCleared(error))
      }
    } else if (permanent) this.failAllWaitersCause("connectionError", failure.value, cause as Cause.Cause<E>)
    else if (this.setUpStillWanted(generation)) this.failOldestWaiter(cause)
  }

  /**
   * The start-up check: opens `max(1, minIdle)` connections (they stay idle)
   * and fails with the set-up error, or ConnectTimeoutError, if it cannot
   * within initializationFailTimeout. A permanent error fails it at once.
   */
  initialize(timeout: number): Effect.Effect<void, E | ConnectTimeoutError> {
    return Effect.suspend(() => {
      const done = Deferred.unsafeMake<void, unknown>(FiberId.none)
      this.initializing = { target: Math.max(1, this.options.minIdle), done }
      this.ensureCapacity()
      this.checkInitialized()
      return (Deferred.await(done) as Effect.Effect<void, E>).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            (this.lastConnectError as E | undefined) ??
              new ConnectTimeoutError({ pool: this.name, timeout: Duration.millis(timeout), setting: "initializationFailTimeout" })
        }),
        Effect.ensuring(Effect.sync(() => {
          this.initializing = undefined
        }))
      )
    })
  }

  private checkInitialized(): void {
    if (this.initializing !== undefined && this.idle.length >= this.initializing.target) {
      Deferred.unsafeDone(this.initializing.done, Exit.void)
    }
  }

  /**
   * One connection slot, from the first attempt until a connection is made or
   * the set-up stops. Each attempt's acquire runs in a fiber of its own; an
   * attempt that overruns createTimeout is reported at once, but its slot is
   * held until the acquire has really ended and its scope closed, so the
   * factory never sees more than maxConnecting set-ups or maxSize connections.
   */
  private setUp(run: SetUpRun): Effect.Effect<void, never, R> {
    const generation = run.generation
    let scheduleState: unknown = this.retrySchedule.initial
    const attempt = (restore: Restore): Effect.Effect<Made<A> | undefined, never, R> =>
      Effect.suspend(() => {
        if (run.stopped) return Effect.succeed(undefined)
        const id = ++this.nextConnectionId
        run.id = id
        run.reported = false
        const startedAt = this.now()
        this.emitIfListened(() => ({ _tag: "ConnectionCreated", pool: this.name, time: startedAt, connectionId: id }))
        const scope = Effect.runSync(Scope.make())
        const connecting = this.fork(Scope.extend(this.config.acquire, scope))
        // Ends the attempt for good: the acquire has stopped (an uninterruptible one, when it lands) and its scope is closed.
        const end = (exit: Exit.Exit<unknown, unknown>) =>
          Effect.uninterruptible(Effect.zipRight(Fiber.interrupt(connecting), Scope.close(scope, exit)))
        return restore(Effect.timeoutOption(Fiber.await(connecting), this.options.createTimeout)).pipe(
          Effect.onInterrupt(() => end(Exit.void)),
          Effect.flatMap((outcome): Effect.Effect<Made<A> | undefined, never, R> => {
            if (Option.isSome(outcome) && Exit.isSuccess(outcome.value)) {
              return Effect.succeed({ id, value: outcome.value.value, scope, startedAt })
            }
            const cause: Cause.Cause<unknown> = Option.isSome(outcome) && Exit.isFailure(outcome.value)
              ? outcome.value.cause
              : Cause.fail(new ConnectTimeoutError({ pool: this.name, timeout: Duration.millis(this.options.createTimeout) }))
            // A failed acquire has ended already: close its scope first, so the waiters hear of the
            // failure with the slot free. A timed-out one may run on: report it now, end it after.
            const timedOut = Option.isNone(outcome)
            const ended = timedOut ? Effect.void : end(Exit.failCause(cause))
            const endTimedOut = timedOut ? end(Exit.failCause(cause)) : Effect.void
            return ended.pipe(
              Effect.zipRight(this.connectFailed(run, cause)),
              Effect.zipRight(this.retryAt(generation, cause, scheduleState)),
              Effect.flatMap((next) => {
                if (next === undefined) return Effect.as(endTimedOut, undefined)
                scheduleState = next.state
                return endTimedOut.pipe(
                  Effect.zipRight(
                    Effect.suspend(() => restore(this.clock.sleep(Duration.millis(Math.max(0, next.at - this.now())))))
                  ),
                  Effect.zipRight(
                    Effect.suspend(() => this.setUpStillWanted(generation) ? attempt(restore) : Effect.succeed(undefined))
                  )
                )
              })
            )
          })
        )
      })
    return Effect.uninterruptibleMask((restore) => attempt(restore)).pipe(
      Effect.zip(Effect.randomWith((random) => random.next)),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          this.pending--
          this.setUps.delete(run)
          const made = Exit.isSuccess(exit) ? exit.value[0] : undefined
          if (made !== undefined && run.stopped) {
            // Landed after clear stopped it (its close is reported): closed without a second event.
            this.total--
            this.spawnTask(Scope.close(made.scope, Exit.void))
          } else if (made !== undefined && Exit.isSuccess(exit)) {
            this.register(made.id, made.value, made.scope, generation, made.startedAt, exit.value[1])
          } else {
            this.total--
          }
          this.ensureCapacity()
          this.updateGauges()
        })
      ),
      Effect.ignore,
      Effect.annotateLogs("pool", this.name)
    )
  }

  /**
   * After a failed attempt, while this set-up still holds its slot: when to
   * try again, or `undefined` to stop. A permanent error or a schedule that
   * ran out gives up (and tells the waiters); a set-up no longer wanted
   * stops quietly, since another one covers the waiters.
   */
  private retryAt(
    generation: number,
    cause: Cause.Cause<unknown>,
    state: unknown
  ): Effect.Effect<{ readonly at: number; readonly state: unknown } | undefined, never, R> {
    return Effect.suspend(() => {
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure) || !this.isRetryable(failure.value)) {
        this.setUpGaveUp(generation, cause)
        return Effect.succeed(undefined)
      }
      if (!this.setUpStillWanted(generation)) return Effect.succeed(undefined)
      const now = this.now()
      return Effect.map(this.retrySchedule.step(now, failure.value, state), ([next, _, decision]) => {
        if (ScheduleDecision.isDone(decision)) {
          this.setUpGaveUp(generation, cause)
          return undefined
        }
        return { at: ScheduleIntervals.start(decision.intervals), state: next }
      })
    })
  }

  private connectFailed(run: SetUpRun, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const error = Cause.squash(cause)
    this.lastConnectError = error
    this.counters.connectFailures++
    this.metrics.connectFailures(error)
    if (!run.stopped) this.reportSetUpClosed(run, "error", error)
    return this.logConnectFailure(error)
  }

  /** A set-up's attempt ended without a connection: ConnectionClosed once per attempt. */
  private reportSetUpClosed(run: SetUpRun, reason: CloseReason, error?: unknown): void {
    if (run.reported) return
    run.reported = true
    this.emitIfListened(() => ({
      _tag: "ConnectionClosed",
      pool: this.name,
      time: this.now(),
      connectionId: run.id,
      reason,
      ...(error === undefined ? {} : { error })
    }))
  }

  /**
   * One line per distinct set-up error, then at most one summary per
   * interval while the same error repeats: a long outage is not a wall of warnings.
   */
  private logConnectFailure(error: unknown): Effect.Effect<void> {
    const now = this.now()
    const message = describeError(error)
    // The same error again, up to the numbers in it (attempt counters, ports, timings).
    const key = message.replace(/\d+/g, "#")
    const log = this.failureLog
    if (key === log.key && now - log.at < failureLogInterval) {
      log.suppressed++
      return Effect.void
    }
    const repeats = key === log.key ? log.suppressed : 0
    log.key = key
    log.at = now
    log.suppressed = 0
    const text = repeats === 0
      ? "connection set-up failed"
      : `connection set-up failed again, ${repeats} more time(s) since the last report`
    return Effect.logWarning(text).pipe(Effect.annotateLogs("error", message))
  }

  private register(
    id: number,
    value: A,
    scope: Scope.CloseableScope,
    generation: number,
    startedAt: number,
    random: number
  ): void {
    const now = this.now()
    const retireAt = startedAt + this.options.maxLifetime - random * this.options.lifetimeJitter
    const entry = new Entry(id, value, scope, generation, retireAt, now)
    this.entries.set(value, entry)
    // A timeout after this is about a busy pool, not about the last failed set-up.
    this.lastConnectError = undefined
    this.refillHeldUntil = 0
    this.counters.connectionsCreated++
    this.metrics.connectionsCreated(1)
    this.metrics.connectionSetup(now - startedAt)
    this.emitIfListened(() => ({
      _tag: "ConnectionReady",
      pool: this.name,
      time: now,
      connectionId: id,
      duration: now - startedAt
    }))
    if (this.state === "closed") this.destroy(entry, "poolClosed")
    else if (generation !== this.generation) this.destroy(entry, "stale")
    else this.handOff(entry, now)
  }

  /** Forgets a connection now and closes its scope in the background. */
  private destroy(entry: Entry<A>, reason: CloseReason, error?: unknown): void {
    entry.state = "closed"
    this.total--
    this.entries.delete(entry.value)
    this.counters.connectionsClosed++
    this.metrics.connectionsClosed(reason, 1)
    this.emitIfListened(() => ({
      _tag: "ConnectionClosed",
      pool: this.name,
      time: this.now(),
      connectionId: entry.id,
      reason,
      ...(error === undefined ? {} : { error })
    }))
    if (entry.leakWatch !== undefined) {
      entry.leakWatch.unsafeInterruptAsFork(FiberId.none)
      entry.leakWatch = undefined
    }
    this.spawnTask(Scope.close(entry.scope, Exit.void))
    this.ensureCapacity()
    this.updateGauges()
  }

  /** Closes a connection that is checked out; its holder's return becomes a no-op. Only once: it is then `closed`. */
  private closeInUse(entry: Entry<A>, reason: CloseReason, error?: unknown): void {
    if (entry.state !== "inUse") return
    this.leftUse()
    if (entry.stopValidation !== undefined) Deferred.unsafeDone(entry.stopValidation, Exit.void)
    this.destroy(entry, reason, error)
  }

  private startLeakWatch(entry: Entry<A>, holder: string): void {
    if (entry.state !== "inUse") return
    const threshold = this.options.leakDetectionThreshold
    entry.leakWatch = this.spawnTask(
      Effect.sleep(threshold).pipe(
        Effect.zipRight(Effect.suspend(() => {
          this.emitIfListened(() => ({
            _tag: "ConnectionLeakSuspected",
            pool: this.name,
            time: this.now(),
            connectionId: entry.id,
            heldFor: this.now() - entry.checkedOutAt,
            checkedOutAt: holder
          }))
          return Effect.logWarning("connection checked out for longer than leakDetectionThreshold; was it returned?").pipe(
            Effect.annotateLogs({
              connectionId: entry.id,
              leakDetectionThreshold: Duration.format(threshold),
              checkedOutBy: holder
            })
          )
        })),
        Effect.annotateLogs("pool", this.name)
      )
    )
  }

  // --- waiters: deadlines and mass failure ---------------------------------

  private liveHead(): Waiter<A, E> | undefined {
    for (;;) {
      const head = this.waiters.peek()
      if (head === undefined || !head.settled) return head
      this.waiters.poll(undefined)
      this.abandonedInQueue--
    }
  }

  /** One fiber enforces every waiter's deadline: the queue is FIFO and the timeout fixed, so the head expires first. */
  private readonly deadlineTimer: Effect.Effect<never> = Effect.suspend(() => {
    const head = this.liveHead()
    this.timerParked = head === undefined
    if (head === undefined) return this.awaitKick("timer")
    const remaining = head.startedAt + this.options.acquireTimeout - this.now()
    if (remaining > 0) return Effect.raceFirst(this.clock.sleep(Duration.millis(remaining)), this.awaitKick("timer"))
    this.waiters.poll(undefined)
    this.failWaiter(head, "timeout", this.timeoutError())
    this.counters.timeouts++
    return Effect.void
  }).pipe(Effect.forever)

  private failWaiter(waiter: Waiter<A, E>, reason: CheckOutFailedReason, error: PoolError): void {
    this.failWaiterCause(waiter, reason, error, Cause.fail(error))
  }

  private failWaiterCause(
    waiter: Waiter<A, E>,
    reason: CheckOutFailedReason,
    error: unknown,
    cause: Cause.Cause<PoolError | E>
  ): void {
    waiter.settled = true
    this.liveWaiters--
    this.metrics.waiters(this.liveWaiters)
    this.checkoutFailed(waiter.startedAt, reason, error)
    Deferred.unsafeDone(waiter.deferred, Exit.failCause(cause))
  }

  private failAllWaiters(reason: CheckOutFailedReason, error: PoolError): void {
    this.failAllWaitersCause(reason, error, Cause.fail(error))
  }

  private failAllWaitersCause(reason: CheckOutFailedReason, error: unknown, cause: Cause.Cause<PoolError | E>): void {
    for (let waiter = this.waiters.poll(undefined); waiter !== undefined; waiter = this.waiters.poll(undefined)) {
      if (!waiter.settled) this.failWaiterCause(waiter, reason, error, cause)
    }
    this.abandonedInQueue = 0
  }

  /** A set-up gave up (its retry schedule ran out): the oldest waiter learns why. */
  private failOldestWaiter(cause: Cause.Cause<unknown>): void {
    const head = this.liveHead()
    if (head === undefined) return
    this.waiters.poll(undefined)
    this.failWaiterCause(head, "connectionError", Cause.squash(cause), cause as Cause.Cause<E>)
  }

  private checkoutFailed(startedAt: number, reason: CheckOutFailedReason, error: unknown): void {
    this.metrics.checkoutFailures(reason, 1)
    this.emitIfListened(() => {
      const now = this.now()
      return {
        _tag: "ConnectionCheckOutFailed",
        pool: this.name,
        time: now,
        reason,
        duration: now - startedAt,
        ...(error === undefined ? {} : { error })
      }
    })
  }

  // --- generations, maintenance, drain -------------------------------------

  readonly clear = (options: ClearOptions = {}): Effect.Effect<void> =>
    Effect.suspend(() => this.clearNow(options) ? this.logCleared(options.reason) : Effect.void)

  private logCleared(reason: unknown): Effect.Effect<void> {
    return Effect.logInfo("pool cleared").pipe(
      Effect.annotateLogs({
        pool: this.name,
        generation: this.generation,
        ...(reason === undefined ? {} : { reason: describeError(reason) })
      })
    )
  }

  /** The clear itself, in one step; false when the pool was not ready (nothing to clear). */
  private clearNow(options: ClearOptions): boolean {
    if (this.state !== "ready") return false
    const interruptInUse = options.interruptInUse ?? false
    const stale = this.generation++
    if (options.pause === true) this.state = "paused"
    this.metrics.generation(this.generation)
    this.emitIfListened(() => ({
      _tag: "ConnectionPoolCleared",
      pool: this.name,
      time: this.now(),
      generation: this.generation,
      interruptInUseConnections: interruptInUse
    }))
    if (interruptInUse) {
      // Set-ups in flight are stopped too, each reported closed before the waiters hear of the clear.
      for (const run of this.setUps) {
        if (run.stopped || run.generation > stale) continue
        run.stopped = true
        if (run.id > 0) this.reportSetUpClosed(run, "stale")
        run.fiber?.unsafeInterruptAsFork(FiberId.none)
      }
    }
    this.failAllWaiters(
      "connectionError",
      new PoolClearedError({ pool: this.name, generation: this.generation, reason: options.reason })
    )
    for (const entry of this.idle.splice(0)) this.destroy(entry, "stale")
    if (interruptInUse) {
      for (const entry of this.entries.values()) {
        if (entry.state === "inUse" && entry.generation <= stale) this.closeInUse(entry, "stale")
      }
    }
    this.updateGauges()
    this.kick("maintenance")
    return true
  }

  readonly ready: Effect.Effect<void> = Effect.sync(() => {
    if (this.state !== "paused") return
    this.state = "ready"
    this.emitIfListened(() => ({ _tag: "ConnectionPoolReady", pool: this.name, time: this.now() }))
    this.kick("maintenance")
  })

  /** Retires idle connections that are stale, idle too long or too old, then refills to minIdle. */
  private maintain(): void {
    const now = this.now()
    const keep: Array<Entry<A>> = []
    for (const entry of this.idle.splice(0)) {
      const reason = this.idleRetireReason(entry, now)
      if (reason === undefined) keep.push(entry)
      else this.destroy(entry, reason)
    }
    this.idle.push(...keep)
    this.ensureCapacity()
  }

  private readonly maintenance: Effect.Effect<never> = Effect.suspend(() => {
    this.maintain()
    return Effect.raceFirst(this.clock.sleep(Duration.millis(this.options.maintenanceInterval)), this.awaitKick("maintenance"))
  }).pipe(Effect.forever)

  private awaitKick(which: "timer" | "maintenance"): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.kickedEarly[which]) {
        this.kickedEarly[which] = false
        return Effect.void
      }
      const deferred = Deferred.unsafeMake<void>(FiberId.none)
      if (which === "timer") this.timerKick = deferred
      else this.maintenanceKick = deferred
      return Deferred.await(deferred)
    })
  }

  private kick(which: "timer" | "maintenance"): void {
    const deferred = which === "timer" ? this.timerKick : this.maintenanceKick
    if (deferred === undefined) {
      // Not parked yet (it is still starting, or busy): the kick waits for it rather than being lost.
      this.kickedEarly[which] = true
      return
    }
    if (which === "timer") this.timerKick = undefined
    else this.maintenanceKick = undefined
    Deferred.unsafeDone(deferred, Exit.void)
  }

  /** Starts the drain once, in a fiber of the pool's own: a caller that stops waiting does not stop it. */
  readonly drain: Effect.Effect<void> = Effect.suspend(() => {
    if (this.drained === undefined) {
      this.drained = Deferred.unsafeMake<void>(FiberId.none)
      this.spawnBackground(this.drainNow(this.drained))
    }
    return Deferred.await(this.drained)
  })

  private drainNow(drained: Deferred.Deferred<void>): Effect.Effect<void> {
    const deadline = this.now() + this.options.drainTimeout
    this.state = "closed"
    this.failAllWaiters("poolClosed", new PoolClosedError({ pool: this.name }))
    for (const entry of this.idle.splice(0)) this.destroy(entry, "poolClosed")
    this.updateGauges()
    this.emitIfListened(() => ({ _tag: "ConnectionPoolClosed", pool: this.name, time: this.now() }))
    return this.awaitReturned(this.options.drainTimeout).pipe(
      Effect.catchAll(() =>
        Effect.suspend(() => {
          const late = [...this.entries.values()].filter((entry) => entry.state === "inUse")
          for (const entry of late) this.closeInUse(entry, "poolClosed")
          return Effect.logWarning("closed the connections still checked out after drainTimeout").pipe(
            Effect.annotateLogs({
              connections: late.length,
              drainTimeout: Duration.format(Duration.millis(this.options.drainTimeout))
            }),
            // Closing them stopped their validations: the pool's work on them ends before it reports itself drained.
            Effect.zipRight(Effect.ignore(this.awaitReturned(this.options.checkTimeout)))
          )
        })
      ),
      Effect.zipRight(Effect.suspend(() => {
        for (const run of this.setUps) run.fiber?.unsafeInterruptAsFork(FiberId.none)
        return this.awaitEnded(deadline)
      })),
      Effect.zipRight(Effect.suspend(() => this.reportLeftRunning())),
      Effect.zipRight(this.waitQueue.shutdown),
      Effect.zipRight(PubSub.shutdown(this.eventHub)),
      Effect.zipRight(Effect.sync(() => {
        this.drainDone = true
        this.metrics.close()
      })),
      Effect.zipRight(Deferred.succeed(drained, undefined)),
      Effect.annotateLogs("pool", this.name)
    )
  }

  /** Waits, until the drain's deadline, for every set-up and task to end; new tasks may start meanwhile. */
  private awaitEnded(deadline: number): Effect.Effect<void> {
    const next = (): Effect.Effect<void> =>
      Effect.suspend(() => {
        const running: Array<Fiber.RuntimeFiber<void, never>> = [...this.tasks]
        for (const run of this.setUps) if (run.fiber !== undefined) running.push(run.fiber)
        return running.length === 0 ? Effect.void : Effect.zipRight(Fiber.awaitAll(running), next())
      })
    return Effect.suspend(() => Effect.ignore(Effect.timeout(next(), Math.max(0, deadline - this.now()))))
  }

  /** "No fiber left behind": what outlived the drain's deadline is counted and logged, not silently dropped. */
  private reportLeftRunning(): Effect.Effect<void> {
    this.counters.setupsLeftRunning = this.setUps.size
    this.counters.closesLeftRunning = this.tasks.size
    if (this.setUps.size === 0 && this.tasks.size === 0) return Effect.void
    return Effect.logWarning(
      "drainTimeout passed with set-ups or closes still running; they finish in the background"
    ).pipe(
      Effect.annotateLogs({
        setupsLeftRunning: this.setUps.size,
        closesLeftRunning: this.tasks.size,
        drainTimeout: Duration.format(Duration.millis(this.options.drainTimeout))
      })
    )
  }

  // --- observability -------------------------------------------------------

  private counts(): PoolCounts {
    return {
      total: this.total,
      idle: this.idle.length,
      inUse: this.inUse,
      pending: this.pending,
      waiting: this.liveWaiters
    }
  }

  readonly stats: Effect.Effect<PoolStats> = Effect.sync(() => ({
    ...this.counts(),
    generation: this.generation,
    paused: this.state === "paused",
    closed: this.state === "closed",
    draining: this.drained !== undefined && !this.drainDone,
    lastConnectError: this.lastConnectError,
    ...this.counters
  }))

  readonly events: Stream.Stream<PoolEvent> = Stream.unwrapScoped(
    Effect.gen(this, function*() {
      const subscription = yield* PubSub.subscribe(this.eventHub)
      yield* Effect.acquireRelease(
        Effect.sync(() => this.subscribers++),
        () => Effect.sync(() => this.subscribers--)
      )
      return Stream.fromQueue(subscription)
    })
  )

  private updateUseGauges(): void {
    this.metrics.idle(this.idle.length)
    this.metrics.inUse(this.inUse)
  }

  private updateGauges(): void {
    this.updateUseGauges()
    this.metrics.pending(this.pending)
  }

  private isListened(): boolean {
    return this.config.onEvent !== undefined || this.subscribers > 0
  }

  private emit(made: PoolEvent): void {
    const event = this.config.address === undefined ? made : { ...made, address: this.config.address }
    if (this.config.onEvent !== undefined) {
      try {
        this.config.onEvent(event)
      } catch (error) {
        // A listener's bug must not leave the pool half way through a hand-off.
        this.spawnTask(
          Effect.logError("the onEvent listener threw; the event was dropped for it", Cause.die(error)).pipe(
            Effect.annotateLogs({ pool: this.name, event: event._tag })
          )
        )
      }
    }
    if (this.subscribers > 0) this.eventHub.unsafeOffer(event)
  }

  private emitIfListened(make: () => PoolEvent): void {
    if (this.isListened()) this.emit(make())
  }

  /** Starts the background fibers and announces the pool. */
  start(): void {
    this.emitIfListened(() => ({ _tag: "ConnectionPoolCreated", pool: this.name, time: this.now(), options: this.options }))
    if (this.state === "ready") {
      this.emitIfListened(() => ({ _tag: "ConnectionPoolReady", pool: this.name, time: this.now() }))
    }
    this.spawnBackground(Effect.asVoid(this.deadlineTimer))
    this.spawnBackground(Effect.asVoid(this.maintenance))
  }
}

/** Who holds a connection, for leak reports: the fiber, the spans it runs in, and the call site. */
const describeHolder = (fiber: Fiber.RuntimeFiber<unknown, unknown>, site: Error | undefined): string => {
  const spans: Array<string> = []
  for (let span = fiber.currentSpan; span !== undefined && spans.length < 8;) {
    if (span._tag === "ExternalSpan") {
      spans.push(`external ${span.spanId}`)
      break
    }
    spans.push(span.name)
    span = Option.getOrUndefined(span.parent)
  }
  const frame = site?.stack?.split("\n").slice(1).map((line) => line.trim())
    .find((line) => !line.includes("/node_modules/") && !line.includes("/internal/pool."))
  return `by fiber ${FiberId.threadName(fiber.id())}` +
    (spans.length > 0 ? ` in span ${spans.join(" < ")}` : "") +
    (frame === undefined ? "" : `, ${frame}`)
}

/**
 * The constructor's two faces: without a start-up check building the pool
 * fails only on bad options; with one it can also fail with a set-up error.
 *
 * @internal
 */
export interface Make {
  <A, E = never, R = never>(
    options: Options<A, E, R> & { readonly initializationFailTimeout?: undefined }
  ): Effect.Effect<Pool<A, E>, PoolConfigError, Scope.Scope | R>
  <A, E = never, R = never>(
    options: Options<A, E, R>
  ): Effect.Effect<Pool<A, E>, PoolConfigError | E | ConnectTimeoutError, Scope.Scope | R>
}

const makePool = <A, E, R>(
  options: Options<A, E, R>
): Effect.Effect<Pool<A, E>, PoolConfigError | E | ConnectTimeoutError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const resolved = yield* resolve(options)
    const context = yield* Effect.context<R>()
    const clock = yield* Effect.clock
    const background = yield* FiberSet.make<void>()
    const spawnBackground = yield* FiberSet.runtime(background)<never>()
    const runtime = yield* Effect.runtime<R>()
    const { deque, queue } = yield* WaitQueue.make<Waiter<A, E>>()
    const eventHub = yield* PubSub.unbounded<PoolEvent>()
    const pool = new PoolImpl(
      resolved,
      options,
      context,
      clock,
      deque,
      queue,
      eventHub,
      runtime,
      spawnBackground
    )
    // Finalizers run last-added first: drain runs before the fiber sets interrupt what is left.
    yield* Effect.addFinalizer(() => pool.drain)
    pool.start()
    if (resolved.initializationFailTimeout !== undefined) yield* pool.initialize(resolved.initializationFailTimeout)
    return pool
  })

/** @internal */
export const make: Make = makePool as Make

/**
 * Runs one direct call (see `Direct`) on a connection of `pool`, which must
 * be one this module made.
 *
 * @internal
 */
export const dispatch = <A, E, B, E2>(pool: Pool<A, E>, direct: Direct<A, B, E2>): Effect.Effect<B, PoolError | E | E2> =>
  (pool as PoolImpl<A, E, unknown>).dispatch(direct)
