/** @internal */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { PoolStats } from "../Pool.js"
import { describeError } from "./describe.js"
import type { Health, HealthCheck, HealthJson, Options, PoolLike, ProbeResult } from "../PoolHealth.js"

const defaults = {
  probeTtl: Duration.seconds(5),
  probeTimeout: Duration.seconds(2),
  timeoutWindow: Duration.minutes(1)
}

const nowMillis = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1_000_000)

const isTagged = (error: unknown, tag: string): boolean =>
  typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === tag

const runProbe = <R>(probe: Effect.Effect<unknown, unknown, R>, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const startedAt = yield* nowMillis
    const exit = yield* Effect.exit(Effect.timeoutOption(probe, timeout))
    const checkedAt = yield* nowMillis
    const duration = checkedAt - startedAt
    if (Exit.isSuccess(exit)) {
      return Option.isSome(exit.value)
        ? { ok: true, duration, checkedAt } satisfies ProbeResult
        : { ok: false, timedOut: true, duration, checkedAt, error: `no answer within ${Duration.format(timeout)}` }
    }
    const error = Cause.squash(exit.cause)
    // A probe that found every connection busy says the pool is saturated, not that the server is down.
    const busy = isTagged(error, "PoolTimeoutError") || isTagged(error, "PoolWaitQueueFullError")
    return { ok: false, timedOut: busy, duration, checkedAt, error: describeError(error) }
  })

const notReady = (
  status: Health["status"],
  reason: string,
  pool: PoolLike,
  stats: PoolStats,
  checkedAt: number,
  probe: ProbeResult | undefined
): Health => ({ status, reason, pool: pool.name, stats, checkedAt, ...(probe === undefined ? {} : { probe }) })

/** @internal */
export const make = <R = never>(pool: PoolLike, options: Options<R> = {}): Effect.Effect<HealthCheck, never, R> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    const timeoutWindow = Duration.toMillis(options.timeoutWindow ?? defaults.timeoutWindow)
    const waitingThreshold = options.waitingThreshold ?? pool.options.maxSize
    const probe = options.probe === undefined ? undefined : yield* Effect.cachedWithTTL(
      runProbe(Effect.provide(options.probe, context), Duration.decode(options.probeTimeout ?? defaults.probeTimeout)),
      options.probeTtl ?? defaults.probeTtl
    )
    // Timeouts are a counter; a check notes when it last saw it move.
    let timeoutsSeen = (yield* pool.stats).timeouts
    let lastTimeoutAt = Number.NEGATIVE_INFINITY

    const check: Effect.Effect<Health> = Effect.gen(function*() {
      const before = yield* pool.stats
      const startedAt = yield* nowMillis
      if (before.draining) {
        return notReady(
          "draining",
          `the pool is draining: ${before.inUse} connection(s) still checked out`,
          pool,
          before,
          startedAt,
          undefined
        )
      }
      if (before.closed) return notReady("down", "the pool is closed", pool, before, startedAt, undefined)
      if (before.paused) {
        return notReady(
          "degraded",
          "the pool is paused after a clear: checkouts fail until it is made ready",
          pool,
          before,
          startedAt,
          undefined
        )
      }
      // The probe runs even when no connection can be made: its checkout is what tries again.
      const probed = probe === undefined ? undefined : yield* probe
      const stats = yield* pool.stats
      const checkedAt = yield* nowMillis
      if (stats.timeouts !== timeoutsSeen) {
        timeoutsSeen = stats.timeouts
        lastTimeoutAt = checkedAt
      }
      const open = stats.idle + stats.inUse
      if (stats.draining || stats.closed) return yield* check
      if (open === 0 && stats.lastConnectError !== undefined) {
        return notReady(
          "down",
          `no connection can be made: ${describeError(stats.lastConnectError)}`,
          pool,
          stats,
          checkedAt,
          probed
        )
      }
      if (probed !== undefined && !probed.ok) {
        return probed.timedOut === true
          ? notReady("degraded", `the probe gave ${probed.error}`, pool, stats, checkedAt, probed)
          : notReady("down", `the probe failed: ${probed.error}`, pool, stats, checkedAt, probed)
      }
      if (stats.waiting > waitingThreshold) {
        return notReady(
          "degraded",
          `${stats.waiting} callers are waiting for a connection (more than ${waitingThreshold})`,
          pool,
          stats,
          checkedAt,
          probed
        )
      }
      if (checkedAt - lastTimeoutAt < timeoutWindow) {
        return notReady(
          "degraded",
          `checkouts timed out within the last ${Duration.format(Duration.millis(timeoutWindow))}`,
          pool,
          stats,
          checkedAt,
          probed
        )
      }
      if (stats.lastConnectError !== undefined) {
        return notReady(
          "degraded",
          `connection set-ups are failing: ${describeError(stats.lastConnectError)}`,
          pool,
          stats,
          checkedAt,
          probed
        )
      }
      return { status: "ready", pool: pool.name, stats, checkedAt, ...(probed === undefined ? {} : { probe: probed }) }
    })

    return { pool: pool.name, check }
  })

/** @internal */
export const isServing = (health: Health): boolean => health.status === "ready" || health.status === "degraded"

/** @internal */
export const toJson = (health: Health): HealthJson => {
  const { stats } = health
  return {
    status: health.status,
    pool: health.pool,
    ...(health.reason === undefined ? {} : { reason: health.reason }),
    checkedAt: new Date(health.checkedAt).toISOString(),
    connections: {
      total: stats.total,
      idle: stats.idle,
      inUse: stats.inUse,
      pending: stats.pending,
      waiting: stats.waiting
    },
    generation: stats.generation,
    timeouts: stats.timeouts,
    ...(stats.lastConnectError === undefined ? {} : { lastConnectError: describeError(stats.lastConnectError) }),
    ...(health.probe === undefined ? {} : {
      probe: {
        ok: health.probe.ok,
        durationMs: health.probe.duration,
        checkedAt: new Date(health.probe.checkedAt).toISOString(),
        ...(health.probe.error === undefined ? {} : { error: health.probe.error })
      }
    })
  }
}
