/**
 * What a pool reports about itself, named after the MongoDB CMAP events so
 * that tools built for drivers read them without a dictionary.
 *
 * Events are a tagged union (`_tag` is the CMAP name). Durations are
 * milliseconds measured with Effect's `Clock`; `time` is the clock's epoch
 * milliseconds when the event happened. The pool builds them as plain objects;
 * the constructors here are for tests and tools that make their own.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type { ResolvedOptions } from "./PoolConfig.js"

/**
 * Why a connection was closed.
 *
 * - `stale`: its generation is older than the pool's (after a `clear`).
 * - `idle`: it sat idle longer than `idleTimeout`.
 * - `lifetime`: it outlived `maxLifetime` (with jitter).
 * - `maxUses`: it was checked out `maxUses` times.
 * - `error`: a set-up failed, or `validate`/`reset` said it is broken.
 * - `invalidated`: its holder called `invalidate`.
 * - `poolClosed`: the pool was drained.
 *
 * @since 0.1.0
 * @category models
 */
export type CloseReason = "stale" | "idle" | "lifetime" | "maxUses" | "error" | "invalidated" | "poolClosed"

/**
 * Why a checkout failed. The first three are CMAP's; `waitQueueFull` means
 * `maxWaiters` was reached and `interrupted` that the caller gave up.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckOutFailedReason = "poolClosed" | "timeout" | "connectionError" | "waitQueueFull" | "interrupted"

interface Base {
  /** The pool's name. */
  readonly pool: string
  /** The clock's epoch milliseconds (with a sub-millisecond part where the clock has one). */
  readonly time: number
  /** CMAP's `address`: the server, as `host:port`, when the pool was given one (lifeguard/pg does). */
  readonly address?: string
}

/**
 * The events, as an Effect tagged union: `_tag` is the CMAP event name, so
 * `Match.tag`, `Data.TaggedEnum` helpers and {@link $is} / {@link $match}
 * work on them. Durations are milliseconds and named as CMAP names them
 * (`duration`).
 *
 * @example
 * ```ts
 * import { Match } from "effect"
 * import type { PoolEvent } from "lifeguard"
 *
 * const describe = Match.type<PoolEvent.PoolEvent>().pipe(
 *   Match.tag("ConnectionCheckOutFailed", (e) => `checkout failed: ${e.reason}`),
 *   Match.tag("ConnectionClosed", (e) => `connection ${e.connectionId} closed: ${e.reason}`),
 *   Match.orElse((e) => e._tag)
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PoolEvent = Data.TaggedEnum<{
  ConnectionPoolCreated: Base & { readonly options: ResolvedOptions }
  ConnectionPoolReady: Base
  ConnectionPoolCleared: Base & {
    readonly generation: number
    readonly interruptInUseConnections: boolean
  }
  ConnectionPoolClosed: Base
  ConnectionCreated: Base & { readonly connectionId: number }
  ConnectionReady: Base & { readonly connectionId: number; readonly duration: number }
  ConnectionClosed: Base & {
    readonly connectionId: number
    readonly reason: CloseReason
    readonly error?: unknown
  }
  ConnectionCheckOutStarted: Base
  ConnectionCheckOutFailed: Base & {
    readonly reason: CheckOutFailedReason
    readonly duration: number
    readonly error?: unknown
  }
  ConnectionCheckedOut: Base & { readonly connectionId: number; readonly duration: number }
  ConnectionCheckedIn: Base & { readonly connectionId: number; readonly duration: number }
  ConnectionLeakSuspected: Base & {
    readonly connectionId: number
    readonly heldFor: number
    /** The stack at the checkout that has not returned. */
    readonly checkedOutAt: string
  }
}>

/**
 * The event names.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolEventType = PoolEvent["_tag"]

/**
 * Narrows the union to one member by its `_tag`.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolEventOf<T extends PoolEventType> = Data.TaggedEnum.Value<PoolEvent, T>

const constructors = Data.taggedEnum<PoolEvent>()

/**
 * A refinement for one event: `Stream.filter(PoolEvent.$is("ConnectionClosed"))`.
 *
 * @since 0.1.0
 * @category guards
 */
export const $is: <Tag extends PoolEventType>(tag: Tag) => (u: unknown) => u is PoolEventOf<Tag> = constructors.$is

/**
 * An exhaustive match over the events, one case per `_tag`.
 *
 * @since 0.1.0
 * @category pattern matching
 */
export const $match: Data.TaggedEnum.Constructor<PoolEvent>["$match"] = constructors.$match

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionPoolCreated = constructors.ConnectionPoolCreated

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionPoolReady = constructors.ConnectionPoolReady

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionPoolCleared = constructors.ConnectionPoolCleared

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionPoolClosed = constructors.ConnectionPoolClosed

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionCreated = constructors.ConnectionCreated

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionReady = constructors.ConnectionReady

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionClosed = constructors.ConnectionClosed

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionCheckOutStarted = constructors.ConnectionCheckOutStarted

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionCheckOutFailed = constructors.ConnectionCheckOutFailed

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionCheckedOut = constructors.ConnectionCheckedOut

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionCheckedIn = constructors.ConnectionCheckedIn

/**
 * @since 0.1.0
 * @category constructors
 */
export const ConnectionLeakSuspected = constructors.ConnectionLeakSuspected
