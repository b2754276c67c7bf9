/**
 * Talking to PostgreSQL through a transaction-mode pooler (PgBouncer with
 * `pool_mode = transaction`): each transaction, and each statement outside
 * one, may run on a different server connection, so nothing that lives in a
 * session can be relied on.
 *
 * - `sessionSettings` are refused (they would stay on whichever server
 *   connection ran the `SET`); `transactionSettings` are applied with
 *   `SET LOCAL` semantics (`set_config(..., true)`) in the `BEGIN` of every
 *   transaction, in any mode.
 * - `discardOnReturn` is refused: the pooler resets server connections
 *   itself, and a `DISCARD ALL` would reach a server connection nobody holds.
 * - `LISTEN` needs a session: it goes to `listenUrl`, a direct connection,
 *   or fails with an error that says so (as it does for a list of hosts).
 * - Statements are unnamed: lifeguard/pg never names a prepared statement
 *   (pg only does when asked), so each one is parsed on whichever server
 *   connection runs it. Nothing to switch off.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
import pg from "pg"
import type { Options } from "../PgPool.js"

/** @internal */
export type Pooler = "none" | "transaction"

/** @internal */
export const isTransactionPooler = (options: Options): boolean => options.pooler === "transaction"

/** What the pooler options get wrong, as PoolConfigError problems. */
export const problems = (options: Options): ReadonlyArray<string> => {
  const found: Array<string> = []
  if (options.pooler !== undefined && options.pooler !== "none" && options.pooler !== "transaction") {
    found.push(`pooler must be "none" or "transaction" (got ${JSON.stringify(options.pooler)})`)
  }
  if (!isTransactionPooler(options)) return found
  if (options.sessionSettings !== undefined && Object.keys(options.sessionSettings).length > 0) {
    found.push(
      `sessionSettings cannot be kept behind a transaction-mode pooler (pooler: "transaction"): each transaction ` +
        `may run on another server connection. Use transactionSettings (SET LOCAL in every transaction), or set ` +
        `them on the server (ALTER ROLE ... SET, ALTER DATABASE ... SET)`
    )
  }
  if (options.discardOnReturn === true) {
    found.push(
      `discardOnReturn has nothing to reset behind a transaction-mode pooler (pooler: "transaction"): the pooler ` +
        `resets server connections itself (server_reset_query); remove it`
    )
  }
  return found
}

/**
 * The statement that opens a transaction: `BEGIN`, then each of
 * `transactionSettings` set for this transaction only, in the same round trip
 * (the simple protocol takes several statements; the values are quoted).
 *
 * @internal
 */
export const beginStatement = (options: Options): string => {
  const settings = Object.entries(options.transactionSettings ?? {})
  if (settings.length === 0) return "BEGIN"
  const calls = settings.map(([key, value]) =>
    `set_config(${pg.escapeLiteral(key)}, ${pg.escapeLiteral(String(value))}, true)`
  )
  return `BEGIN; SELECT ${calls.join(", ")}`
}

/**
 * Where LISTEN connects: `listenUrl` when given; else the pool's own server,
 * unless a transaction pooler is in between (no session to listen in) or the
 * pool has several hosts (a standby cannot LISTEN, and NOTIFY does not reach
 * it); then listening fails with the error returned.
 *
 * @internal
 */
export const listenOptions = (pool: string, options: Options, hostCount: number): Options | SqlError =>
  options.listenUrl !== undefined
    ? { ...options, url: options.listenUrl, hosts: undefined, targetSessionAttrs: undefined, loadBalanceHosts: undefined }
    : isTransactionPooler(options)
    ? listenUnavailable(
      pool,
      `LISTEN needs a session of its own, which a transaction-mode pooler (pooler: "transaction") does not keep`
    )
    : hostCount > 1
    ? listenUnavailable(pool, `LISTEN needs the primary itself, and this pool has a list of ${hostCount} hosts`)
    : options

const listenUnavailable = (pool: string, why: string): SqlError =>
  new SqlError({ message: `pool "${pool}": ${why}; set listenUrl to a direct PostgreSQL url` })
