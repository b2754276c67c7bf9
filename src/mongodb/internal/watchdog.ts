/**
 * A guard on the driver's server monitor. Every check the monitor makes is
 * bounded by the driver's own timeouts, yet a check on a monitoring socket
 * that closes under it can stay pending for good (seen with mongodb 7.0 when
 * the server is killed or its connections cut): the monitor then never checks
 * again, no operation can select the server, and the client never recovers by
 * itself. When a check has run past the driver's bound, the watchdog restarts
 * the client (close, then connect: the same `MongoClient`, new monitors).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/** The driver settings a check's bound comes from (`MongoClient#options`). */
export interface MonitorTimings {
  readonly connectTimeoutMS: number
  readonly heartbeatFrequencyMS: number
}

/** The checks the watchdog reads (the `DriverMonitor`'s). */
export interface Checks {
  /** The longest-running check past `bound`. */
  readonly stalledCheck: (bound: number) => { readonly address: string; readonly runningMs: number } | undefined
  /** The client is being restarted: the checks it had end without an outcome. */
  readonly restarted: () => void
}

/**
 * How long a check may run before it is stalled: a connect and a handshake of
 * `connectTimeoutMS` each, or an awaited `hello` of `connectTimeoutMS` plus
 * `heartbeatFrequencyMS`, with a second to spare. Infinity when
 * `connectTimeoutMS` is 0 (the driver's "no timeout": no check is ever late).
 */
export const stalledAfter = ({ connectTimeoutMS, heartbeatFrequencyMS }: MonitorTimings): number =>
  connectTimeoutMS > 0 ? 2 * connectTimeoutMS + heartbeatFrequencyMS + 1_000 : Number.POSITIVE_INFINITY

/** Looks at the checks once per heartbeat and calls `restart` for a stalled one, until interrupted. */
export const watch = (
  checks: Checks,
  timings: MonitorTimings,
  restart: (stalled: { readonly address: string; readonly runningMs: number; readonly bound: number }) => Effect.Effect<void>
): Effect.Effect<void> => {
  const bound = stalledAfter(timings)
  if (!Number.isFinite(bound)) return Effect.void
  const look = Effect.suspend(() => {
    const stalled = checks.stalledCheck(bound)
    if (stalled === undefined) return Effect.void
    checks.restarted()
    return restart({ ...stalled, bound })
  })
  return Effect.asVoid(Effect.repeat(look, Schedule.spaced(Duration.millis(timings.heartbeatFrequencyMS))))
}
