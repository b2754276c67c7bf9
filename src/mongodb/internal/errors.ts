/**
 * Which driver errors are which: a lost
 * connection, a cleared pool or a stepped-down primary is worth retrying; a
 * duplicate key is its own error; the rest keep the server's code.
 *
 * Driver errors are recognised by `name`, `code` and labels rather than by
 * class, so the adapter works with every driver version in the peer range.
 *
 * @internal
 */
import { type FailureKind, MongoDuplicateKeyError, type MongoError, MongoOperationError } from "../MongoError.js"

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

/**
 * Socket errors the driver can let through unwrapped (a write after the server's FIN is an
 * `EPIPE` `Error`, not a `MongoNetworkError`): a lost connection all the same.
 */
const socketCodes = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"])

const kindOf = (name: string, code: number | undefined, socketCode: unknown): FailureKind => {
  if (name === "MongoNetworkError" || name === "MongoNetworkTimeoutError") return "network"
  // The client is between a close and a connect (the watchdog restarts it): the deployment is out of reach for now.
  if (name === "MongoTopologyClosedError" || name === "MongoNotConnectedError") return "network"
  if (typeof socketCode === "string" && socketCodes.has(socketCode)) return "network"
  // A clear that interrupted in-use connections names its error PoolClearedOnNetworkError.
  if (name === "MongoPoolClearedError" || name === "PoolClearedOnNetworkError") return "poolCleared"
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
  const kind = kindOf(name, code, rawCode)
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
