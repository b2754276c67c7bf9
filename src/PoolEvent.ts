/**
 * What a pool reports about itself, named after the MongoDB CMAP events so
 * that tools built for drivers read them without a dictionary.
 *
 * Durations are milliseconds measured with Effect's `Clock`; `time` is the
 * clock's epoch milliseconds when the event happened.
 *
 * @since 0.1.0
 */
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

interface Base<T extends string> {
  readonly type: T
  readonly pool: string
  readonly time: number
}

/**
 * @since 0.1.0
 * @category models
 */
export type PoolEvent =
  | Base<"ConnectionPoolCreated"> & { readonly options: ResolvedOptions }
  | Base<"ConnectionPoolReady">
  | Base<"ConnectionPoolCleared"> & {
    readonly generation: number
    readonly interruptInUseConnections: boolean
  }
  | Base<"ConnectionPoolClosed">
  | Base<"ConnectionCreated"> & { readonly connectionId: number }
  | Base<"ConnectionReady"> & { readonly connectionId: number; readonly duration: number }
  | Base<"ConnectionClosed"> & {
    readonly connectionId: number
    readonly reason: CloseReason
    readonly error?: unknown
  }
  | Base<"ConnectionCheckOutStarted">
  | Base<"ConnectionCheckOutFailed"> & {
    readonly reason: CheckOutFailedReason
    readonly duration: number
    readonly error?: unknown
  }
  | Base<"ConnectionCheckedOut"> & { readonly connectionId: number; readonly duration: number }
  | Base<"ConnectionCheckedIn"> & { readonly connectionId: number; readonly duration: number }
  | Base<"ConnectionLeakSuspected"> & {
    readonly connectionId: number
    readonly heldFor: number
    /** The stack at the checkout that has not returned. */
    readonly checkedOutAt: string
  }

/**
 * @since 0.1.0
 * @category models
 */
export type PoolEventType = PoolEvent["type"]

/**
 * Narrows an event union member by its `type`.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolEventOf<T extends PoolEventType> = Extract<PoolEvent, { readonly type: T }>
