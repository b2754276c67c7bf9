/**
 * Deferreds for the wait queue, made cheaply.
 *
 * Effect 3's `Deferred.unsafeMake` spreads the whole `CommitPrototype` into
 * every instance, so each one is a large dictionary-mode object: under
 * contention, when every checkout parks a waiter, making and collecting them
 * took most of the pool's time (2.5-3x throughput at 100 workers over 10
 * connections). These are the same objects with the shared members on a
 * prototype: two own fields, `state` and `blockingOn`. They are genuine
 * Deferreds (`Deferred.await`, `unsafeDone`, `poll`, `interrupt` take them);
 * if Effect ever lays Deferreds out differently, the check below sees it and
 * `make` falls back to `Deferred.unsafeMake`.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as FiberId from "effect/FiberId"
import * as MutableRef from "effect/MutableRef"

interface Layout {
  readonly state: MutableRef.MutableRef<{ readonly _tag: string; readonly joiners?: unknown }>
  readonly blockingOn: unknown
}

const template = Deferred.unsafeMake<unknown, unknown>(FiberId.none) as unknown as Layout
const pending = MutableRef.get(template.state)
const { blockingOn: _blockingOn, state: _state, ...shared } = Object.getOwnPropertyDescriptors(template)
const prototype = Object.create(Object.prototype, shared) as object

const layoutIsKnown = pending._tag === "Pending" && Array.isArray(pending.joiners) &&
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

/** @internal */
export const isFast = layoutIsKnown
