/**
 * Which `pg` errors mean the connection (or the whole server) is gone, and the
 * `SqlError`s the adapter reports.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
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

/** @internal */
export const connectFailed = (pool: string, target: string, cause: unknown): SqlError =>
  new SqlError({ cause, message: `pool "${pool}": could not connect to ${target}: ${messageOf(cause)}` })

/** @internal */
export const sessionSettingsRejected = (pool: string, cause: unknown): SqlError =>
  new SqlError({ cause, message: `pool "${pool}": the server rejected sessionSettings: ${messageOf(cause)}` })

/**
 * A checkout failure as a `SqlError`, the only error a `SqlClient` statement
 * may fail with. The pool's typed error stays reachable as `cause`.
 *
 * @internal
 */
export const checkoutFailed = (error: PoolError | SqlError): SqlError =>
  error._tag === "SqlError" ? error : new SqlError({ cause: error, message: error.message })
