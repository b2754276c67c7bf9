/**
 * lifeguard: Effect-native connection pools.
 *
 * @since 0.1.0
 */

/**
 * The pool service, its layers and its operations.
 *
 * @since 0.1.0
 */
export * as Pool from "./Pool.js"

/**
 * Options, defaults and validation.
 *
 * @since 0.1.0
 */
export * as PoolConfig from "./PoolConfig.js"

/**
 * The typed errors.
 *
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.js"

/**
 * The CMAP-named events.
 *
 * @since 0.1.0
 */
export * as PoolEvent from "./PoolEvent.js"

/**
 * The `Metric`s every pool updates, tagged with its name.
 *
 * @since 0.1.0
 */
export * as PoolMetrics from "./PoolMetrics.js"

/**
 * Readiness from stats and a probe: ready, degraded, draining or down.
 *
 * @since 0.1.0
 */
export * as PoolHealth from "./PoolHealth.js"
