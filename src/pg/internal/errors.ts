/**
 * Which `pg` errors mean the connection (or the whole server) is gone, and the
 * `SqlError`s the adapter reports.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
import * as Dns from "node:dns/promises"
import type { PoolError } from "../../PoolError.js"

const socketErrors = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTCONN",
  "EHOSTUNREACH",
  "ENETUNREACH"
])

const codeOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined
  return typeof error.code === "string" ? error.code : undefined
}

const messageOf = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message)
  return String(error)
}

/**
 * True when the error leaves the connection unusable: SQLSTATE class 08
 * (connection exception), 57P (operator intervention: shutdown, terminate,
 * crash, idle-session timeout), 25P03 (idle-in-transaction timeout, fatal),
 * socket errors, and pg's own "Connection terminated" / "not queryable".
 *
 * @internal
 */
export const isConnectionGone = (error: unknown): boolean => {
  const code = codeOf(error)
  if (code !== undefined) {
    if (code.startsWith("08") || code.startsWith("57P") || code === "25P03" || socketErrors.has(code)) return true
  }
  const message = messageOf(error)
  return message.includes("Connection terminated") || message.includes("not queryable")
}

/**
 * True when the error means every connection to the server is going: an admin
 * or crash shutdown (57P01, 57P02). `pg_terminate_backend` also reports 57P01.
 *
 * @internal
 */
export const isServerGoingAway = (error: unknown): boolean => {
  const code = codeOf(error)
  return code === "57P01" || code === "57P02"
}

/** @internal */
export const queryFailed = (pool: string, cause: unknown): SqlError =>
  new SqlError({ cause, message: `pool "${pool}": statement failed: ${messageOf(cause)}` })

/** Set-up errors the adapter decided retrying cannot fix, from what it saw at set-up. */
const permanent = new WeakSet<SqlError>()

const notRetried = (error: SqlError): SqlError => {
  permanent.add(error)
  return error
}

/** What to do about a set-up error retrying cannot fix, by SQLSTATE. */
const adviceFor = (code: string | undefined): string | undefined => {
  if (code === undefined) return undefined
  if (code.startsWith("28")) return `SQLSTATE ${code}: the server refused these credentials; fix the user name or password`
  if (code === "3D000") return `SQLSTATE ${code}: the database does not exist; create it or fix its name`
  return undefined
}

/** @internal */
export const connectFailed = (pool: string, target: string, cause: unknown): SqlError => {
  const advice = adviceFor(codeOf(cause))
  const error = new SqlError({
    cause,
    message: `pool "${pool}": could not connect to ${target}: ${messageOf(cause)}` +
      (advice === undefined ? "" : ` (${advice}; not retried)`)
  })
  return advice === undefined ? error : notRetried(error)
}

/** @internal */
export const hostNotFound = (pool: string, target: string, host: string, cause: unknown): SqlError =>
  notRetried(
    new SqlError({
      cause,
      message: `pool "${pool}": could not connect to ${target}: the host name "${host}" does not resolve ` +
        `(ENOTFOUND on two lookups); fix the host or the url (not retried)`
    })
  )

/**
 * A session setting the server rejects (42704 an unknown setting, 22023 a bad
 * value, 42501 not allowed, ...) is rejected on every connection alike; only
 * a connection lost meanwhile is worth another try.
 *
 * @internal
 */
export const sessionSettingsRejected = (pool: string, cause: unknown): SqlError => {
  const code = codeOf(cause)
  const error = new SqlError({
    cause,
    message: `pool "${pool}": the server rejected sessionSettings: ${messageOf(cause)}` +
      (isConnectionGone(cause) ? "" : ` (${code === undefined ? "" : `SQLSTATE ${code}: `}fix sessionSettings; not retried)`)
  })
  return isConnectionGone(cause) ? error : notRetried(error)
}

/**
 * Whether retrying a connection set-up can help: false for an authentication
 * failure (SQLSTATE class 28), a database that does not exist (3D000), a
 * session setting the server rejects, a host name that does not resolve (on a
 * second lookup too); true for everything else (a refused or reset
 * connection, a server starting up or shutting down, too many clients).
 *
 * @internal
 */
export const isRetryable = (error: SqlError): boolean =>
  !permanent.has(error) && adviceFor(codeOf(error.cause)) === undefined

/**
 * How a host name is looked up a second time after ENOTFOUND, as `net.connect`
 * looks it up; resolves to whether it still does not resolve. Replaced by
 * tests, so that no lookup leaves the machine.
 *
 * @internal
 */
export const resolver = {
  notFound: (host: string): Promise<boolean> =>
    Dns.lookup(host).then(() => false, (error: unknown) => codeOf(error) === "ENOTFOUND")
}

/** @internal */
export { codeOf }

/**
 * A checkout failure as a `SqlError`, the only error a `SqlClient` statement
 * may fail with. The pool's typed error stays reachable as `cause`.
 *
 * @internal
 */
export const checkoutFailed = (error: PoolError | SqlError): SqlError =>
  error._tag === "SqlError" ? error : new SqlError({ cause: error, message: error.message })
