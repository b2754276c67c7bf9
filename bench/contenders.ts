/**
 * The in-memory contenders: lifeguard both ways of checking out, effect's own
 * `Pool`, tarn and generic-pool, and three ceilings that show what Effect
 * itself costs: around a plain array of objects, and for a bare hand-off.
 *
 * Every pool hands out plain objects that cost nothing to make, and is filled
 * to `maxSize` before a measurement starts, so only checkout and return are
 * timed. tarn and generic-pool run in plain async loops over their promise
 * APIs, their native habitat and their best case.
 */
import * as Effect from "effect/Effect"
import * as EffectPool from "effect/Pool"
import type * as Scope from "effect/Scope"
import genericPool from "generic-pool"
import { Pool as TarnPool } from "tarn"
import { Pool } from "lifeguard"
import type { EffectContender, PromiseContender } from "./measure.js"
import { range } from "./measure.js"

interface Item {
  readonly id: number
}

let nextId = 0
const makeItem = (): Item => ({ id: nextId++ })

/** Checks out `n` at once and returns them, so the pool holds `n` idle connections. */
const fill = <A, E>(get: Effect.Effect<A, E, Scope.Scope>, n: number) =>
  Effect.scoped(Effect.forEach(range(n), () => get, { concurrency: "unbounded", discard: true }))

/** `pool.use`: the checkout without a `Scope`. */
export const lifeguard: EffectContender = {
  kind: "effect",
  name: "lifeguard",
  setup: (maxSize) =>
    Effect.gen(function*() {
      const pool = yield* Pool.make({ acquire: Effect.sync(makeItem), maxSize })
      yield* fill(pool.get, maxSize)
      return (work) => pool.use(() => work)
    })
}

/** `Effect.scoped(pool.get)`: the checkout as a scoped resource. */
export const lifeguardScoped: EffectContender = {
  kind: "effect",
  name: "lifeguard-scoped",
  setup: (maxSize) =>
    Effect.gen(function*() {
      const pool = yield* Pool.make({ acquire: Effect.sync(makeItem), maxSize })
      yield* fill(pool.get, maxSize)
      return (work) => Effect.scoped(Effect.flatMap(pool.get, () => work))
    })
}

/** effect's `Pool` (fixed size), checked out the only way it offers. */
export const effectPool: EffectContender = {
  kind: "effect",
  name: "effect-pool",
  setup: (maxSize) =>
    Effect.gen(function*() {
      const pool = yield* EffectPool.make({ acquire: Effect.sync(makeItem), size: maxSize })
      yield* fill(pool.get, maxSize)
      return (work) => Effect.scoped(Effect.flatMap(pool.get, () => work))
    })
}

/**
 * No pool at all: `Effect.scoped(Effect.acquireRelease(...))` popping and
 * pushing a plain array. What any scoped checkout costs at least; valid only
 * while workers do not outnumber the objects.
 */
export const scopedCeiling: EffectContender = {
  kind: "effect",
  name: "scoped-ceiling",
  setup: (maxSize) =>
    Effect.sync(() => {
      const items = range(maxSize).map(makeItem)
      const take = Effect.sync(() => items.pop()!)
      const put = (item: Item) => Effect.sync(() => void items.push(item))
      const get = Effect.acquireRelease(take, put)
      return (work) => Effect.scoped(Effect.flatMap(get, () => work))
    })
}

/** Like {@link scopedCeiling} with `Effect.acquireUseRelease`: the ceiling for `pool.use`. */
export const useCeiling: EffectContender = {
  kind: "effect",
  name: "use-ceiling",
  setup: (maxSize) =>
    Effect.sync(() => {
      const items = range(maxSize).map(makeItem)
      const take = Effect.sync(() => items.pop()!)
      const put = (item: Item) => Effect.sync(() => void items.push(item))
      return (work) => Effect.acquireUseRelease(take, () => work, put)
    })
}

/**
 * The least a fair hand-off can cost in Effect: idle objects in an array,
 * parked fibers' resume callbacks in a FIFO array, the returning fiber handing
 * its object straight to the oldest. No deadlines, no events, no metrics, and
 * no care for a caller interrupted while it waits: a floor, not a pool.
 */
export const handoffCeiling: EffectContender = {
  kind: "effect",
  name: "handoff-ceiling",
  setup: (maxSize) =>
    Effect.sync(() => {
      const handOff = makeHandOff(range(maxSize).map(makeItem))
      return (work) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(handOff.take), (item) => Effect.ensuring(restore(work), Effect.sync(() => handOff.give(item))))
        )
    })
}

/** The hand-off of {@link handoffCeiling}, for any kind of object. */
export const makeHandOff = <A>(idle: Array<A>) => {
  const parked: Array<((effect: Effect.Effect<A>) => void) | undefined> = []
  let head = 0
  const take = Effect.async<A>((resume) => {
    if (head === parked.length && idle.length > 0) resume(Effect.succeed(idle.pop()!))
    else parked.push(resume)
  })
  const give = (item: A) => {
    if (head === parked.length) {
      idle.push(item)
      return
    }
    const resume = parked[head]!
    parked[head++] = undefined
    if (head === parked.length) {
      parked.length = 0
      head = 0
    }
    resume(Effect.succeed(item))
  }
  return { take, give }
}

export const tarn: PromiseContender = {
  kind: "promise",
  name: "tarn",
  setup: async (maxSize) => {
    const pool = new TarnPool<Item>({
      create: () => Promise.resolve(makeItem()),
      destroy: () => {},
      min: 0,
      max: maxSize
    })
    const held = await Promise.all(range(maxSize).map(() => pool.acquire().promise))
    for (const item of held) pool.release(item)
    return {
      acquire: () => pool.acquire().promise,
      release: (item) => void pool.release(item as Item),
      close: () => pool.destroy().then(() => {})
    }
  }
}

export const genericPoolContender: PromiseContender = {
  kind: "promise",
  name: "generic-pool",
  setup: async (maxSize) => {
    const pool = genericPool.createPool<Item>({
      create: () => Promise.resolve(makeItem()),
      destroy: () => Promise.resolve()
    }, { min: 0, max: maxSize })
    const held = await Promise.all(range(maxSize).map(() => pool.acquire()))
    for (const item of held) void pool.release(item)
    return {
      acquire: () => pool.acquire(),
      release: (item) => void pool.release(item as Item),
      close: async () => {
        await pool.drain()
        await pool.clear()
      }
    }
  }
}

/** The pools, in the order tables list them. */
export const pools = [lifeguard, lifeguardScoped, effectPool, tarn, genericPoolContender] as const
