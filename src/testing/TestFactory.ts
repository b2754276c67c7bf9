/**
 * An in-memory connection factory. Every connection it opens is a plain
 * object that knows whether it is open, broken and how often it was used.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export interface TestConnection {
  readonly id: number
  /** False once the pool closed it. */
  open: boolean
  /** Set by {@link TestFactory.breakConnection}: `validate` and `reset` then say false. */
  broken: boolean
  /** How many times {@link TestFactory.query} ran on it. */
  queries: number
}

/**
 * The error a failing set-up fails with.
 *
 * @since 0.1.0
 * @category errors
 */
export class TestConnectError extends Data.TaggedError("TestConnectError")<{
  readonly attempt: number
  readonly reason: string
}> {
  override get message(): string {
    return `test connection set-up #${this.attempt} failed: ${this.reason}`
  }
}

/**
 * Counters of what the factory did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counters {
  /** Set-ups started. */
  readonly attempts: number
  readonly opened: number
  readonly closed: number
  readonly failed: number
  /** Open now. */
  readonly open: number
  readonly maxOpen: number
  /** In set-up now. */
  readonly connecting: number
  readonly maxConnecting: number
}

/**
 * What the next set-ups do, as a CMAP `failPoint` describes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailPoint {
  /** How many set-ups are affected; default all. */
  readonly times?: number
  /** Each affected set-up takes this long first. */
  readonly delay?: Duration.DurationInput
  /** Each affected set-up fails (after the delay) with this reason. */
  readonly fail?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TestFactory {
  /** The connection factory to hand to `Pool.make`. */
  readonly acquire: Effect.Effect<TestConnection, TestConnectError, Scope.Scope>
  /** A `validate` for the pool: true while the connection is not broken. */
  readonly validate: (connection: TestConnection) => Effect.Effect<boolean>
  /** A `reset` for the pool: true while the connection is not broken. */
  readonly reset: (connection: TestConnection) => Effect.Effect<boolean>
  /** Counts a query on the connection; dies if the pool handed out a closed one. */
  readonly query: (connection: TestConnection) => Effect.Effect<void>
  /** The next `count` set-ups fail. */
  readonly failNext: (count: number, reason?: string) => Effect.Effect<void>
  /** Applies a fail point to the following set-ups (replacing any earlier one). */
  readonly setFailPoint: (failPoint: FailPoint | undefined) => Effect.Effect<void>
  /** Every set-up from now on takes this long. */
  readonly setConnectDelay: (delay: Duration.DurationInput) => Effect.Effect<void>
  /** Marks a connection broken. */
  readonly breakConnection: (connection: TestConnection) => Effect.Effect<void>
  /** Every connection ever opened, in order. */
  readonly connections: () => ReadonlyArray<TestConnection>
  readonly counters: () => Counters
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /** How long each set-up takes. Default zero (no suspension at all). */
  readonly connectDelay?: Duration.DurationInput
}

/**
 * Makes a factory. Time spent in set-up goes through Effect's `Clock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions = {}): Effect.Effect<TestFactory> =>
  Effect.sync(() => {
    let connectDelay = Duration.decode(options.connectDelay ?? 0)
    let failPoint: { remaining: number; delay: Duration.Duration; fail: string | undefined } | undefined
    const all: Array<TestConnection> = []
    let attempts = 0, opened = 0, closed = 0, failed = 0, open = 0, maxOpen = 0, connecting = 0, maxConnecting = 0

    const takeFailPoint = () => {
      if (failPoint === undefined || failPoint.remaining <= 0) return undefined
      failPoint.remaining--
      return failPoint
    }

    const connect = Effect.suspend(() => {
      const attempt = ++attempts
      connecting++
      maxConnecting = Math.max(maxConnecting, connecting)
      const point = takeFailPoint()
      const delay = point?.delay ?? connectDelay
      const settle = Effect.suspend(() => {
        if (point?.fail !== undefined) {
          failed++
          return Effect.fail(new TestConnectError({ attempt, reason: point.fail }))
        }
        const connection: TestConnection = { id: ++opened, open: true, broken: false, queries: 0 }
        all.push(connection)
        open++
        maxOpen = Math.max(maxOpen, open)
        return Effect.succeed(connection)
      })
      const run = Duration.toMillis(delay) > 0 ? Effect.zipRight(Effect.sleep(delay), settle) : settle
      return Effect.ensuring(run, Effect.sync(() => connecting--))
    })

    const close = (connection: TestConnection) =>
      Effect.sync(() => {
        connection.open = false
        open--
        closed++
      })

    const healthy = (connection: TestConnection) => Effect.sync(() => connection.open && !connection.broken)

    return {
      acquire: Effect.acquireRelease(connect, close),
      validate: healthy,
      reset: healthy,
      query: (connection) =>
        connection.open
          ? Effect.sync(() => {
            connection.queries++
          })
          : Effect.dieMessage(`test connection ${connection.id} was used after it was closed`),
      failNext: (count, reason = "injected failure") =>
        Effect.sync(() => {
          failPoint = { remaining: count, delay: connectDelay, fail: reason }
        }),
      setFailPoint: (point) =>
        Effect.sync(() => {
          failPoint = point === undefined ? undefined : {
            remaining: point.times ?? Number.POSITIVE_INFINITY,
            delay: Duration.decode(point.delay ?? connectDelay),
            fail: point.fail
          }
        }),
      setConnectDelay: (delay) =>
        Effect.sync(() => {
          connectDelay = Duration.decode(delay)
        }),
      breakConnection: (connection) =>
        Effect.sync(() => {
          connection.broken = true
        }),
      connections: () => all,
      counters: () => ({ attempts, opened, closed, failed, open, maxOpen, connecting, maxConnecting })
    }
  })
