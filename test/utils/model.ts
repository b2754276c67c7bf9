/**
 * What the property test knows about a pool from the outside: a scripted
 * connection factory that counts what it sees, the checkouts the test
 * started, and the pool's events, checked against the pool's invariants
 * after every step. Each violation names its invariant; each path the
 * schedule drove the pool through is counted, so the test can prove that
 * its random mixes reach them all.
 */
import { Cause, Data, Deferred, Effect, Exit, Fiber, FiberId, FiberRef, Option } from "effect"
import type { Scope } from "effect"
import type { Pool, PoolEvent } from "../../src/index.js"
import { type Direct, dispatch } from "../../src/internal/pool.js"
import type { VirtualWorld } from "./virtualClock.js"

/** The invariants, by name: known open issues are listed by these names. */
export type Invariant =
  | "limits.pool"
  | "limits.factory"
  | "counts.nonNegative"
  | "counts.sum"
  | "counts.factoryOpen"
  | "counts.waiting"
  | "handout.twice"
  | "handout.closed"
  | "fifo"
  | "acquireTimeout.honoured"
  | "scope.closedOnce"
  | "scope.leak"
  | "close.healthyAsBroken"
  | "interrupt.tookAnother"
  | "interrupt.ignored"
  | "interrupt.ignoredInValidation"
  | "maxUses.exact"
  | "drain.prompt"
  | "setUp.spuriousFailure"
  | "close.fibersLeft"
  | "close.checkoutLeft"
  | "checkout.unexpected"
  | "hang"
  | "harness"

export interface Violation {
  readonly invariant: Invariant
  readonly message: string
  readonly step: number
  readonly time: number
}

export interface Limits {
  readonly maxSize: number
  readonly maxConnecting: number
  readonly maxUses: number
  readonly acquireTimeout: number
  readonly checkTimeout: number
  readonly drainTimeout: number
  /** The retry schedule never gives up: no waiter may then fail with a set-up's error. */
  readonly retriesForever: boolean
}

/** What the next set-ups do. */
export interface SetUpPlan {
  readonly delay: number
  readonly fail: boolean
  /** False: the set-up ignores interruption (as `Effect.acquireRelease` does), so it outlives a createTimeout. */
  readonly interruptible: boolean
}

/** What the next checks (validate or reset) do. */
export interface CheckPlan {
  readonly delay: number
  readonly result: "healthy" | "broken" | "fail" | "die"
}

export class SetUpError extends Data.TaggedError("SetUpError")<{ readonly attempt: number }> {
  override get message(): string {
    return `scripted set-up #${this.attempt} failed`
  }
}

/** A connection, with everything the test saw happen to it. */
export interface Connection {
  readonly id: number
  /** The id the pool's events give it. */
  readonly poolId: number
  finalizerRuns: number
  broken: boolean
  /** A validate or reset said it is broken, failed or timed out: closing it as "error" is then right. */
  checkFailed: boolean
  ready: boolean
  closedByPool: boolean
  closeReason: string | undefined
  closedAt: number
  /** Landed after its set-up had timed out. */
  stray: boolean
  deliveries: number
  /** The instant (model stamp) the pool last checked it out. */
  checkedOutAt: number
  /** Checked out and not yet seen by any checkout. */
  unobserved: boolean
  claim: Checkout | undefined
}

export type CheckoutKind = "get" | "use" | "direct"

export type CheckoutState = "waiting" | "validating" | "validated" | "holding" | "returning" | "done"

/** A `get`, `use` or direct call (the pool's `dispatch`) the test started. */
export interface Checkout {
  readonly seq: number
  readonly kind: CheckoutKind
  readonly startedAt: number
  readonly release: Deferred.Deferred<void>
  fiber: Fiber.RuntimeFiber<unknown, unknown>
  state: CheckoutState
  /** Since when (model stamp) it waits in the queue; undefined while served, or while the instant is not known yet. */
  waitingSince: number | undefined
  /** Waiting again from an instant not known yet: when the pool closes `requeueOn`, or the next quiet moment. */
  requeuePending: boolean
  requeueOn: Connection | undefined
  /** Finished waits, [from, to) in model stamps, that ended in a hand-out or in its own interruption. */
  readonly waits: Array<readonly [number, number]>
  /** How many of `waits` the FIFO check has already looked at. */
  waitsChecked: number
  /** The instants (model stamps) the pool served it a connection. */
  readonly serves: Array<number>
  connection: Connection | undefined
  interruptRequested: boolean
  stateAtInterrupt: CheckoutState | undefined
  /** The connection it was validating when its caller interrupted it. */
  interruptedInValidation: Connection | undefined
  /** Its last validation failed and it waits again. */
  requeued: boolean
  inReset: boolean
  /** `get` finished its hand-out (it put the return in the caller's scope) and the caller has not seen it yet. */
  handedOver: boolean
}

/**
 * The fields of an event the model reads. Events are named by `type` on some
 * branches and by `_tag` (an Effect tagged union) on others: read either.
 */
interface SeenEvent {
  readonly _tag?: string
  readonly type?: string
  readonly connectionId: number
  readonly reason: string
  readonly error?: unknown
  readonly interruptInUseConnections: boolean
}

/** The set-up a `ConnectionCreated` event announced, carried to the factory by the set-up fiber. */
const announcedSetUp = FiberRef.unsafeMake<number>(-1)
/** The checkout a fiber works for, so validate and reset know who calls them. */
const currentCheckout = FiberRef.unsafeMake<Checkout | undefined>(undefined)

const healthyCheck: CheckPlan = { delay: 0, result: "healthy" }
const brokenCheck: CheckPlan = { delay: 0, result: "broken" }

export class Model {
  readonly violations: Array<Violation> = []
  readonly coverage = new Map<string, number>()
  readonly checkouts: Array<Checkout> = []
  readonly connections: Array<Connection> = []
  private readonly byPoolId = new Map<number, Connection>()
  /** Set-ups that failed or timed out, by the pool's id. */
  private readonly failedSetUps = new Set<number>()
  setUpPlans: Array<SetUpPlan> = []
  checkPlans: Array<CheckPlan> = []
  step = 0
  private stamp = 0
  private setUpAttempts = 0
  connecting = 0
  open = 0
  /** Set-ups the factory is running now. */
  private readonly inFlight = new Set<{ readonly attempt: number; readonly interruptible: boolean; readonly endsAt: number }>()
  /** When the drain started (a drain step, or the pool's scope closing). */
  drainStartedAt: number | undefined = undefined
  /** Set once the pool's scope has closed: no set-up may start or still run after it. */
  poolClosed = false

  constructor(
    private readonly world: VirtualWorld,
    readonly limits: Limits,
    private readonly defaultSetUp: SetUpPlan
  ) {}

  private tick(): number {
    return ++this.stamp
  }

  violation(invariant: Invariant, message: string): void {
    if (this.violations.some((v) => v.invariant === invariant && v.message === message)) return
    this.violations.push({ invariant, message, step: this.step, time: this.world.now })
  }

  cover(path: string): void {
    this.coverage.set(path, (this.coverage.get(path) ?? 0) + 1)
  }

  private describe(connection: Connection): string {
    return `connection ${connection.id} (pool id ${connection.poolId})`
  }

  // --- the factory ---------------------------------------------------------

  private checkFactoryLimits(when: string): void {
    if (this.connecting > this.limits.maxConnecting) {
      this.violation("limits.factory", `${when}: the factory has ${this.connecting} set-ups in flight, maxConnecting is ${this.limits.maxConnecting}`)
    }
    if (this.open + this.connecting > this.limits.maxSize) {
      this.violation(
        "limits.factory",
        `${when}: the factory has ${this.open} connections open and ${this.connecting} in set-up, maxSize is ${this.limits.maxSize}`
      )
    }
  }

  /** The last ConnectionCreated, for a pool that starts the factory in a fiber of its own right after it. */
  private announced: { readonly id: number; readonly task: number } | undefined = undefined

  /** Which set-up this is, as the pool's events name it. */
  private announcedId(inherited: number): number {
    if (inherited >= 0) return inherited
    const announced = this.announced
    this.announced = undefined
    if (announced !== undefined && announced.task === this.world.tasksRun) return announced.id
    this.violation("harness", "the factory ran neither in a fiber a ConnectionCreated event announced nor right after one")
    return -1
  }

  readonly acquire: Effect.Effect<Connection, SetUpError, Scope.Scope> = Effect.flatMap(
    FiberRef.get(announcedSetUp),
    (inherited) => {
      const poolId = this.announcedId(inherited)
      const plan = this.setUpPlans.shift() ?? this.defaultSetUp
      const attempt = ++this.setUpAttempts
      if (this.poolClosed) this.violation("close.fibersLeft", `set-up #${attempt} started after the pool's scope closed`)
      this.connecting++
      const inFlight = { attempt, interruptible: plan.interruptible, endsAt: this.world.now + plan.delay }
      this.inFlight.add(inFlight)
      this.checkFactoryLimits(`set-up #${attempt} started`)
      if (!plan.interruptible && plan.delay > 0) this.cover("setUp.uninterruptible")
      let settled = false
      const body = Effect.zipRight(
        plan.delay > 0 ? Effect.sleep(plan.delay) : Effect.void,
        Effect.suspend(() => {
          settled = true
          this.connecting--
          this.inFlight.delete(inFlight)
          if (plan.fail) {
            this.cover("setUp.failed")
            return Effect.fail(new SetUpError({ attempt }))
          }
          this.open++
          const connection = this.connectionOpened(poolId)
          this.checkFactoryLimits(`set-up #${attempt} opened ${this.describe(connection)}`)
          return Effect.succeed(connection)
        })
      ).pipe(Effect.onInterrupt(() =>
        Effect.sync(() => {
          if (!settled) this.connecting--
          settled = true
          this.inFlight.delete(inFlight)
          this.cover("setUp.interrupted")
        })
      ))
      const close = (connection: Connection) =>
        Effect.sync(() => {
          connection.finalizerRuns++
          this.open--
          if (connection.finalizerRuns > 1) {
            this.violation("scope.closedOnce", `${this.describe(connection)}: its scope's finalizer ran ${connection.finalizerRuns} times`)
          }
        })
      return plan.interruptible
        ? Effect.uninterruptibleMask((restore) =>
          Effect.tap(restore(body), (connection) => Effect.addFinalizer(() => close(connection)))
        )
        : Effect.acquireRelease(body, close)
    }
  )

  private connectionOpened(poolId: number): Connection {
    const connection: Connection = {
      id: this.connections.length + 1,
      poolId,
      finalizerRuns: 0,
      broken: false,
      checkFailed: false,
      ready: false,
      closedByPool: false,
      closeReason: undefined,
      closedAt: 0,
      stray: this.failedSetUps.has(poolId),
      deliveries: 0,
      checkedOutAt: 0,
      unobserved: false,
      claim: undefined
    }
    if (connection.stray) this.cover("createTimeout.strayLanded")
    this.connections.push(connection)
    this.byPoolId.set(poolId, connection)
    return connection
  }

  private runCheck(kind: "validate" | "reset", connection: Connection): Effect.Effect<boolean, string> {
    return Effect.flatMap(FiberRef.get(currentCheckout), (checkout) => {
      if (checkout === undefined) {
        this.violation("harness", `${kind} of ${this.describe(connection)} ran outside any checkout`)
        return Effect.succeed(true)
      }
      if (kind === "validate") this.served(checkout, connection, "validating")
      else checkout.inReset = true
      const plan = connection.broken ? brokenCheck : this.checkPlans.shift() ?? healthyCheck
      const startedAt = this.world.now
      const outcome: Effect.Effect<boolean, string> = plan.result === "healthy"
        ? Effect.succeed(true)
        : plan.result === "broken"
        ? Effect.succeed(false)
        : plan.result === "fail"
        ? Effect.fail(`${kind} query failed`)
        : Effect.dieMessage(`${kind} crashed`)
      return Effect.zipRight(plan.delay > 0 ? Effect.sleep(plan.delay) : Effect.void, outcome).pipe(
        Effect.onExit((exit) => Effect.sync(() => this.checked(kind, checkout, connection, exit, startedAt)))
      )
    })
  }

  readonly validate = (connection: Connection) => this.runCheck("validate", connection)
  readonly reset = (connection: Connection) => this.runCheck("reset", connection)

  private checked(
    kind: "validate" | "reset",
    checkout: Checkout,
    connection: Connection,
    exit: Exit.Exit<boolean, string>,
    startedAt: number
  ): void {
    const passed = Exit.isSuccess(exit) && exit.value
    if (kind === "reset") {
      checkout.inReset = false
      if (!passed) connection.checkFailed = true
      this.cover(passed ? "reset.passed" : Exit.isInterrupted(exit) ? "reset.timedOut" : "reset.failed")
      return
    }
    if (passed) {
      this.cover("validation.passed")
      // Closed under the validation: a correct pool makes it wait again, once its fiber sees that.
      if (connection.closedByPool) this.requeue(checkout, connection, "nextQuiet")
      else checkout.state = "validated"
      return
    }
    // A check may run for checkTimeout, and no longer than what is left of the checkout's acquireTimeout.
    const bound = Math.min(this.limits.checkTimeout, checkout.startedAt + this.limits.acquireTimeout - startedAt)
    if (Exit.isInterrupted(exit) && this.world.now - startedAt < bound) {
      if (checkout.interruptRequested) {
        // Its caller is gone: it waits for nothing, so no wait of its is checked for FIFO from here on.
        this.cover("validation.interruptedByCaller")
        checkout.interruptedInValidation = connection
        return this.requeue(checkout, connection, "never")
      } else {
        this.cover("validation.interruptedByPool")
      }
    } else {
      connection.checkFailed = true
      this.cover(Exit.isInterrupted(exit) ? "validation.timedOut" : "validation.failed")
      checkout.requeued = true
      if (this.checkouts.some((other) => other !== checkout && other.requeued && other.state === "waiting")) {
        this.cover("validation.failedForTwoWaiters")
      }
    }
    // The pool queues it again right after it closes the connection, in the checkout's fiber (not now:
    // this runs in the check's own fiber, and the checkout's may resume after other fibers ran).
    this.requeue(checkout, connection, "nextQuiet")
    checkout.requeueOn = connection
  }

  /** The checkout lost the connection it was served and waits again from `since`, keeping its place. */
  private requeue(checkout: Checkout, connection: Connection, since: "now" | "nextQuiet" | "never"): void {
    if (connection.claim === checkout) connection.claim = undefined
    checkout.connection = undefined
    checkout.state = "waiting"
    checkout.waitingSince = since === "now" ? this.tick() : undefined
    checkout.requeuePending = since === "nextQuiet"
    checkout.requeueOn = undefined
  }

  /** A wait ends at `to`; only waits whose end the test knows exactly are kept for the FIFO check. */
  private endWait(checkout: Checkout, to: number | undefined): void {
    if (checkout.waitingSince !== undefined && to !== undefined) checkout.waits.push([checkout.waitingSince, to])
    checkout.waitingSince = undefined
    checkout.requeuePending = false
    checkout.requeueOn = undefined
  }

  // --- checkouts -----------------------------------------------------------

  /** Starts a checkout in a fiber of the world; it holds its connection for `hold` ms, or until released. */
  checkout(
    pool: Pool.Pool<Connection, SetUpError>,
    kind: CheckoutKind,
    hold: number | "forever"
  ): Checkout {
    const checkout: Checkout = {
      seq: this.checkouts.length + 1,
      kind,
      startedAt: this.world.now,
      release: Deferred.unsafeMake<void>(FiberId.none),
      fiber: undefined as never,
      state: "waiting",
      waitingSince: undefined,
      requeuePending: false,
      requeueOn: undefined,
      waits: [],
      waitsChecked: 0,
      serves: [],
      connection: undefined,
      interruptRequested: false,
      stateAtInterrupt: undefined,
      interruptedInValidation: undefined,
      requeued: false,
      inReset: false,
      handedOver: false
    }
    this.checkouts.push(checkout)
    // Seen the moment the pool hands it over: `use` calls its function then, and `get` returns into a
    // region the caller's interruption cannot enter before the connection is recorded.
    const holdIt = (connection: Connection) => {
      this.served(checkout, connection, "holding")
      const released = Deferred.await(checkout.release)
      return Effect.ensuring(
        hold === "forever" ? released : Effect.raceFirst(Effect.sleep(hold), released),
        Effect.sync(() => {
          if (connection.claim === checkout) connection.claim = undefined
          checkout.state = "returning"
        })
      )
    }
    const body = kind === "get"
      ? Effect.scoped(Effect.flatMap(Effect.scope, (scope) => {
        this.watchHandOver(checkout, scope)
        return Effect.uninterruptibleMask((restore) => Effect.flatMap(restore(pool.get), (c) => restore(holdIt(c))))
      }))
      : kind === "use"
      ? pool.use(holdIt)
      : dispatch(pool, this.directCall(checkout, hold, holdIt))
    const fiber = this.world.fork(
      Effect.suspend(() => {
        checkout.waitingSince = this.tick()
        return body
      }).pipe(Effect.locally(currentCheckout, checkout))
    )
    checkout.fiber = fiber
    fiber.addObserver((exit) => this.ended(checkout, exit))
    return checkout
  }

  /**
   * A direct call: the pool starts it on the connection it hands over, maybe
   * outside the caller's fiber, and it runs in a fiber of the world (the
   * driver) until `hold` or the release. It ends dirty on a broken
   * connection. Cancelled, it stops, except one held until released: that one
   * never ends, and the pool must give its connection up.
   */
  private directCall(
    checkout: Checkout,
    hold: number | "forever",
    holdIt: (connection: Connection) => Effect.Effect<void>
  ): Direct<Connection, void, never> {
    let call: Fiber.RuntimeFiber<void> | undefined
    return {
      start: (connection, done) => {
        this.cover(Option.isSome(Fiber.getCurrentFiber()) && this.actor() === checkout ? "direct.startedByCaller" : "direct.startedAtHandOff")
        this.served(checkout, connection, "holding")
        const released = Deferred.await(checkout.release)
        call = this.world.fork(Effect.ensuring(
          hold === "forever" ? released : Effect.raceFirst(Effect.sleep(hold), released),
          Effect.sync(() => {
            if (checkout.state === "done") return
            if (connection.claim === checkout) connection.claim = undefined
            checkout.state = "returning"
            done(Effect.void, !connection.broken)
          })
        ))
        return true
      },
      settle: () => Effect.sync(() => this.cover("direct.dirtyOutcome")),
      use: holdIt,
      cancel: (connection) =>
        Effect.suspend(() => {
          if (hold !== "forever") {
            this.cover("direct.cancelled")
            return Fiber.interrupt(call!)
          }
          this.cover("direct.cancelGaveUp")
          connection.checkFailed = true
          return Effect.void
        })
    }
  }

  /**
   * `get` hands a connection over by putting its return in the caller's scope. The caller's interruption
   * can still strike as `get` returns, before the test sees the connection: the pool has handed it out
   * all the same (it counts as a use), and the return, seen as `ConnectionCheckedIn`, says which it was.
   */
  private watchHandOver(checkout: Checkout, scope: Scope.Scope): void {
    // Scope.addFinalizer(scope, f) calls this method; Effect's public type does not list it.
    type Finalizer = (finalizer: unknown) => Effect.Effect<void>
    const watched = scope as unknown as { addFinalizer: Finalizer }
    const addFinalizer = watched.addFinalizer.bind(scope)
    watched.addFinalizer = (finalizer) => {
      if (checkout.state !== "holding") checkout.handedOver = true
      return addFinalizer(finalizer)
    }
  }

  /** The pool served the checkout a connection: to validate it, or to hold it. */
  private served(checkout: Checkout, connection: Connection, state: "validating" | "holding"): void {
    const who = `checkout #${checkout.seq}`
    connection.unobserved = false
    if (connection.finalizerRuns > 0 || connection.closedByPool) {
      this.violation(
        "handout.closed",
        `${who} was handed ${this.describe(connection)} (${state}) after the pool closed it (${connection.closeReason ?? "its scope ran its finalizer"})`
      )
    }
    const other = connection.claim
    if (other !== undefined && other !== checkout && other.state !== "done") {
      this.violation("handout.twice", `${who} was handed ${this.describe(connection)} while checkout #${other.seq} has it (${other.state})`)
    }
    const abandoned = checkout.interruptedInValidation
    if (abandoned !== undefined && abandoned !== connection) {
      this.violation(
        "interrupt.tookAnother",
        `${who} was interrupted while validating ${this.describe(abandoned)} and went on to take ${this.describe(connection)}`
      )
    }
    connection.claim = checkout
    checkout.connection = connection
    checkout.handedOver = false
    this.endWait(checkout, connection.checkedOutAt)
    checkout.serves.push(connection.checkedOutAt)
    if (state === "holding") {
      connection.deliveries++
      if (connection.deliveries > this.limits.maxUses) {
        this.violation("maxUses.exact", `${this.describe(connection)} was handed out ${connection.deliveries} times, maxUses is ${this.limits.maxUses}`)
      }
      this.cover(`served.${checkout.kind}`)
    }
    if (checkout.requeued) {
      checkout.requeued = false
      this.cover("validation.requeuedThenServed")
    }
    checkout.state = state
  }

  private ended(checkout: Checkout, exit: Exit.Exit<unknown, unknown>): void {
    const before = checkout.state
    checkout.state = "done"
    checkout.requeued = false
    // A wait its own fiber gave up was ended by the pool's event (ConnectionCheckOutFailed or CheckedIn).
    // One a timeout, clear, drain or failed set-up ended, in another fiber, ended at an instant the test
    // cannot pin down (even if an interrupt came too): not checked.
    this.endWait(checkout, undefined)
    const connection = checkout.connection
    if (connection !== undefined && connection.claim === checkout) connection.claim = undefined
    if (Exit.isSuccess(exit)) return
    if (Cause.isInterruptedOnly(exit.cause)) {
      if (!checkout.interruptRequested) {
        this.violation("checkout.unexpected", `checkout #${checkout.seq} was interrupted without anyone asking (${before})`)
      }
      this.cover(`interrupted.${checkout.stateAtInterrupt ?? before}`)
      return
    }
    const failure = Cause.failureOption(exit.cause)
    const tag = Option.isSome(failure) && typeof failure.value === "object" && failure.value !== null && "_tag" in failure.value
      ? String(failure.value._tag)
      : undefined
    switch (tag) {
      case "PoolTimeoutError":
      case "PoolClearedError":
      case "PoolClosedError":
        this.cover(`failed.${tag}`)
        return
      case "SetUpError":
      case "ConnectTimeoutError":
        if (this.limits.retriesForever) {
          this.violation(
            "setUp.spuriousFailure",
            `checkout #${checkout.seq} failed with a set-up's ${tag} although the retry schedule never gives up`
          )
        }
        this.cover("failed.setUpGaveUp")
        return
      default:
        this.violation("checkout.unexpected", `checkout #${checkout.seq} ended with ${Cause.pretty(exit.cause)}`)
    }
  }

  /** Interrupts a checkout from outside, as its caller would. */
  interrupt(checkout: Checkout): void {
    if (checkout.state === "done") return
    if (!checkout.interruptRequested) checkout.stateAtInterrupt = checkout.state
    checkout.interruptRequested = true
    this.world.interrupt(checkout.fiber)
  }

  live(): Array<Checkout> {
    return this.checkouts.filter((checkout) => checkout.state !== "done")
  }

  // --- the pool's events ---------------------------------------------------

  /** The checkout whose fiber (or one of its children) is running now, if any. */
  private actor(): Checkout | undefined {
    const fiber = Fiber.getCurrentFiber()
    return Option.isSome(fiber) ? fiber.value.getFiberRef(currentCheckout) : undefined
  }

  readonly onEvent = (pooled: PoolEvent.PoolEvent): void => {
    const event = pooled as unknown as SeenEvent
    switch (event._tag ?? event.type) {
      case "ConnectionCreated": {
        this.announced = { id: event.connectionId, task: this.world.tasksRun }
        const fiber = Fiber.getCurrentFiber()
        const settable = Option.getOrUndefined(fiber) as unknown as
          | { setFiberRef?: <X>(ref: FiberRef.FiberRef<X>, value: X) => void }
          | undefined
        if (settable?.setFiberRef === undefined) {
          this.violation("harness", `ConnectionCreated ${event.connectionId} was emitted outside a fiber`)
        } else {
          settable.setFiberRef(announcedSetUp, event.connectionId)
        }
        return
      }
      case "ConnectionReady": {
        const connection = this.byPoolId.get(event.connectionId)
        if (connection === undefined) {
          this.violation("harness", `ConnectionReady ${event.connectionId}: the factory opened no such connection`)
        } else {
          connection.ready = true
        }
        return
      }
      case "ConnectionCheckedOut": {
        const connection = this.byPoolId.get(event.connectionId)
        if (connection === undefined) return this.violation("harness", `ConnectionCheckedOut ${event.connectionId}: unknown`)
        if (connection.closedByPool || connection.finalizerRuns > 0) {
          this.violation("handout.closed", `the pool checked out ${this.describe(connection)} after closing it (${connection.closeReason})`)
        }
        connection.checkedOutAt = this.tick()
        connection.unobserved = true
        return
      }
      case "ConnectionCheckedIn": {
        const connection = this.byPoolId.get(event.connectionId)
        const returner = this.actor()
        if (connection !== undefined && returner?.handedOver === true) {
          returner.handedOver = false
          this.cover("served.interruptedAsGetReturned")
          this.served(returner, connection, "holding")
          returner.state = "returning"
          connection.claim = undefined
          return
        }
        if (connection?.unobserved === true) {
          // Handed to a waiter that was interrupted before it could take it: its wait ended at the hand-off.
          this.cover("handOff.toInterruptedWaiter")
          const actor = this.actor()
          if (actor !== undefined && actor.waitingSince !== undefined) this.endWait(actor, connection.checkedOutAt)
        }
        if (connection !== undefined) connection.unobserved = false
        return
      }
      case "ConnectionCheckOutFailed": {
        // The caller's own fiber gave up waiting: its wait ends now, before its place passes on.
        const actor = event.reason === "interrupted" ? this.actor() : undefined
        if (actor !== undefined && actor.waitingSince !== undefined) this.endWait(actor, this.tick())
        return
      }
      case "ConnectionClosed":
        return this.closed(event)
      case "ConnectionPoolCleared":
        this.cover(event.interruptInUseConnections ? "clear.interruptInUse" : "clear.plain")
        return
      default:
        return
    }
  }

  private closed(event: SeenEvent): void {
    const connection = this.byPoolId.get(event.connectionId)
    if (connection === undefined) {
      // A set-up that failed or timed out: it never became a connection the pool held.
      this.failedSetUps.add(event.connectionId)
      const tag = typeof event.error === "object" && event.error !== null && "_tag" in event.error ? event.error._tag : undefined
      this.cover(tag === "ConnectTimeoutError" ? "createTimeout.fired" : "setUp.failureReported")
      return
    }
    if (connection.closedByPool) {
      this.violation("scope.closedOnce", `the pool closed ${this.describe(connection)} twice (${connection.closeReason}, then ${event.reason})`)
    }
    connection.closedByPool = true
    connection.closeReason = event.reason
    connection.closedAt = this.tick()
    const actor = this.actor()
    if (actor?.requeueOn === connection && actor.requeuePending) {
      actor.requeuePending = false
      actor.requeueOn = undefined
      actor.waitingSince = this.tick()
    }
    this.cover(`closed.${event.reason}`)
    if (event.reason === "error" && !connection.checkFailed) {
      this.violation("close.healthyAsBroken", `the pool closed ${this.describe(connection)} as broken ("error") though every check of it passed`)
    }
    if (event.reason === "maxUses" && connection.deliveries !== this.limits.maxUses) {
      this.violation(
        "maxUses.exact",
        `the pool retired ${this.describe(connection)} for maxUses (${this.limits.maxUses}) after ${connection.deliveries} hand-out(s)`
      )
    }
    const holder = connection.claim
    if (holder !== undefined && holder.state !== "done") {
      const during = holder.state === "holding" || holder.state === "returning" ? "inUse" : "validation"
      if (event.reason === "stale") this.cover(`clear.interruptInUse.during.${during}`)
      if (event.reason === "poolClosed") this.cover(`drain.deadline.during.${during}`)
    }
  }

  // --- invariants ----------------------------------------------------------

  /** Everything that must hold whenever the world is quiet. */
  checkQuiet(stats: Pool.PoolStats, drain: Fiber.RuntimeFiber<unknown, unknown> | undefined): void {
    const { acquireTimeout, maxConnecting, maxSize } = this.limits
    for (const key of ["total", "idle", "inUse", "pending", "waiting"] as const) {
      if (stats[key] < 0) this.violation("counts.nonNegative", `stats.${key} is ${stats[key]}`)
    }
    if (this.connecting < 0 || this.open < 0) {
      this.violation("counts.nonNegative", `the factory counts ${this.open} open, ${this.connecting} connecting`)
    }
    if (stats.idle + stats.inUse + stats.pending !== stats.total) {
      this.violation("counts.sum", `idle ${stats.idle} + inUse ${stats.inUse} + pending ${stats.pending} != total ${stats.total}`)
    }
    if (stats.total > maxSize || stats.pending > maxConnecting) {
      this.violation("limits.pool", `stats say total ${stats.total}/${maxSize}, pending ${stats.pending}/${maxConnecting}`)
    }
    if (this.open !== stats.idle + stats.inUse) {
      this.violation("counts.factoryOpen", `the factory has ${this.open} open, the pool idle ${stats.idle} + inUse ${stats.inUse}`)
    }
    for (const connection of this.connections) {
      if (connection.finalizerRuns === 0 && (!connection.ready || connection.closedByPool)) {
        this.violation(
          "scope.leak",
          `${this.describe(connection)} is open but the pool ${connection.closedByPool ? "closed" : "never took"} it${connection.stray ? " (it landed after its createTimeout)" : ""}`
        )
      }
      if (connection.closedByPool && connection.finalizerRuns !== 1) {
        this.violation("scope.closedOnce", `${this.describe(connection)} was closed by the pool; its finalizer ran ${connection.finalizerRuns} times`)
      }
    }
    let waiting = 0
    for (const checkout of this.checkouts) {
      // Validated, but the connection was closed before the hand-out finished: a correct pool makes it wait again.
      const held = checkout.connection
      if (checkout.state === "validated" && held?.closedByPool === true) this.requeue(checkout, held, "nextQuiet")
      // The latest instant it can have started waiting again: later than the truth, so never a false alarm.
      if (checkout.requeuePending) {
        checkout.requeuePending = false
        checkout.requeueOn = undefined
        checkout.waitingSince = this.tick()
      }
      this.checkFifo(checkout)
      if (checkout.state === "done") continue
      if (checkout.interruptRequested && !checkout.inReset) {
        const validating = checkout.state === "validating" || checkout.state === "validated"
        this.violation(
          validating ? "interrupt.ignoredInValidation" : "interrupt.ignored",
          `checkout #${checkout.seq} was interrupted (while ${checkout.stateAtInterrupt}) and is still ${checkout.state}`
        )
      }
      if (checkout.state !== "waiting") continue
      waiting++
      if (this.world.now > checkout.startedAt + acquireTimeout) {
        this.violation(
          "acquireTimeout.honoured",
          `checkout #${checkout.seq} started at ${checkout.startedAt} ms still waits at ${this.world.now} ms (acquireTimeout ${acquireTimeout} ms)`
        )
      }
    }
    if (stats.waiting !== waiting && !stats.closed) {
      this.violation("counts.waiting", `stats.waiting is ${stats.waiting}, the test sees ${waiting} checkouts waiting`)
    }
    if (
      drain !== undefined && drain.unsafePoll() === null && stats.inUse === 0 && this.connecting === 0 &&
      this.checkouts.every((checkout) => !checkout.inReset)
    ) {
      this.violation("drain.prompt", "drain is still waiting though no connection is checked out and no set-up runs")
    }
  }

  /**
   * Strict FIFO: no younger checkout is served while an older one waits. Checks the waits that ended since
   * the last quiet moment, and the one still open, against every hand-out to a younger checkout.
   */
  private checkFifo(older: Checkout): void {
    const open = older.state === "waiting" && older.waitingSince !== undefined
    if (older.waitsChecked === older.waits.length && !open) return
    for (const younger of this.checkouts) {
      if (younger.seq <= older.seq || younger.serves.length === 0) continue
      for (const served of younger.serves) {
        for (let i = older.waitsChecked; i < older.waits.length; i++) {
          const [from, to] = older.waits[i]!
          if (from < served && served < to) {
            this.violation("fifo", `checkout #${younger.seq} was served while the older checkout #${older.seq} waited (and was served or gave up later)`)
          }
        }
        if (open && served > older.waitingSince!) {
          this.violation("fifo", `checkout #${younger.seq} was served while the older checkout #${older.seq} waited (and still waits)`)
        }
      }
    }
    older.waitsChecked = older.waits.length
  }

  /** Once the pool's scope has closed: nothing open, nothing set up, no waiter left. */
  checkClosed(stats: Pool.PoolStats): void {
    this.poolClosed = true
    // The drain can stop an interruptible set-up, and wait drainTimeout for one that ignores interruption;
    // only one that would outrun the drain deadline may be left to land (and be closed) after the scope closed.
    const deadline = (this.drainStartedAt ?? this.world.now) + this.limits.drainTimeout
    let outliving = 0
    for (const setUp of this.inFlight) {
      if (!setUp.interruptible && setUp.endsAt > deadline) {
        outliving++
        this.cover("close.setUpOutlivedDrain")
      } else {
        this.violation(
          "close.fibersLeft",
          `set-up #${setUp.attempt} (${setUp.interruptible ? "interruptible" : `uninterruptible, done at ${setUp.endsAt} ms`}) ` +
            `still runs after the pool's scope closed (drain deadline ${deadline} ms)`
        )
      }
    }
    if (this.open > 0) this.violation("scope.leak", `${this.open} connection(s) still open after the pool's scope closed`)
    if (
      stats.total !== outliving || stats.pending !== outliving || stats.idle !== 0 || stats.inUse !== 0 || stats.waiting !== 0 ||
      !stats.closed
    ) {
      this.violation("counts.sum", `after close, with ${outliving} set-up(s) outliving the drain, the stats say ${JSON.stringify(stats)}`)
    }
    for (const checkout of this.checkouts) {
      if (checkout.state === "waiting" || checkout.state === "validating" || checkout.state === "validated") {
        this.violation("close.checkoutLeft", `checkout #${checkout.seq} is still ${checkout.state} after the pool's scope closed`)
      }
    }
  }

  /** At the very end, after every holder let go: each connection closed exactly once, no fiber left. */
  checkEnd(): void {
    for (const connection of this.connections) {
      if (connection.finalizerRuns !== 1) {
        this.violation("scope.closedOnce", `${this.describe(connection)}: its finalizer ran ${connection.finalizerRuns} times`)
      }
    }
    for (const checkout of this.checkouts) {
      if (checkout.state !== "done") this.violation("close.fibersLeft", `checkout #${checkout.seq} never ended (${checkout.state})`)
    }
    const left = this.world.pending()
    if (left.tasks > 0 || left.sleepers > 0) {
      this.violation("close.fibersLeft", `${left.tasks} task(s) queued and ${left.sleepers} fiber(s) asleep after everything closed`)
    }
  }
}
