/**
 * The typed errors of `lifeguard/mongodb`. Every message names the pool;
 * operation errors say whether running the operation again may succeed and
 * keep the server's code.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

const messageOf = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message)
  return String(error)
}

/**
 * Why an operation failed, as far as retrying is concerned.
 *
 * - `network`: the socket failed or timed out (the driver then clears its pool for that server).
 * - `poolCleared`: the driver's pool for the server was cleared while the operation waited in it.
 * - `serverSelection`: no suitable server answered within `serverSelectionTimeoutMS`.
 * - `notPrimary`: the server stepped down, is recovering or is shutting down.
 * - `timeout`: a client-side `timeoutMS` expired.
 * - `server`: the server refused the command (see `code` and `codeName`).
 * - `client`: the driver refused it before sending (bad arguments, closed client, ...).
 *
 * @since 0.1.0
 * @category models
 */
export type FailureKind = "network" | "poolCleared" | "serverSelection" | "notPrimary" | "timeout" | "server" | "client"

/**
 * An operation failed. `retryable` says whether running it again may succeed
 * (network error, cleared pool, no server selected, not primary, a retryable
 * label); `code` and `codeName` are the server's.
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoOperationError extends Data.TaggedError("MongoOperationError")<{
  readonly pool: string
  /** The adapter's name for what was running: `find users`, `command`, `commitTransaction`, ... */
  readonly operation: string
  readonly kind: FailureKind
  /** True when running it again may succeed (a new lease, a new connection, another primary). */
  readonly retryable: boolean
  /** The server's error code, when the server answered. */
  readonly code: number | undefined
  readonly codeName: string | undefined
  /** The driver's error labels (`RetryableWriteError`, `TransientTransactionError`, ...). */
  readonly labels: ReadonlyArray<string>
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.code === undefined ? "" : ` (code ${this.code}${this.codeName ? ` ${this.codeName}` : ""})`
    return `pool "${this.pool}": ${this.operation} failed${code}: ${messageOf(this.cause)}` +
      (this.retryable ? "; retryable" : "")
  }
}

/**
 * A write violated a unique index (server code 11000).
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoDuplicateKeyError extends Data.TaggedError("MongoDuplicateKeyError")<{
  readonly pool: string
  readonly operation: string
  /** The duplicated key, as the server reported it (`{ email: "a@b.c" }`). */
  readonly keyValue: unknown
  readonly cause: unknown
}> {
  readonly code = 11000
  override get message(): string {
    return `pool "${this.pool}": ${this.operation} violated a unique index: ${messageOf(this.cause)}`
  }
}

/**
 * Building the layer reached no server within `startTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoConnectError extends Data.TaggedError("MongoConnectError")<{
  readonly pool: string
  /** The hosts of the connection string, without credentials. */
  readonly servers: string
  readonly timeout: Duration.Duration
  readonly cause: unknown
}> {
  override get message(): string {
    return `pool "${this.pool}": could not connect to ${this.servers} within ${Duration.format(this.timeout)} ` +
      `(startTimeout): ${messageOf(this.cause)}`
  }
}

/**
 * No server is reachable: a lease set-up failed with the driver's last
 * heartbeat or network error. A checkout that times out meanwhile carries it
 * as its `PoolTimeoutError`'s `lastConnectError`.
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoUnavailableError extends Data.TaggedError("MongoUnavailableError")<{
  readonly pool: string
  readonly servers: string
  /** The driver's last heartbeat or network error. */
  readonly cause: unknown
}> {
  readonly retryable = true
  override get message(): string {
    const last = this.cause === undefined ? "" : `; last error: ${messageOf(this.cause)}`
    return `pool "${this.pool}": no server at ${this.servers} is reachable${last}`
  }
}

/**
 * The server lacks what the call needs (transactions on a standalone server
 * or FerretDB).
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoUnsupportedError extends Data.TaggedError("MongoUnsupportedError")<{
  readonly pool: string
  readonly feature: "transactions"
  readonly servers: string
  readonly reason: string
}> {
  override get message(): string {
    return `pool "${this.pool}": the server at ${this.servers} does not support ${this.feature}: ${this.reason}`
  }
}

/**
 * The errors a MongoDB operation fails with.
 *
 * @since 0.1.0
 * @category errors
 */
export type MongoError = MongoOperationError | MongoDuplicateKeyError
