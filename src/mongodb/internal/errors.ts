/**
 * The adapter's tagged errors, and which driver errors are which: a lost
 * connection, a cleared pool or a stepped-down primary is worth retrying; a
 * duplicate key is its own error; the rest keep the server's code.
 *
 * Driver errors are recognised by `name`, `code` and labels rather than by
 * class, so the adapter works with every driver version in the peer range.
 *
 * @internal
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
 * @internal
 */
export type FailureKind = "network" | "poolCleared" | "serverSelection" | "notPrimary" | "timeout" | "server" | "client"

/** @internal */
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

/** @internal */
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

/** @internal */
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

/** @internal */
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

/** @internal */
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

/** The errors a MongoDB operation fails with. @internal */
export type MongoError = MongoOperationError | MongoDuplicateKeyError

/** Errors the server reports while it is not (or no longer) a writable primary. */
const notPrimaryCodes = new Set([10107, 13435, 13436, 11600, 11602, 189, 91])
/** The retryable-read/-write codes of the retryability specifications, less the not-primary ones. */
const retryableCodes = new Set([6, 7, 89, 134, 262, 9001])
const retryableLabels = ["RetryableWriteError", "TransientTransactionError", "RetryableError", "ResetPool"]

const fieldOf = (error: unknown, field: string): unknown =>
  typeof error === "object" && error !== null && field in error ? (error as Record<string, unknown>)[field] : undefined

const labelsOf = (error: unknown): ReadonlyArray<string> => {
  const labels = fieldOf(error, "errorLabels")
  if (Array.isArray(labels)) return labels as Array<string>
  const set = fieldOf(error, "errorLabelSet")
  return set instanceof Set ? [...set] as Array<string> : []
}

const kindOf = (name: string, code: number | undefined): FailureKind => {
  if (name === "MongoNetworkError" || name === "MongoNetworkTimeoutError") return "network"
  if (name === "MongoPoolClearedError") return "poolCleared"
  if (name === "MongoServerSelectionError") return "serverSelection"
  if (name === "MongoOperationTimeoutError") return "timeout"
  if (code !== undefined && notPrimaryCodes.has(code)) return "notPrimary"
  if (code !== undefined) return "server"
  return "client"
}

/** @internal */
export const isDuplicateKey = (error: unknown): boolean => {
  const code = fieldOf(error, "code")
  return code === 11000 || code === 11001
}

/** Turns whatever a driver call threw into the adapter's error for it. @internal */
export const operationFailed = (pool: string, operation: string, error: unknown): MongoError => {
  if (isDuplicateKey(error)) {
    return new MongoDuplicateKeyError({ pool, operation, keyValue: fieldOf(error, "keyValue"), cause: error })
  }
  const name = String(fieldOf(error, "name") ?? "")
  const rawCode = fieldOf(error, "code")
  const code = typeof rawCode === "number" ? rawCode : undefined
  const codeName = fieldOf(error, "codeName")
  const labels = labelsOf(error)
  const kind = kindOf(name, code)
  const retryable = kind === "network" || kind === "poolCleared" || kind === "serverSelection" ||
    kind === "notPrimary" || (code !== undefined && retryableCodes.has(code)) ||
    labels.some((label) => retryableLabels.includes(label))
  return new MongoOperationError({
    pool,
    operation,
    kind,
    retryable,
    code,
    codeName: typeof codeName === "string" ? codeName : undefined,
    labels,
    cause: error
  })
}

/** True when the server does not know the command (FerretDB's answer to `killSessions`). @internal */
export const isCommandNotFound = (error: unknown): boolean => fieldOf(error, "code") === 59

/** The hosts of a connection string, credentials and options dropped: for messages. @internal */
export const serversOf = (url: string): string => {
  const match = /^mongodb(?:\+srv)?:\/\/(?:[^@/]*@)?([^/?]*)/.exec(url)
  return match?.[1] || url.replace(/\/\/[^@/]*@/, "//")
}
