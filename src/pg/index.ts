/**
 * lifeguard/pg: PostgreSQL through a lifeguard pool, as @effect/sql's
 * `SqlClient` and @effect/sql-pg's `PgClient`.
 *
 * @since 0.1.0
 */

/**
 * The layers, their options and the pool behind them.
 *
 * @since 0.1.0
 */
export * as PgPool from "./PgPool.js"
