/** @internal */
import * as Config from "effect/Config"
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
    // Duration clamps negative numbers to zero; a negative setting is a mistake worth naming.
    if ((typeof input === "number" || typeof input === "bigint") && input < 0) {
      problems.push(`${key} must not be negative (got ${String(input)})`)
      millis[key] = defaults[key] ?? 0
    } else if (Option.isNone(decoded)) {
      problems.push(`${key} is not a duration: ${JSON.stringify(input)}`)
      millis[key] = defaults[key] ?? 0
    } else {
      millis[key] = Duration.toMillis(decoded.value)
      if (!(millis[key] >= 0)) problems.push(`${key} must not be negative (got ${String(input)})`)
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

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map(Option.getOrUndefined))

/** @internal */
export const config = (prefix?: string): Config.Config<Settings> => {
  const settings = Config.all({
    name: optional(Config.string("NAME")),
    maxSize: optional(Config.integer("MAX_SIZE")),
    minIdle: optional(Config.integer("MIN_IDLE")),
    maxConnecting: optional(Config.integer("MAX_CONNECTING")),
    acquireTimeout: optional(Config.duration("ACQUIRE_TIMEOUT")),
    createTimeout: optional(Config.duration("CREATE_TIMEOUT")),
    idleTimeout: optional(Config.duration("IDLE_TIMEOUT")),
    maxLifetime: optional(Config.duration("MAX_LIFETIME")),
    lifetimeJitter: optional(Config.duration("LIFETIME_JITTER")),
    maxUses: optional(Config.integer("MAX_USES")),
    validateAfterIdle: optional(Config.duration("VALIDATE_AFTER_IDLE")),
    checkTimeout: optional(Config.duration("CHECK_TIMEOUT")),
    leakDetectionThreshold: optional(Config.duration("LEAK_DETECTION_THRESHOLD")),
    traceWaitsOver: optional(Config.duration("TRACE_WAITS_OVER")),
    maxWaiters: optional(Config.integer("MAX_WAITERS")),
    reuse: optional(Config.literal("lifo", "fifo")("REUSE")),
    maintenanceInterval: optional(Config.duration("MAINTENANCE_INTERVAL")),
    drainTimeout: optional(Config.duration("DRAIN_TIMEOUT")),
    startPaused: optional(Config.boolean("START_PAUSED")),
    initializationFailTimeout: optional(Config.duration("INITIALIZATION_FAIL_TIMEOUT"))
  }).pipe(Config.map((all) => {
    const defined: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(all)) if (value !== undefined) defined[key] = value
    return defined as Settings
  }))
  return prefix === undefined ? settings : Config.nested(settings, prefix)
}
