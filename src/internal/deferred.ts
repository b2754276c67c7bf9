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
 * directly; the pool's own interruption handling (`abandon`) takes the place
 * of the canceler, and a completion that arrives after an interruption is
 * ignored by the fiber (its callback is one-shot).
 *
 * If Effect ever lays Deferreds out differently, the check below sees it and
 * both fall back to Effect's own functions.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as MutableRef from "effect/MutableRef"

type State =
  | { readonly _tag: "Pending"; readonly joiners: Array<(effect: Effect.Effect<unknown, unknown>) => void> }
  | { readonly _tag: "Done"; readonly effect: Effect.Effect<unknown, unknown> }

interface Layout {
  readonly state: MutableRef.MutableRef<State>
  readonly blockingOn: unknown
}

const template = Deferred.unsafeMake<unknown, unknown>(FiberId.none) as unknown as Layout
const pending = MutableRef.get(template.state) as { readonly _tag: string; readonly joiners?: unknown }
const { blockingOn: _blockingOn, state: _state, ...shared } = Object.getOwnPropertyDescriptors(template)
const prototype = Object.create(Object.prototype, shared) as object

const completed = Deferred.unsafeMake<number>(FiberId.none)
Deferred.unsafeDone(completed, Exit.succeed(1))
const done = MutableRef.get((completed as unknown as Layout).state)

const layoutIsKnown = pending._tag === "Pending" && Array.isArray(pending.joiners) &&
  done._tag === "Done" && Effect.isEffect(done.effect) &&
  Object.keys(template).includes("state") && Object.keys(template).includes("blockingOn")

/** @internal */
export const make: <A, E = never>() => Deferred.Deferred<A, E> = layoutIsKnown
  ? <A, E = never>() => {
    const deferred = Object.create(prototype) as { state: unknown; blockingOn: FiberId.FiberId }
    deferred.state = MutableRef.make({ ...pending, joiners: [] })
    deferred.blockingOn = FiberId.none
    return deferred as unknown as Deferred.Deferred<A, E>
  }
  : <A, E = never>() => Deferred.unsafeMake<A, E>(FiberId.none)

/** Waits for the deferred; the caller handles its own interruption. @internal */
export const await_: <A, E>(deferred: Deferred.Deferred<A, E>) => Effect.Effect<A, E> = layoutIsKnown
  ? <A, E>(deferred: Deferred.Deferred<A, E>) =>
    Effect.async<A, E>((resume) => {
      const state = MutableRef.get((deferred as unknown as Layout).state)
      if (state._tag === "Done") resume(state.effect as Effect.Effect<A, E>)
      else state.joiners.push(resume as (effect: Effect.Effect<unknown, unknown>) => void)
    })
  : Deferred.await

/** @internal */
export const isFast = layoutIsKnown
