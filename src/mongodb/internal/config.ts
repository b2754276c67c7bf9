/**
 * Turns `MongoPool.Options` into lifeguard's pool settings and the
 * `MongoClientOptions` the driver gets, with the driver's pool limits derived
 * from lifeguard's; reads them from Effect `Config` for `layerConfig`.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { MongoClientOptions } from "mongodb"
import type { ResolvedOptions, Settings } from "../../PoolConfig.js"
import { config as poolSettingsConfig, defaults as poolDefaults, resolve as resolveSettings } from "../../internal/config.js"
import { PoolConfigError } from "../../PoolError.js"
import type { Options } from "../MongoPool.js"
import { serversOf } from "./errors.js"

/** @internal */
export interface Resolved {
  readonly settings: Settings
  readonly pool: ResolvedOptions
  readonly url: string
  readonly database: string
  /** The hosts, for messages ("127.0.0.1:27017"). */
  readonly servers: string
  readonly driver: MongoClientOptions
  readonly startTimeout: number
  readonly healthCheckInterval: number
  readonly commandSpans: boolean
}

/** @internal */
export const defaultName = "mongodb"

/**
 * The driver options lifeguard sets itself, each from the lifeguard setting
 * named beside it, so the driver never queues behind lifeguard's back.
 *
 * @internal
 */
export const ownedDriverOptions = {
  maxPoolSize: "maxSize",
  minPoolSize: "minIdle",
  maxConnecting: "maxConnecting",
  maxIdleTimeMS: "idleTimeout",
  waitQueueTimeoutMS: "acquireTimeout",
  monitorCommands: "commandSpans"
} as const

/** Every pool setting, named after the core's resolved options. */
const settingKeys = Object.keys(poolDefaults) as ReadonlyArray<keyof Settings>

const millis = (input: Duration.DurationInput | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.decode(input))

/** The database of the connection string's path, if it names one. */
const databaseOf = (url: string): string | undefined => {
  const path = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]*)/.exec(url)?.[1]
  return path === undefined || path === "" ? undefined : decodeURIComponent(path)
}

/** @internal */
export const resolve = (options: Options): Either.Either<Resolved, PoolConfigError> => {
  const settings: Record<string, unknown> = {}
  for (const key of settingKeys) if (options[key] !== undefined) settings[key] = options[key]
  const name = options.name ?? defaultName
  settings.name = name
  const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url

  const problems: Array<string> = []
  const driverOptions = options.driver ?? {}
  for (const [option, setting] of Object.entries(ownedDriverOptions)) {
    if (option in driverOptions || new RegExp(`[?&]${option}=`, "i").test(url)) {
      problems.push(`the driver option ${option} is lifeguard's: set ${setting} instead`)
    }
  }
  if (!/^mongodb(\+srv)?:\/\//.test(url)) problems.push(`url must start with mongodb:// or mongodb+srv://`)
  const startTimeout = millis(options.startTimeout, 30_000)
  const healthCheckInterval = millis(options.healthCheckInterval, 1_000)
  if (!(startTimeout > 0)) problems.push(`startTimeout must be positive`)
  if (!(healthCheckInterval >= 0)) problems.push(`healthCheckInterval must not be negative`)

  const pool = resolveSettings(settings as Settings)
  if (Either.isLeft(pool)) problems.push(...pool.left.problems)
  if (problems.length > 0 || Either.isLeft(pool)) return Either.left(new PoolConfigError({ pool: name, problems }))

  const resolved = pool.right
  // Off by default: the driver's command monitoring and a span per command doubled the client CPU of a `ping`.
  const commandSpans = options.commandSpans ?? false
  const driver: MongoClientOptions = {
    ...driverOptions,
    maxPoolSize: resolved.maxSize,
    minPoolSize: resolved.minIdle,
    maxConnecting: resolved.maxConnecting,
    // 0 is the driver's "never"; lifeguard's is Infinity.
    maxIdleTimeMS: Number.isFinite(resolved.idleTimeout) ? resolved.idleTimeout : 0,
    monitorCommands: commandSpans
  }
  return Either.right({
    settings: settings as Settings,
    pool: resolved,
    url,
    database: options.database ?? databaseOf(url) ?? "test",
    servers: serversOf(url),
    driver,
    startTimeout,
    healthCheckInterval,
    commandSpans
  })
}

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map(Option.getOrUndefined))

/**
 * `MONGODB_URL` (required), `MONGODB_DATABASE`, and pool settings from
 * `MONGODB_POOL_*` (`MONGODB_POOL_MAX_SIZE`, ...).
 *
 * @internal
 */
export const fromEnv: Config.Config<Options> = Config.all({
  url: Config.redacted("MONGODB_URL"),
  database: optional(Config.string("MONGODB_DATABASE")),
  settings: poolSettingsConfig("MONGODB_POOL")
}).pipe(Config.map(({ settings, ...connection }) => ({ ...connection, ...settings })))
