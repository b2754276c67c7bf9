/**
 * Pool options, their defaults, and the validation that turns bad options
 * into one `PoolConfigError` listing every problem.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/config.js"
import type { PoolConfigError } from "./PoolError.js"
import type { PoolEvent } from "./PoolEvent.js"

/**
 * The plain settings of a pool: numbers and durations, all optional, all
 * readable from Effect `Config` (see {@link config}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /** Names the pool in errors, events, metrics and spans. Default `"default"`. */
  readonly name?: string
  /** Most connections open at once, counting those being set up. Default 10. */
  readonly maxSize?: number
  /** Idle connections the maintenance keeps ready. Default 0. */
  readonly minIdle?: number
  /** Most connections in set-up at once, so a burst does not storm the server. Default 2. */
  readonly maxConnecting?: number
  /** One deadline for a checkout: the wait and any set-up it needs. Default 30 seconds. */
  readonly acquireTimeout?: Duration.DurationInput
  /** Longest a single connection set-up may take. Default 10 seconds. */
  readonly createTimeout?: Duration.DurationInput
  /** Idle connections older than this are closed. Default 10 minutes; `Infinity` keeps them. */
  readonly idleTimeout?: Duration.DurationInput
  /** Connections are retired after this long. Default 30 minutes; `Infinity` keeps them. */
  readonly maxLifetime?: Duration.DurationInput
  /** Up to this much is taken off each connection's lifetime at random, so they do not all retire at once. Default 1 minute (capped at a quarter of `maxLifetime`). */
  readonly lifetimeJitter?: Duration.DurationInput
  /** A connection is retired after this many checkouts. Default `Infinity`. */
  readonly maxUses?: number
  /** `validate` is skipped for connections used more recently than this. Default 1 second. */
  readonly validateAfterIdle?: Duration.DurationInput
  /** Bounds each `validate` and `reset` call. Default 5 seconds. */
  readonly checkTimeout?: Duration.DurationInput
  /** Log a warning with the checkout's stack when a connection is held this long. Default off. */
  readonly leakDetectionThreshold?: Duration.DurationInput
  /** A checkout that waited at least this long records a `lifeguard.pool.checkout` span. Default 10 ms. */
  readonly traceWaitsOver?: Duration.DurationInput
  /** Most callers parked in the wait queue; more fail at once. Default `Infinity`. */
  readonly maxWaiters?: number
  /** Which idle connection is reused first: the most recent (`"lifo"`, keeps the set warm and small) or the oldest (`"fifo"`, spreads use). Default `"lifo"`. */
  readonly reuse?: "lifo" | "fifo"
  /** How often the maintenance runs (eviction, refill to `minIdle`). Default 10 seconds. */
  readonly maintenanceInterval?: Duration.DurationInput
  /** How long closing the pool waits for connections in use before closing them anyway. Default 30 seconds. */
  readonly drainTimeout?: Duration.DurationInput
  /** Start paused (as a CMAP pool does): checkouts fail until `ready`. Default false. */
  readonly startPaused?: boolean
  /**
   * When set, building the pool opens `max(1, minIdle)` connections and fails
   * with the set-up error if it cannot within this long (HikariCP's
   * `initializationFailTimeout`). Default: no start-up check.
   */
  readonly initializationFailTimeout?: Duration.DurationInput
}

/**
 * Everything a pool needs: the connection factory, optional per-connection
 * checks, and its {@link Settings}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A, E = never, R = never> extends Settings {
  /**
   * Opens one connection. It runs in the connection's own `Scope`: write
   * `Effect.acquireRelease(connect, close)` and the pool closes that scope
   * when it retires the connection.
   */
  readonly acquire: Effect.Effect<A, E, Scope.Scope | R>
  /** Checks an idle connection before hand-out; `false` or a failure retires it. */
  readonly validate?: (connection: A) => Effect.Effect<boolean, unknown, R>
  /** Runs when a connection comes back; `false` or a failure retires it. */
  readonly reset?: (connection: A) => Effect.Effect<boolean, unknown, R>
  /**
   * Whether retrying can fix a set-up error. `false` (a bad password, a missing
   * database) fails every waiting checkout at once instead of retrying until
   * `acquireTimeout`. Default: every error is retryable; `ConnectTimeoutError`
   * always is.
   */
  readonly isRetryable?: (error: E) => boolean
  /** How failed set-ups are retried. Default: exponential from 100 ms, capped at 5 s, jittered, for as long as someone waits. */
  readonly retrySchedule?: Schedule.Schedule<unknown, E | unknown, R>
  /** Called synchronously, in order, for every event. Keep it fast. */
  readonly onEvent?: (event: PoolEvent) => void
  /** The server the connections go to, as `host:port`: every event carries it as CMAP's `address`. */
  readonly address?: string
}

/**
 * Settings with every default filled in and durations in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions {
  readonly name: string
  readonly maxSize: number
  readonly minIdle: number
  readonly maxConnecting: number
  readonly acquireTimeout: number
  readonly createTimeout: number
  readonly idleTimeout: number
  readonly maxLifetime: number
  readonly lifetimeJitter: number
  readonly maxUses: number
  readonly validateAfterIdle: number
  readonly checkTimeout: number
  readonly leakDetectionThreshold: number
  readonly traceWaitsOver: number
  readonly maxWaiters: number
  readonly reuse: "lifo" | "fifo"
  readonly maintenanceInterval: number
  readonly drainTimeout: number
  readonly startPaused: boolean
  /** Milliseconds; `undefined`: no start-up check. */
  readonly initializationFailTimeout: number | undefined
}

/**
 * The defaults, in milliseconds where a duration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults: ResolvedOptions = internal.defaults

/**
 * Fills in defaults and checks every setting; fails with one error that
 * lists all problems.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve: (settings: Settings) => Either.Either<ResolvedOptions, PoolConfigError> = internal.resolve

/**
 * Reads {@link Settings} from Effect `Config`: `MAX_SIZE`, `MIN_IDLE`,
 * `MAX_CONNECTING`, `ACQUIRE_TIMEOUT` ("5 seconds"), ... each optional, under
 * an optional prefix such as `"DB_POOL"` (then `DB_POOL_MAX_SIZE`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const config: (prefix?: string) => Config.Config<Settings> = internal.config

/**
 * @since 0.1.0
 * @category getters
 */
export const isPoolConfigError = (u: unknown): u is PoolConfigError =>
  typeof u === "object" && u !== null && "_tag" in u && u._tag === "PoolConfigError"
