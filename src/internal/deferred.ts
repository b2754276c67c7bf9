/**
 * Deferreds for the wait queue, made and awaited cheaply.
 *
 * Effect 3's `Deferred.unsafeMake` spreads the whole `CommitPrototype` into
 * every instance, so each one is a large dictionary-mode object: under
 * contention, when every checkout parks a waiter, making and collecting them
 * took most of the pool's time (2.5-3x throughput at 100 workers over 10
 * connections). These are the same objects with the shared members on a
 * prototype: two own fields, `state` and `blockingOn`. They are genuine
 * Deferreds (`Deferred.await`, `unsafeDone`, `poll`, `interrupt` take them).
 *
 * `Deferred.await` wraps its registration in `suspend`, `async` and an
 * `onInterrupt` (a mask, a match and their closures): about a kilobyte per
 * parked waiter. {@link await_} registers the waiter's resume callback
 * directly (in an array of one, not a pushed-onto empty one); the pool's own interruption handling (`abandon`) takes the place
 * of the canceler, and a completion that arrives after an interruption is
 * ignored by the fiber (its callback is one-shot).
 *
 * If Effect ever lays Deferreds out differently, `knowsLayout` sees it and
 * both fall back to Effect's own functions (`fallback`, tested with the pool
 * in test/internal/deferred.test.ts).
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as MutableRef from "effect/MutableRef"

type State =
  | { readonly _tag: "Pending"; joiners: Array<(effect: Effect.Effect<unknown, unknown>) => void> }
  | { readonly _tag: "Done"; readonly effect: Effect.Effect<unknown, unknown> }

interface Layout {
  readonly state: MutableRef.MutableRef<State>
  readonly blockingOn: unknown
}

/**
 * True when Deferreds made by this Effect are laid out as this module
 * expects: a pending one (`template`) and a completed one (`completed`)
 * checked field by field.
 *
 * @internal
 */
export const knowsLayout = (template: unknown, completed: unknown): boolean => {
  const fields = (value: unknown) => typeof value === "object" && value !== null ? Object.keys(value) : []
  if (!fields(template).includes("state") || !fields(template).includes("blockingOn")) return false
  const stateOf = (deferred: unknown) => {
    const ref = (deferred as Partial<Layout>).state
    return typeof ref === "object" && ref !== null && "current" in ref
      ? MutableRef.get(ref) as { readonly _tag?: unknown; readonly joiners?: unknown; readonly effect?: unknown }
      : undefined
  }
  const pending = stateOf(template)
  const done = stateOf(completed)
  return pending?._tag === "Pending" && Array.isArray(pending.joiners) &&
    done?._tag === "Done" && Effect.isEffect(done.effect)
}

/** How the wait queue makes and awaits its Deferreds. @internal */
export interface Implementation {
  readonly make: <A, E = never>() => Deferred.Deferred<A, E>
  /** Waits for the deferred; the caller handles its own interruption. */
  readonly await_: <A, E>(deferred: Deferred.Deferred<A, E>) => Effect.Effect<A, E>
  /** False: Effect's own functions, because the layout is not the one this module knows. */
  readonly isFast: boolean
}

/** Effect's own functions, for a layout this module does not know. @internal */
export const fallback: Implementation = {
  make: <A, E = never>() => Deferred.unsafeMake<A, E>(FiberId.none),
  await_: Deferred.await,
  isFast: false
}

const fast = (template: Layout): Implementation => {
  const pending = MutableRef.get(template.state)
  const { blockingOn: _blockingOn, state: _state, ...shared } = Object.getOwnPropertyDescriptors(template)
  const prototype = Object.create(Object.prototype, shared) as object
  return {
    make: <A, E = never>() => {
      const deferred = Object.create(prototype) as { state: unknown; blockingOn: FiberId.FiberId }
      deferred.state = MutableRef.make({ ...pending, joiners: [] })
      deferred.blockingOn = FiberId.none
      return deferred as unknown as Deferred.Deferred<A, E>
    },
    await_: <A, E>(deferred: Deferred.Deferred<A, E>) =>
      Effect.async<A, E>((resume) => {
        const state = MutableRef.get((deferred as unknown as Layout).state)
        if (state._tag === "Done") resume(state.effect as Effect.Effect<A, E>)
        // A first joiner gets an array of its exact size: a push onto an empty one reserves 17 slots.
        else if (state.joiners.length === 0) state.joiners = [resume as (effect: Effect.Effect<unknown, unknown>) => void]
        else state.joiners.push(resume as (effect: Effect.Effect<unknown, unknown>) => void)
      }),
    isFast: true
  }
}

const template = Deferred.unsafeMake<unknown, unknown>(FiberId.none)
const completed = Deferred.unsafeMake<number>(FiberId.none)
Deferred.unsafeDone(completed, Exit.succeed(1))
const chosen = knowsLayout(template, completed) ? fast(template as unknown as Layout) : fallback

/** @internal */
export const make = chosen.make

/** @internal */
export const await_ = chosen.await_

/** @internal */
export const isFast = chosen.isFast
