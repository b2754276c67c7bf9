/**
 * lifeguard/http: the pool's readiness endpoint for @effect/platform servers.
 *
 * @since 0.1.0
 */

/**
 * The health route.
 *
 * @since 0.1.0
 */
export * as PoolHealthHttp from "./PoolHealthHttp.js"
