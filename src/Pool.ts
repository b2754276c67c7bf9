/**
 * The pool: connections as `Scope`-managed resources, a fair FIFO wait queue,
 * one deadline per checkout, generations, maintenance and drain.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pool } from "lifeguard"
 *
 * class Db extends Pool.Tag("app/Db")<Db, Connection, ConnectError>() {}
 *
 * const DbLive = Pool.layer(Db, {
 *   acquire: Effect.acquireRelease(connect, (c) => close(c)),
 *   maxSize: 10
 * })
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Db
 *   return yield* Effect.scoped(Effect.flatMap(db.get, (conn) => query(conn)))
 * }).pipe(Effect.provide(DbLive))
 * ```
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/pool.js"
import * as layers from "./internal/layer.js"
import type { Options, ResolvedOptions, Settings } from "./PoolConfig.js"
import type { ConnectTimeoutError, PoolConfigError, PoolCounts, PoolError } from "./PoolError.js"
import type { PoolEvent } from "./PoolEvent.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A pool of connections of type `A` whose set-up fails with `E`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pool<A, E = never> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Checks out a connection; closing the scope returns it. */
  readonly get: Effect.Effect<A, PoolError | E, Scope.Scope>
  /** Checks out a connection for the duration of `f`. The fast path. */
  readonly use: <B, E2, R2>(f: (connection: A) => Effect.Effect<B, E2, R2>) => Effect.Effect<B, PoolError | E | E2, R2>
  /** Retires a checked-out connection: it is closed instead of returned. */
  readonly invalidate: (connection: A) => Effect.Effect<void>
  /** Bumps the generation: idle connections close now, in-use ones on return, waiters fail retryably. */
  readonly clear: (options?: ClearOptions) => Effect.Effect<void>
  /** Opens a paused pool. */
  readonly ready: Effect.Effect<void>
  /** Closes the pool: waiters fail, idle connections close, in-use ones are awaited up to `drainTimeout`. */
  readonly drain: Effect.Effect<void>
  /** Counts now and cumulative counters. */
  readonly stats: Effect.Effect<PoolStats>
  /** Every event from now on; the stream ends when the pool closes. */
  readonly events: Stream.Stream<PoolEvent>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ClearOptions {
  /** Close connections in use now rather than when they come back. Default false. */
  readonly interruptInUse?: boolean
  /** Keep the pool paused after the clear until `ready` is called (CMAP behaviour). Default false. */
  readonly pause?: boolean
  /** Why: carried by the `PoolClearedError` that waiters receive. */
  readonly reason?: unknown
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PoolStats extends PoolCounts {
  readonly generation: number
  readonly paused: boolean
  /** Closed to checkouts: true from the moment the drain starts. */
  readonly closed: boolean
  /** The drain has started and not finished: connections still out are being awaited. */
  readonly draining: boolean
  /** Why the most recent set-up failed; `undefined` once one has succeeded since (or none failed). */
  readonly lastConnectError: unknown
  /** Cumulative counters since the pool was made. */
  readonly checkouts: number
  readonly waits: number
  readonly timeouts: number
  readonly connectionsCreated: number
  readonly connectionsClosed: number
  readonly connectFailures: number
  /** Set-ups still running when the drain's deadline passed (an acquire that cannot be interrupted). */
  readonly setupsLeftRunning: number
  /** Connection closes (releases) still running when the drain's deadline passed. */
  readonly closesLeftRunning: number
}

/**
 * Makes a pool in the current scope; closing the scope drains it. Fails with
 * `PoolConfigError` on bad options and, when `initializationFailTimeout` is
 * set, with the set-up error (or `ConnectTimeoutError`) if the start-up check
 * cannot open its connections.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <A, E = never, R = never>(
    options: Options<A, E, R> & { readonly initializationFailTimeout?: undefined }
  ): Effect.Effect<Pool<A, E>, PoolConfigError, Scope.Scope | R>
  <A, E = never, R = never>(
    options: Options<A, E, R>
  ): Effect.Effect<Pool<A, E>, PoolConfigError | E | ConnectTimeoutError, Scope.Scope | R>
} = internal.make

/**
 * @since 0.1.0
 * @category guards
 */
export const isPool = (u: unknown): u is Pool<unknown, unknown> => typeof u === "object" && u !== null && TypeId in u

/**
 * A service key for one pool. Several pools of different connection types
 * live side by side, each under its own tag.
 *
 * @example
 * ```ts
 * class Db extends Pool.Tag("app/Db")<Db, pg.Client, Error>() {}
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag = (key: string) => <Self, A, E = never>(): Context.TagClass<Self, string, Pool<A, E>> =>
  Context.Tag(key)<Self, Pool<A, E>>()

/**
 * The PoolLayer: builds the pool when the layer is built (bad options fail
 * here, with every problem listed; so does the start-up check, with the
 * set-up error, when `initializationFailTimeout` is set) and drains it when
 * the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: {
  <Self, A, E = never, R = never>(
    tag: Context.Tag<Self, Pool<A, E>>,
    options: Options<A, E, R> & { readonly initializationFailTimeout?: undefined }
  ): Layer.Layer<Self, PoolConfigError, Exclude<R, Scope.Scope>>
  <Self, A, E = never, R = never>(
    tag: Context.Tag<Self, Pool<A, E>>,
    options: Options<A, E, R>
  ): Layer.Layer<Self, PoolConfigError | E | ConnectTimeoutError, Exclude<R, Scope.Scope>>
} = layers.layer

/**
 * Like {@link layer}, with the settings read from Effect `Config` (see
 * `PoolConfig.config`); settings given in `options` win over configured ones.
 * The configuration may turn the start-up check on, so the layer can fail
 * with a set-up error.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: <Self, A, E = never, R = never>(
  tag: Context.Tag<Self, Pool<A, E>>,
  options: Options<A, E, R>,
  config: Config.Config<Settings>
) => Layer.Layer<
  Self,
  PoolConfigError | ConfigError.ConfigError | E | ConnectTimeoutError,
  Exclude<R, Scope.Scope>
> = layers.layerConfig
