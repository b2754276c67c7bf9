/** @internal */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { ResolvedOptions, Settings } from "../PoolConfig.js"
import { PoolConfigError } from "../PoolError.js"

/** @internal */
export const defaults: ResolvedOptions = {
  name: "default",
  maxSize: 10,
  minIdle: 0,
  maxConnecting: 2,
  acquireTimeout: 30_000,
  createTimeout: 10_000,
  idleTimeout: 600_000,
  maxLifetime: 1_800_000,
  lifetimeJitter: 60_000,
  maxUses: Number.POSITIVE_INFINITY,
  validateAfterIdle: 1_000,
  checkTimeout: 5_000,
  leakDetectionThreshold: Number.POSITIVE_INFINITY,
  traceWaitsOver: 10,
  maxWaiters: Number.POSITIVE_INFINITY,
  reuse: "lifo",
  maintenanceInterval: 10_000,
  drainTimeout: 30_000,
  startPaused: false,
  initializationFailTimeout: undefined
}

const durationKeys = [
  "acquireTimeout",
  "createTimeout",
  "idleTimeout",
  "maxLifetime",
  "lifetimeJitter",
  "validateAfterIdle",
  "checkTimeout",
  "leakDetectionThreshold",
  "traceWaitsOver",
  "maintenanceInterval",
  "drainTimeout",
  "initializationFailTimeout"
] as const

/** @internal */
export const resolve = (settings: Settings): Either.Either<ResolvedOptions, PoolConfigError> => {
  const problems: Array<string> = []
  const name = settings.name ?? defaults.name
  if (name.length === 0) problems.push("name must not be empty")

  const millis = {} as Record<typeof durationKeys[number], number>
  for (const key of durationKeys) {
    const input = settings[key]
    if (input === undefined) {
      millis[key] = defaults[key] ?? 0
      continue
    }
    const decoded = Duration.decodeUnknown(input)
    if (isNegative(input)) {
      problems.push(`${key} must not be negative (got ${String(input)})`)
      millis[key] = defaults[key] ?? 0
    } else if (Option.isNone(decoded)) {
      problems.push(`${key} is not a duration: ${JSON.stringify(input)}`)
      millis[key] = defaults[key] ?? 0
    } else {
      millis[key] = Duration.toMillis(decoded.value)
    }
  }

  const count = (key: "maxSize" | "minIdle" | "maxConnecting" | "maxUses" | "maxWaiters", min: number) => {
    const value = settings[key] ?? defaults[key]
    const whole = Number.isInteger(value) || value === Number.POSITIVE_INFINITY
    if (!whole || value < min) problems.push(`${key} must be a whole number of at least ${min} (got ${value})`)
    return value
  }
  const maxSize = count("maxSize", 1)
  const minIdle = count("minIdle", 0)
  const maxConnecting = count("maxConnecting", 1)
  const maxUses = count("maxUses", 1)
  const maxWaiters = count("maxWaiters", 0)
  if (maxSize === Number.POSITIVE_INFINITY) problems.push("maxSize must be finite")
  if (minIdle > maxSize) problems.push(`minIdle (${minIdle}) must not exceed maxSize (${maxSize})`)
  if (millis.acquireTimeout === 0) problems.push("acquireTimeout must be greater than zero")
  if (millis.createTimeout === 0) problems.push("createTimeout must be greater than zero")
  if (millis.maintenanceInterval === 0) problems.push("maintenanceInterval must be greater than zero")
  const reuse = settings.reuse ?? defaults.reuse
  if (reuse !== "lifo" && reuse !== "fifo") problems.push(`reuse must be "lifo" or "fifo" (got ${String(reuse)})`)

  if (problems.length > 0) return Either.left(new PoolConfigError({ pool: name, problems }))
  return Either.right({
    ...millis,
    // Jitter never takes more than a quarter of a connection's lifetime.
    lifetimeJitter: Math.min(millis.lifetimeJitter, millis.maxLifetime / 4),
    name,
    maxSize,
    minIdle,
    maxConnecting,
    maxUses,
    maxWaiters,
    reuse,
    startPaused: settings.startPaused ?? defaults.startPaused,
    initializationFailTimeout: settings.initializationFailTimeout === undefined ? undefined : millis.initializationFailTimeout
  })
}

/**
 * Duration decodes every negative input (`-5`, `"-5 seconds"`, `[-5, 0]`) to
 * zero, which would silently turn a timeout off or make it instant: a negative
 * setting is a mistake worth naming.
 *
 * @internal
 */
export const isNegative = (input: unknown): boolean => {
  if (typeof input === "number" || typeof input === "bigint") return input < 0
  if (typeof input === "string") return Number(input.trim().split(/\s+/)[0]) < 0
  if (Array.isArray(input) && input.length === 2 && typeof input[0] === "number" && typeof input[1] === "number") {
    return input[0] * 1e9 + input[1] < 0
  }
  return false
}

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map(Option.getOrUndefined))

/**
 * Like `Config.duration`, but a negative value is an error at its variable
 * rather than zero, and `Infinity` turns the setting off.
 */
const duration = (name: string): Config.Config<Duration.Duration> =>
  Config.mapOrFail(Config.string(name), (text) => {
    if (text.trim() === "Infinity") return Either.right(Duration.infinity)
    if (isNegative(text)) return Either.left(ConfigError.InvalidData([], `Expected a duration of at least zero but received ${text}`))
    return Either.fromOption(
      Duration.decodeUnknown(text),
      () => ConfigError.InvalidData([], `Expected a duration such as "5 seconds" but received ${text}`)
    )
  })

/** @internal */
export const config = (prefix?: string): Config.Config<Settings> => {
  // Flat names rather than Config.nested: a ConfigError's path is then the variable a user sets
  // (DB_POOL_MAX_SIZE), not DB_POOL.MAX_SIZE.
  const v = (key: string) => prefix === undefined ? key : `${prefix}_${key}`
  return Config.all({
    name: optional(Config.string(v("NAME"))),
    maxSize: optional(Config.integer(v("MAX_SIZE"))),
    minIdle: optional(Config.integer(v("MIN_IDLE"))),
    maxConnecting: optional(Config.integer(v("MAX_CONNECTING"))),
    acquireTimeout: optional(duration(v("ACQUIRE_TIMEOUT"))),
    createTimeout: optional(duration(v("CREATE_TIMEOUT"))),
    idleTimeout: optional(duration(v("IDLE_TIMEOUT"))),
    maxLifetime: optional(duration(v("MAX_LIFETIME"))),
    lifetimeJitter: optional(duration(v("LIFETIME_JITTER"))),
    maxUses: optional(Config.integer(v("MAX_USES"))),
    validateAfterIdle: optional(duration(v("VALIDATE_AFTER_IDLE"))),
    checkTimeout: optional(duration(v("CHECK_TIMEOUT"))),
    leakDetectionThreshold: optional(duration(v("LEAK_DETECTION_THRESHOLD"))),
    traceWaitsOver: optional(duration(v("TRACE_WAITS_OVER"))),
    maxWaiters: optional(Config.integer(v("MAX_WAITERS"))),
    reuse: optional(Config.literal("lifo", "fifo")(v("REUSE"))),
    maintenanceInterval: optional(duration(v("MAINTENANCE_INTERVAL"))),
    drainTimeout: optional(duration(v("DRAIN_TIMEOUT"))),
    startPaused: optional(Config.boolean(v("START_PAUSED"))),
    initializationFailTimeout: optional(duration(v("INITIALIZATION_FAIL_TIMEOUT")))
  }).pipe(Config.map((all) => {
    const defined: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(all)) if (value !== undefined) defined[key] = value
    return defined as Settings
  }))
}
