/**
 * The typed errors a pool can fail with. Every message names the pool and says
 * what a user can do about it.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The pool's counts at one instant, carried by errors and returned by `stats`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolCounts {
  /** Connections that exist or are being set up (`idle + inUse + pending`). */
  readonly total: number
  readonly idle: number
  readonly inUse: number
  /** Connections being set up right now. */
  readonly pending: number
  /** Callers parked in the wait queue. */
  readonly waiting: number
}

const describeCounts = (maxSize: number, c: PoolCounts): string =>
  `total ${c.total}/${maxSize}, idle ${c.idle}, in use ${c.inUse}, pending ${c.pending}, waiting ${c.waiting}`

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  if (typeof cause === "object" && cause !== null && "message" in cause) return String(cause.message)
  return String(cause)
}

/**
 * No connection became available within `acquireTimeout`. The message says
 * which case it is: every connection busy (raise `maxSize` or return
 * connections sooner), no connection could be made (the last set-up error),
 * or set-ups slower than the wait allows.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeoutError extends Data.TaggedError("PoolTimeoutError")<{
  readonly pool: string
  readonly timeout: Duration.Duration
  readonly maxSize: number
  readonly counts: PoolCounts
  /** The most recent connection set-up failure since the last successful set-up, if any. */
  readonly lastConnectError: unknown
  /** The pool's `createTimeout`, for the hint when it exceeds `acquireTimeout`. */
  readonly createTimeout: Duration.Duration
}> {
  override get message(): string {
    return `pool "${this.pool}": no connection within ${Duration.format(this.timeout)} ` +
      `(${describeCounts(this.maxSize, this.counts)}): ${this.advice()}`
  }

  private advice(): string {
    const c = this.counts
    const hint = Duration.greaterThan(this.createTimeout, this.timeout)
      ? `; createTimeout (${Duration.format(this.createTimeout)}) exceeds acquireTimeout, ` +
        `so a slow set-up outlasts the checkout that waits for it: lower createTimeout`
      : ""
    if (this.lastConnectError !== undefined) {
      return `the server is not reachable: ${describeCause(this.lastConnectError)}${hint}`
    }
    if (c.inUse >= this.maxSize) {
      return `every connection is busy; raise maxSize or return connections sooner${hint}`
    }
    if (c.pending > 0) {
      return `connections are being set up more slowly than acquireTimeout allows; ` +
        `raise acquireTimeout or maxConnecting${hint}`
    }
    return `raise maxSize or acquireTimeout, or return connections sooner${hint}`
  }
}

/**
 * The pool is closed or draining; it will not hand out connections again.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosedError extends Data.TaggedError("PoolClosedError")<{
  readonly pool: string
}> {
  override get message(): string {
    return `pool "${this.pool}" is closed: its layer's scope was closed or drain was called`
  }
}

/**
 * The pool was cleared (its generation bumped) while the caller waited, or it
 * is paused. Retryable: a later checkout gets a fresh connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClearedError extends Data.TaggedError("PoolClearedError")<{
  readonly pool: string
  readonly generation: number
  /** Why the pool was cleared, when the caller of `clear` said. */
  readonly reason: unknown
}> {
  readonly retryable = true
  override get message(): string {
    const why = this.reason === undefined ? "" : ` (${describeCause(this.reason)})`
    return `pool "${this.pool}" was cleared at generation ${this.generation}${why} ` +
      `and is paused or was reset; retry the checkout`
  }
}

/**
 * The wait queue already holds `maxWaiters` callers.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolWaitQueueFullError extends Data.TaggedError("PoolWaitQueueFullError")<{
  readonly pool: string
  readonly maxWaiters: number
}> {
  override get message(): string {
    return `pool "${this.pool}": ${this.maxWaiters} callers are already waiting (maxWaiters); ` +
      `shed load or raise maxWaiters`
  }
}

/**
 * A connection set-up took longer than `createTimeout`, or the start-up check
 * (`initializationFailTimeout`) ran out before any set-up failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectTimeoutError extends Data.TaggedError("ConnectTimeoutError")<{
  readonly pool: string
  readonly timeout: Duration.Duration
  /** Which limit ran out. Default `"createTimeout"`. */
  readonly setting?: "createTimeout" | "initializationFailTimeout"
}> {
  override get message(): string {
    return this.setting === "initializationFailTimeout"
      ? `pool "${this.pool}": no connection could be opened within initializationFailTimeout ` +
        `(${Duration.format(this.timeout)}) while the pool started; is the server reachable?`
      : `pool "${this.pool}": connection set-up took longer than createTimeout ` +
        `(${Duration.format(this.timeout)}); is the server reachable?`
  }
}

/**
 * The errors of a checkout that are the pool's own (the factory's errors are
 * added to these).
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError =
  | PoolTimeoutError
  | PoolClosedError
  | PoolClearedError
  | PoolWaitQueueFullError
  | ConnectTimeoutError

/**
 * Options were rejected when the pool was built. Lists every problem at once.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolConfigError extends Data.TaggedError("PoolConfigError")<{
  readonly pool: string
  readonly problems: ReadonlyArray<string>
}> {
  override get message(): string {
    return `pool "${this.pool}" has invalid options:\n` + this.problems.map((p) => `  - ${p}`).join("\n")
  }
}
