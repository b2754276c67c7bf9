/**
 * The pool's invariants under random schedules (issue 11, "Interruption at scale").
 *
 * Each schedule is random pool settings and up to 40 random steps: checkouts
 * (`get`, `use` and direct calls, held for a while or until returned, or stuck), returns,
 * interrupts at random instants (a random number of scheduler tasks into a
 * step, so also at the instant a connection is handed to a waiter), clock
 * moves that fire acquireTimeout, createTimeout and checkTimeout, invalidations,
 * broken connections, failing and slow validations and resets, failing and
 * slow set-ups (interruptible or not, so some keep running after their
 * createTimeout), clears with and without interruptInUse, and drains with
 * holders that never return (so the drain deadline fires). After every step,
 * and after the pool's scope closes, `Model` checks every invariant.
 *
 * The schedules run on `VirtualWorld` (test/utils/virtualClock.ts), not under
 * TestClock: TestClock's wake-ups poll the live event loop until every fiber
 * is suspended, milliseconds each, too slow for 10,000 schedules. The
 * virtual world knows when it is quiet without polling and is deterministic.
 *
 * A failing schedule is reported by fast-check with its seed and path, the
 * shrunk schedule and the violations. Replay it with
 *   LIFEGUARD_PROP_SEED=<seed> LIFEGUARD_PROP_PATH=<path> npx vitest run test/Pool.property.test.ts
 * (fast-check's `seed` and `path` options of `fc.assert`); LIFEGUARD_PROP_RUNS
 * sets the number of schedules (default 10,000).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Schedule, Scope } from "effect"
import type { Fiber } from "effect"
import * as fc from "fast-check"
import { Pool, type PoolConfig } from "../src/index.js"
import {
  type CheckPlan,
  type Checkout,
  type Connection,
  type Invariant,
  Model,
  type SetUpError,
  type SetUpPlan
} from "./utils/model.js"
import { HangError, VirtualWorld } from "./utils/virtualClock.js"

const runs = Number(process.env.LIFEGUARD_PROP_RUNS ?? 10_000)
const seed = process.env.LIFEGUARD_PROP_SEED === undefined ? undefined : Number(process.env.LIFEGUARD_PROP_SEED)
const path = process.env.LIFEGUARD_PROP_PATH
const replaying = seed !== undefined || path !== undefined || runs < 10_000

/**
 * Races of issue 11 not fixed in this branch's src/, with the invariants each
 * breaks. A schedule that breaks one of those invariants stops there and is
 * recorded rather than failed (what follows a broken invariant is noise), and
 * the last test asserts each race still reproduces, so an entry cannot
 * outlive its fix. LIFEGUARD_PROP_KNOWN (invariant names, comma separated,
 * may be empty) replaces the list: LIFEGUARD_PROP_KNOWN= npx vitest run ...
 * shows every violation.
 */
const knownRaces: ReadonlyArray<{
  readonly race: string
  readonly breaks: ReadonlyArray<Invariant>
  /** Reached about once in 10,000 schedules: not required to reproduce on every run; `replay` shows it. */
  readonly rare?: { readonly replay: string }
}> = []
const knownOpen: ReadonlyArray<Invariant> = process.env.LIFEGUARD_PROP_KNOWN === undefined
  ? knownRaces.flatMap((known) => known.breaks)
  : process.env.LIFEGUARD_PROP_KNOWN.split(",").filter((name) => name.length > 0) as Array<Invariant>

/** Paths every run must reach, at least this often across all schedules. */
const minimumPerPath = 20
const requiredPaths = [
  "served.get",
  "served.use",
  "served.direct",
  "direct.startedByCaller",
  "direct.startedAtHandOff",
  "direct.dirtyOutcome",
  "direct.cancelled",
  "direct.cancelGaveUp",
  "interrupted.waiting",
  "interrupted.validating",
  "interrupted.holding",
  "handOff.toInterruptedWaiter",
  "failed.PoolTimeoutError",
  "failed.PoolClearedError",
  "failed.PoolClosedError",
  "failed.setUpGaveUp",
  "validation.failed",
  "validation.timedOut",
  "validation.interruptedByCaller",
  "validation.failedForTwoWaiters",
  "validation.requeuedThenServed",
  "reset.failed",
  "reset.timedOut",
  "setUp.failed",
  "setUp.interrupted",
  "setUp.uninterruptible",
  "createTimeout.fired",
  "createTimeout.strayLanded",
  "invalidate.idle",
  "invalidate.inUse",
  "closed.invalidated",
  "closed.maxUses",
  "closed.stale",
  "closed.error",
  "clear.plain",
  "clear.interruptInUse",
  "clear.interruptInUse.during.inUse",
  "clear.interruptInUse.during.validation",
  "drain.started",
  "drain.deadline.during.inUse",
  "drain.deadline.during.validation",
  "close.setUpOutlivedDrain"
] as const

// --- schedules -------------------------------------------------------------

const settingsArbitrary = fc.record({
  maxSize: fc.integer({ min: 1, max: 4 }),
  maxConnecting: fc.integer({ min: 1, max: 3 }),
  minIdle: fc.constantFrom(0, 0, 1),
  acquireTimeout: fc.constantFrom(15, 40, 100, 200),
  createTimeout: fc.constantFrom(10, 30),
  checkTimeout: fc.constantFrom(8, 20, 80, 80),
  /** Validate every checkout, only after 5 ms idle, or never. */
  validate: fc.constantFrom("always" as const, "always" as const, "afterIdle" as const, "never" as const),
  reset: fc.boolean(),
  maxUses: fc.constantFrom(1, 2, 3, Number.POSITIVE_INFINITY),
  retries: fc.constantFrom("forever" as const, 0, 2),
  drainTimeout: fc.constantFrom(10, 20, 60),
  reuse: fc.constantFrom("lifo" as const, "fifo" as const),
  setUpDelay: fc.constantFrom(0, 1, 5),
  interruptibleSetUps: fc.boolean()
})
type Settings = typeof settingsArbitrary extends fc.Arbitrary<infer S> ? S : never

const hold = fc.oneof(
  { weight: 2, arbitrary: fc.constant("forever" as const) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 25 }) }
)

const actionArbitrary = fc.oneof(
  { weight: 6, arbitrary: fc.record({ _tag: fc.constantFrom("Get" as const, "Use" as const, "Direct" as const), hold }) },
  /** Several checkouts at one instant: waiters that validate, fail and queue again side by side. */
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("Burst" as const), count: fc.integer({ min: 2, max: 4 }), hold }) },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("Return" as const), pick: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ _tag: fc.constant("Advance" as const), ms: fc.constantFrom(0, 1, 2, 5, 10, 25, 60) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Invalidate" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Break" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constant("SetUps" as const),
      count: fc.integer({ min: 1, max: 3 }),
      delay: fc.constantFrom(0, 3, 15, 50, 120),
      fail: fc.boolean(),
      interruptible: fc.boolean()
    })
  },
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("Checks" as const),
      count: fc.integer({ min: 1, max: 4 }),
      delay: fc.constantFrom(0, 2, 6, 30, 30, 50),
      result: fc.constantFrom("healthy" as const, "broken" as const, "fail" as const, "die" as const)
    })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("Clear" as const), interruptInUse: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Drain" as const) }) }
)
type Action = typeof actionArbitrary extends fc.Arbitrary<infer A> ? A : never

/** Whom to interrupt, and how many scheduler tasks into the step. */
const interruptArbitrary = fc.record({
  target: fc.constantFrom("any" as const, "oldestWaiter" as const, "oldestWaiter" as const, "validating" as const, "newest" as const),
  pick: fc.nat(),
  // A hand-off reaches its waiter one or two tasks into a step: small counts hit that instant often.
  afterTasks: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 4, max: 12 }) })
})
type Interrupt = typeof interruptArbitrary extends fc.Arbitrary<infer I> ? I : never

const stepArbitrary = fc.record({
  action: actionArbitrary,
  interrupt: fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: interruptArbitrary }
  )
})
type Step = typeof stepArbitrary extends fc.Arbitrary<infer S> ? S : never

interface Plan {
  readonly settings: Settings
  /** Seeds the pool's `Random` (jitter). */
  readonly seed: number
  readonly steps: ReadonlyArray<Step>
}

const describeAction = (action: Action): string => {
  switch (action._tag) {
    case "Get":
    case "Use":
    case "Direct":
      return `${action._tag.toLowerCase()}, hold ${action.hold === "forever" ? "until returned" : `${action.hold} ms`}`
    case "Burst":
      return `${action.count} gets at once, hold ${action.hold === "forever" ? "until returned" : `${action.hold} ms`}`
    case "Return":
    case "Invalidate":
    case "Break":
      return `${action._tag.toLowerCase()} #${action.pick}`
    case "Advance":
      return `advance ${action.ms} ms`
    case "SetUps":
      return `next ${action.count} set-up(s): ${action.delay} ms, ${action.fail ? "fail" : "succeed"}, ${action.interruptible ? "interruptible" : "uninterruptible"}`
    case "Checks":
      return `next ${action.count} check(s): ${action.delay} ms, ${action.result}`
    case "Clear":
      return `clear${action.interruptInUse ? " with interruptInUse" : ""}`
    case "Drain":
      return "drain"
  }
}

const describePlan = (plan: Plan): string =>
  [
    `settings ${JSON.stringify(plan.settings)}, random seed ${plan.seed}`,
    ...plan.steps.map((step, index) =>
      `  ${index + 1}. ${describeAction(step.action)}` +
      (step.interrupt === undefined
        ? ""
        : `; interrupt ${step.interrupt.target} (#${step.interrupt.pick}) after ${step.interrupt.afterTasks} task(s)`)
    )
  ].join("\n")

const planArbitrary: fc.Arbitrary<Plan> = fc.record({
  settings: settingsArbitrary,
  seed: fc.integer(),
  steps: fc.array(stepArbitrary, { minLength: 1, maxLength: 40 })
}).map((plan) => Object.assign(plan, { [fc.toStringMethod]: () => describePlan(plan) }))

// --- running one schedule --------------------------------------------------

const pick = <A>(items: ReadonlyArray<A>, index: number): A | undefined =>
  items.length === 0 ? undefined : items[index % items.length]

const interruptTarget = (model: Model, interrupt: Interrupt): Checkout | undefined => {
  const live = model.live()
  switch (interrupt.target) {
    case "any":
      return pick(live, interrupt.pick)
    case "oldestWaiter":
      return live.find((checkout) => checkout.state === "waiting")
    case "validating":
      return pick(live.filter((checkout) => checkout.state === "validating"), interrupt.pick)
    case "newest":
      return live.at(-1)
  }
}

const makeOptions = (settings: Settings, model: Model): PoolConfig.Options<Connection, SetUpError, never> => ({
  acquire: model.acquire,
  onEvent: model.onEvent,
  maxSize: settings.maxSize,
  maxConnecting: settings.maxConnecting,
  minIdle: Math.min(settings.minIdle, settings.maxSize),
  acquireTimeout: settings.acquireTimeout,
  createTimeout: settings.createTimeout,
  checkTimeout: settings.checkTimeout,
  maxUses: settings.maxUses,
  drainTimeout: settings.drainTimeout,
  reuse: settings.reuse,
  retrySchedule: settings.retries === "forever"
    ? Schedule.spaced("2 millis")
    : Schedule.intersect(Schedule.spaced("2 millis"), Schedule.recurs(settings.retries)),
  ...(settings.validate === "never"
    ? {}
    : { validate: model.validate, validateAfterIdle: settings.validate === "always" ? 0 : 5 }),
  ...(settings.reset ? { reset: model.reset } : {})
})

/** Moves time to each next wake-up until `done`, or until nothing is due before `limit`. */
const runUntil = (world: VirtualWorld, done: () => boolean, limit: number): boolean => {
  world.settle()
  while (!done()) {
    const next = world.nextWakeUp()
    if (next === undefined || next > limit) return false
    world.advance(next - world.now)
  }
  return true
}

const runPlan = (plan: Plan): Model => {
  const { settings } = plan
  const world = new VirtualWorld(plan.seed)
  const defaultSetUp: SetUpPlan = { delay: settings.setUpDelay, fail: false, interruptible: settings.interruptibleSetUps }
  const model = new Model(world, {
    maxSize: settings.maxSize,
    maxConnecting: settings.maxConnecting,
    maxUses: settings.maxUses,
    acquireTimeout: settings.acquireTimeout,
    checkTimeout: settings.checkTimeout,
    drainTimeout: settings.drainTimeout,
    retriesForever: settings.retries === "forever"
  }, defaultSetUp)
  const scope = Effect.runSync(Scope.make())
  const made = world.fork(Scope.extend(Pool.make(makeOptions(settings, model)), scope))
  world.settle()
  const exit = made.unsafePoll()
  if (exit === null || Exit.isFailure(exit)) throw new Error(`Pool.make failed: ${String(exit)}`)
  const pool = exit.value
  const stats = () => Effect.runSync(pool.stats)
  let drain: Fiber.RuntimeFiber<void> | undefined

  const perform = (action: Action): void => {
    switch (action._tag) {
      case "Get":
      case "Use":
      case "Direct":
        model.checkout(pool, action._tag === "Get" ? "get" : action._tag === "Use" ? "use" : "direct", action.hold)
        return
      case "Burst":
        for (let i = 0; i < action.count; i++) model.checkout(pool, (["get", "use", "direct"] as const)[i % 3]!, action.hold)
        return
      case "Return": {
        const holder = pick(model.live().filter((checkout) => checkout.state === "holding"), action.pick)
        if (holder !== undefined) Deferred.unsafeDone(holder.release, Exit.void)
        return
      }
      case "Advance":
        world.advance(action.ms)
        return
      case "Invalidate": {
        const connection = pick(model.connections.filter((c) => c.finalizerRuns === 0 && !c.closedByPool), action.pick)
        if (connection === undefined) return
        model.cover(connection.claim === undefined ? "invalidate.idle" : "invalidate.inUse")
        world.fork(pool.invalidate(connection))
        return
      }
      case "Break": {
        const connection = pick(model.connections.filter((c) => c.finalizerRuns === 0), action.pick)
        if (connection !== undefined) connection.broken = true
        return
      }
      case "SetUps":
        model.setUpPlans = Array.from({ length: action.count }, (): SetUpPlan => action)
        return
      case "Checks":
        model.checkPlans = Array.from({ length: action.count }, (): CheckPlan => action)
        return
      case "Clear":
        world.fork(pool.clear({ interruptInUse: action.interruptInUse }))
        return
      case "Drain":
        if (drain === undefined) {
          model.cover("drain.started")
          model.drainStartedAt = world.now
          drain = world.fork(pool.drain)
        }
        return
    }
  }

  try {
    for (const [index, step] of plan.steps.entries()) {
      model.step = index + 1
      const interrupt = step.interrupt
      if (interrupt !== undefined) {
        world.after(interrupt.afterTasks, () => {
          const target = interruptTarget(model, interrupt)
          if (target !== undefined) model.interrupt(target)
        })
      }
      perform(step.action)
      world.settle()
      model.checkQuiet(stats(), drain)
      if (model.violations.length > 0) return model
    }

    // Close the pool's scope with the stuck holders still holding: the drain deadline must fire.
    model.step = plan.steps.length + 1
    const bound = world.now + settings.drainTimeout + 120 + 10 * settings.checkTimeout + 1_000
    model.drainStartedAt ??= world.now
    const closing = world.fork(Scope.close(scope, Exit.void))
    if (!runUntil(world, () => closing.unsafePoll() !== null, bound)) {
      model.violation("hang", `closing the pool's scope had not finished by ${world.now} ms`)
      return model
    }
    model.checkClosed(stats())
    for (const checkout of model.live()) Deferred.unsafeDone(checkout.release, Exit.void)
    runUntil(world, () => model.live().length === 0 && world.pending().sleepers === 0, bound + 1_000)
    model.checkEnd()
  } catch (error) {
    if (!(error instanceof HangError)) throw error
    model.violation("hang", error.message)
  }
  return model
}

// --- the properties --------------------------------------------------------

const coverage = new Map<string, number>()
const knownHits = new Map<Invariant, { count: number; example: string }>()
let schedulesRun = 0

const report = (model: Model): string =>
  model.violations.map((v) => `  [${v.invariant}] step ${v.step} at ${v.time} ms: ${v.message}`).join("\n")

describe("the pool under 10,000 random schedules", () => {
  it("keeps every invariant, whatever is interrupted, times out, fails or is cleared", async () => {
    const started = Date.now()
    await fc.assert(
      fc.asyncProperty(planArbitrary, async (plan) => {
        // The schedules run synchronously: let the worker answer vitest now and then.
        if (++schedulesRun % 200 === 0) await new Promise((resume) => setImmediate(resume))
        const model = runPlan(plan)
        for (const [path, count] of model.coverage) coverage.set(path, (coverage.get(path) ?? 0) + count)
        const unknown = model.violations.filter((v) => !knownOpen.includes(v.invariant))
        if (unknown.length > 0) {
          throw new Error(`${unknown.length} invariant violation(s):\n${report(model)}\nschedule:\n${describePlan(plan)}`)
        }
        for (const violation of model.violations) {
          const hit = knownHits.get(violation.invariant)
          if (hit === undefined) knownHits.set(violation.invariant, { count: 1, example: `${report(model)}\n${describePlan(plan)}` })
          else hit.count++
        }
      }),
      {
        numRuns: runs,
        ...(seed === undefined ? {} : { seed }),
        ...(path === undefined ? {} : { path, endOnFailure: true })
      }
    )
    const seconds = (Date.now() - started) / 1000
    console.log(`${schedulesRun} schedules in ${seconds.toFixed(1)} s; paths reached:\n` +
      [...coverage].sort(([a], [b]) => a.localeCompare(b)).map(([p, n]) => `  ${p}: ${n}`).join("\n"))
  }, 600_000)

  it.skipIf(replaying)(`reaches every path at least ${minimumPerPath} times`, () => {
    const missed = requiredPaths.filter((p) => (coverage.get(p) ?? 0) < minimumPerPath)
    expect(missed.map((p) => `${p}: ${coverage.get(p) ?? 0}`)).toStrictEqual([])
  })

  it.skipIf(replaying || process.env.LIFEGUARD_PROP_KNOWN !== undefined)(
    "the known open races still reproduce (remove a race from knownRaces once its fix lands)",
    () => {
      for (const [invariant, hit] of knownHits) console.log(`known open ${invariant}: ${hit.count} schedule(s), e.g.\n${hit.example}`)
      const gone = knownRaces.filter((known) =>
        known.rare === undefined && !known.breaks.some((invariant) => knownHits.has(invariant))
      )
      expect(gone.map((known) => known.race)).toStrictEqual([])
    }
  )
})
