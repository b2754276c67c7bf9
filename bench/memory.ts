/**
 * Suite `memory`: heap per parked waiter. Every connection is held, then
 * 100,000 more checkouts park in the wait queue; the heap grown between the
 * two (after full collections), divided by the waiters, is what a waiter
 * costs. The same number of bare parked fibers (for the Effect pools) or
 * bare pending async functions (for the promise pools) is measured the same
 * way and subtracted, leaving the pool's own share. `interruptible-wait-floor`
 * is the least any Effect pool's waiter can cost: lifeguard is also reported
 * against it.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type { Contender, EffectContender, PromiseContender, Result, Suite } from "./measure.js"
import { interleaved, median, settledHeap } from "./measure.js"
import { pools } from "./contenders.js"

const maxSize = 10

/**
 * Parks forever without registering anything anywhere. The register function
 * takes exactly one parameter: with any other arity Effect hands it an
 * AbortSignal, and allocates an AbortController per fiber for it.
 */
const parked: Effect.Effect<void> = Effect.async<void>((_resume) => {})

/**
 * The cheapest wait Effect 3 allows that survives interruption, with no pool
 * around it: the checkout runs masked, the wait alone is restored to
 * interruptible, and a failure handler takes the slot back (or passes on what
 * it was handed as the interruption arrived). One `Effect.async` whose
 * register function (one parameter, so no AbortSignal) stores its resume
 * callback in a plain FIFO array. Any pool's waiter costs at least this.
 */
interface FloorSlot {
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  /** "waiting", "served" (handed a connection, maybe before it registered) or "gone" (interrupted). */
  state: "waiting" | "served" | "gone"
}

const interruptibleWaitFloor: EffectContender = {
  kind: "effect",
  name: "interruptible-wait-floor",
  setup: (size) =>
    Effect.sync(() => {
      let free = size
      const waiting: Array<FloorSlot> = []
      let head = 0
      const release = Effect.sync(() => {
        while (head < waiting.length) {
          const slot = waiting[head++]!
          if (slot.state === "gone") continue
          slot.state = "served"
          return slot.resume?.(Effect.void)
        }
        free++
      })
      const register = (slot: FloorSlot) => (resume: (effect: Effect.Effect<void>) => void) => {
        if (slot.state === "served") resume(Effect.void)
        else slot.resume = resume
      }
      return (work) =>
        Effect.uninterruptibleMask((restore) => {
          if (free > 0) {
            free--
            return Effect.ensuring(restore(work), release)
          }
          const slot: FloorSlot = { resume: undefined, state: "waiting" }
          waiting.push(slot)
          // Assigned, not written in an object literal: there, tsx's esbuild (keepNames) would wrap each
          // handler in a per-waiter naming call that lifeguard, measured as built, does not pay.
          const handlers: {
            onFailure: (cause: Cause.Cause<never>) => Effect.Effect<void>
            onSuccess: () => Effect.Effect<void>
          } = { onFailure: undefined!, onSuccess: undefined! }
          handlers.onFailure = (cause) => {
            const served = slot.state === "served"
            slot.state = "gone"
            return served ? Effect.zipRight(release, Effect.failCause(cause)) : Effect.failCause(cause)
          }
          handlers.onSuccess = () => Effect.ensuring(restore(work), release)
          return Effect.matchCauseEffect(restore(Effect.async<void>(register(slot))), handlers)
        })
    })
}

/** A fiber that waits on nothing in particular: the baseline for the Effect pools. */
const fiberBaseline: EffectContender = {
  kind: "effect",
  name: "fiber-baseline",
  setup: () => Effect.succeed(() => parked)
}

/**
 * A parked fiber inside `Effect.scoped` with one finalizer: what the scope of
 * a scoped checkout costs by itself, for reading the `-scoped` figures.
 */
const scopedFiberBaseline: EffectContender = {
  kind: "effect",
  name: "scoped-fiber-baseline",
  setup: () => {
    const inScope = Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.void), parked))
    return Effect.succeed(() => inScope)
  }
}

/**
 * An async function awaiting a promise nobody resolves yet: the baseline for
 * the promise pools. Like a full pool it serves the first `maxSize` at once,
 * and each release resolves the longest parked.
 */
const promiseBaseline: PromiseContender = {
  kind: "promise",
  name: "promise-baseline",
  setup: async (size) => {
    const parked: Array<() => void> = []
    let free = size
    let next = 0
    return {
      acquire: () => {
        if (free > 0) {
          free--
          return Promise.resolve()
        }
        return new Promise<void>((resolve) => void parked.push(resolve))
      },
      release: () => {
        if (next < parked.length) parked[next++]!()
        else free++
      },
      close: async () => {}
    }
  }
}

/** Bytes of heap per waiter, the waiter included. */
const bytesPerWaiter = (contender: Contender, waiters: number): Promise<number> =>
  contender.kind === "effect" ? effectWaiter(contender, waiters) : promiseWaiter(contender, waiters)

const effectWaiter = (contender: EffectContender, waiters: number): Promise<number> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const checkout = yield* contender.setup(maxSize)
    const hold = checkout(parked)
    const wait = checkout(Effect.void)
    let started = 0
    const mark = Effect.sync(() => started++)
    const holders: Array<Fiber.RuntimeFiber<void, unknown>> = []
    for (let i = 0; i < maxSize; i++) holders.push(yield* Effect.fork(Effect.zipRight(mark, hold)))
    while (started < maxSize) yield* Effect.sleep(1)
    yield* Effect.sleep(5)
    const before = settledHeap()
    const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = new Array(waiters)
    for (let i = 0; i < waiters; i++) fibers[i] = yield* Effect.fork(Effect.zipRight(mark, wait))
    while (started < maxSize + waiters) yield* Effect.sleep(1)
    yield* Effect.sleep(20)
    const after = settledHeap()
    yield* Fiber.interruptAll(fibers)
    yield* Fiber.interruptAll(holders)
    return (after - before) / waiters
  })))

const promiseWaiter = async (contender: PromiseContender, waiters: number): Promise<number> => {
  const pool = await contender.setup(maxSize)
  const held = await Promise.all(Array.from({ length: maxSize }, () => pool.acquire()))
  const before = settledHeap()
  const pending: Array<Promise<void>> = new Array(waiters)
  for (let i = 0; i < waiters; i++) {
    pending[i] = (async () => {
      pool.release(await pool.acquire())
    })()
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
  const after = settledHeap()
  for (const item of held) pool.release(item)
  await Promise.all(pending)
  await pool.close()
  return (after - before) / waiters
}

export const memory: Suite = {
  name: "memory",
  reference: "effect-pool",
  run: async ({ quick, log }) => {
    const waiters = quick ? 10_000 : 100_000
    const contenders: ReadonlyArray<Contender> = [...pools, interruptibleWaitFloor, fiberBaseline, scopedFiberBaseline, promiseBaseline]
    // A warm-up round with a tenth of the waiters (JIT, first-use allocations),
    // then one pass: a heap delta over 100,000 waiters hardly varies.
    const samples = await interleaved(1, contenders, async (contender, warmUp) => {
      const bytes = await bytesPerWaiter(contender, warmUp ? waiters / 10 : waiters)
      if (!warmUp) log(`memory ${contender.name}: ${Math.round(bytes)} bytes per waiter`)
      return bytes
    })
    const total = (name: string) => median(samples[contenders.findIndex((c) => c.name === name)]!)
    const results: Array<Result> = contenders.map((contender, i) => {
      const all = median(samples[i]!)
      const base = contender.kind === "effect" ? total("fiber-baseline") : total("promise-baseline")
      const baseline = contender.name === "fiber-baseline" || contender.name === "promise-baseline"
      return {
        suite: "memory",
        config: `waiters${waiters}`,
        contender: contender.name,
        opsPerSec: null,
        ...(baseline ? {} : { bytesPerWaiter: all - base }),
        totalBytesPerWaiter: all,
        samples: samples[i]!
      }
    })
    const ref = results.find((r) => r.contender === "effect-pool")?.bytesPerWaiter
    for (const r of results) {
      if (r.bytesPerWaiter !== undefined && ref !== undefined && ref > 0) r.ratio = r.bytesPerWaiter / ref
    }
    return results
  }
}
