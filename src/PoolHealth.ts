/**
 * A health check for readiness endpoints: the pool's `stats` plus an optional
 * cheap probe (for PostgreSQL, `SELECT 1`), folded into one status with the
 * reason. The HTTP route that serves it is in `lifeguard/http`.
 *
 * The statuses, checked in this order (the first that applies wins):
 *
 * - `draining`: `drain` has started (the layer is closing) and has not
 *   finished. Checkouts already fail; connections still out are awaited.
 * - `down`: the pool is closed (the drain finished); or it holds no open
 *   connection and its most recent set-up failed; or the probe failed.
 * - `degraded`: the pool is paused (after `clear({ pause: true })`); or the
 *   probe did not answer within `probeTimeout`; or more than
 *   `waitingThreshold` callers are waiting; or a checkout timed out within
 *   `timeoutWindow`; or set-ups are failing while open connections still serve.
 * - `ready`: none of the above.
 *
 * `ready` and `degraded` are serving (HTTP 200); `draining` and `down` are not
 * (HTTP 503). The probe's result is cached for `probeTtl`, and concurrent
 * checks share one run, so an endpoint polled often does not load the server;
 * the stats are read on every check, so `draining` shows at once.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PoolHealth } from "lifeguard"
 *
 * const health = yield* PoolHealth.make(pool, { probe: pool.use((c) => ping(c)) })
 * const { status, reason } = yield* health.check
 * ```
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as internal from "./internal/health.js"
import type { Pool, PoolStats } from "./Pool.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Status = "ready" | "degraded" | "draining" | "down"

/**
 * What a check needs of a pool (any `Pool` has it).
 *
 * @since 0.1.0
 * @category models
 */
export type PoolLike = Pick<Pool<unknown, unknown>, "name" | "options" | "stats">

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<R = never> {
  /**
   * A cheap round trip through the pool that proves the server answers, for
   * example `sql\`SELECT 1\`` with lifeguard/pg. Any failure counts as down.
   */
  readonly probe?: Effect.Effect<unknown, unknown, R>
  /** How long a probe's result is reused. Default 5 seconds. */
  readonly probeTtl?: Duration.DurationInput
  /** A probe slower than this counts as degraded. Default 2 seconds. */
  readonly probeTimeout?: Duration.DurationInput
  /** More callers waiting than this is degraded. Default `maxSize`. */
  readonly waitingThreshold?: number
  /** A checkout timeout seen by a check keeps the pool degraded this long. Default 1 minute. */
  readonly timeoutWindow?: Duration.DurationInput
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProbeResult {
  readonly ok: boolean
  /** Whether it failed for want of time (longer than `probeTimeout`, or no connection free within `acquireTimeout`): the pool is then degraded, not down. */
  readonly timedOut?: boolean
  /** Milliseconds the probe took. */
  readonly duration: number
  /** Epoch milliseconds when it finished. */
  readonly checkedAt: number
  /** One line saying why it failed. */
  readonly error?: string
}

/**
 * One check's answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Health {
  readonly status: Status
  readonly pool: string
  /** Why the status is not `ready`; absent when it is. */
  readonly reason?: string
  readonly stats: PoolStats
  /** The probe's latest (possibly cached) result, when there is a probe and it ran. */
  readonly probe?: ProbeResult
  /** Epoch milliseconds of the check. */
  readonly checkedAt: number
}

/**
 * The JSON body the HTTP route serves.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthJson {
  readonly status: Status
  readonly pool: string
  readonly reason?: string
  /** ISO 8601. */
  readonly checkedAt: string
  readonly connections: {
    readonly total: number
    readonly idle: number
    readonly inUse: number
    readonly pending: number
    readonly waiting: number
  }
  readonly generation: number
  readonly timeouts: number
  readonly lastConnectError?: string
  readonly probe?: {
    readonly ok: boolean
    readonly durationMs: number
    readonly checkedAt: string
    readonly error?: string
  }
}

/**
 * A pool's health check; run `check` for each request.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthCheck {
  readonly pool: string
  readonly check: Effect.Effect<Health>
}

/**
 * Makes a health check for a pool. The probe's requirements are captured
 * here, so `check` needs nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <R = never>(pool: PoolLike, options?: Options<R>) => Effect.Effect<HealthCheck, never, R> =
  internal.make

/**
 * Whether a load balancer should send traffic: `ready` and `degraded` are
 * serving, `draining` and `down` are not.
 *
 * @since 0.1.0
 * @category getters
 */
export const isServing: (health: Health) => boolean = internal.isServing

/**
 * The JSON body for a readiness endpoint: the status, reason, connection
 * counts and probe, with errors as one-line strings.
 *
 * @since 0.1.0
 * @category getters
 */
export const toJson: (health: Health) => HealthJson = internal.toJson
