/**
 * Turns `PgPool.Options` into pool settings, a `pg.ClientConfig` and the
 * `PgClientConfig` that `PgClient.config` reports; reads them from Effect
 * `Config` for `layerConfig`.
 *
 * @internal
 */
import type { PgClientConfig } from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type pg from "pg"
import { parse as parseConnectionString } from "pg-connection-string"
import type { Settings } from "../../PoolConfig.js"
import { PoolConfigError } from "../../PoolError.js"
import { config as poolSettingsConfig, defaults, resolve as resolveSettings } from "../../internal/config.js"
import type { Options } from "../PgPool.js"

/** @internal */
export interface Resolved {
  readonly settings: Settings
  readonly client: pg.ClientConfig
  /** Where connections go, for messages ("127.0.0.1:5432/postgres"). */
  readonly describe: string
  readonly applicationName: string
  readonly sessionSettings: ReadonlyArray<readonly [string, string]>
  readonly pgClientConfig: PgClientConfig
}

const secret = (value: string | Redacted.Redacted | undefined): string | undefined =>
  value === undefined ? undefined : Redacted.isRedacted(value) ? Redacted.value(value) : value

/** Every core setting, so a new one reaches the pool without being listed here. */
const settingKeys = Object.keys(defaults) as ReadonlyArray<keyof Settings>

/** @internal */
export const defaultName = "pg"

/** Set by `fromEnv`: problems then name the variable a value came from. */
const fromEnvironment = Symbol.for("lifeguard/pg/fromEnvironment")

const schemes = new Set(["postgres:", "postgresql:"])

/** The url with any password masked, for messages. */
export const withoutPassword = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")

/** What is wrong with a connection url, if anything. */
const urlProblem = (url: string): string | undefined => {
  if (url.trim() === "") return "is empty"
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*:)/.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined || !schemes.has(scheme)) {
    return `must start with postgres:// or postgresql:// (got ${JSON.stringify(withoutPassword(url))})`
  }
  try {
    new URL(url)
  } catch {
    const port = /^[^:]+:\/\/[^/?#]*:(\d+)(?:[/?#]|$)/.exec(url)?.[1]
    return port !== undefined && Number(port) > 65535
      ? `has port ${port}; a port is a whole number from 1 to 65535`
      : `is not a valid URL (postgres://user:password@host:port/database): ${JSON.stringify(withoutPassword(url))}`
  }
  return undefined
}

const validPort = (port: number) => Number.isInteger(port) && port >= 1 && port <= 65535

/** @internal */
export const resolve = (options: Options): Either.Either<Resolved, PoolConfigError> => {
  const env = (options as { readonly [fromEnvironment]?: boolean })[fromEnvironment] === true
  const label = (option: string, variable: string) => env ? variable : option
  const problems: Array<string> = []
  const settings: Record<string, unknown> = {}
  // @effect/sql-pg's names, so a PgClientConfig works unchanged; lifeguard's names win.
  if (options.maxConnections !== undefined) settings.maxSize = options.maxConnections
  if (options.minConnections !== undefined) settings.minIdle = options.minConnections
  if (options.connectTimeout !== undefined) settings.createTimeout = options.connectTimeout
  if (options.connectionTTL !== undefined) settings.maxLifetime = options.connectionTTL
  for (const key of settingKeys) if (options[key] !== undefined) settings[key] = options[key]
  const name = options.name ?? defaultName
  settings.name = name
  // On by default, as PgClient.layer fails at build when the server is down; a paused pool opens nothing.
  if (options.initializationFailTimeout === false) delete settings.initializationFailTimeout
  else if (options.initializationFailTimeout === undefined && settings.startPaused !== true) {
    settings.initializationFailTimeout = settings.createTimeout ?? defaults.createTimeout
  }

  const url = secret(options.url)
  const problem = url === undefined ? undefined : urlProblem(url)
  if (problem !== undefined) problems.push(`${label("url", "DATABASE_URL")} ${problem}`)
  const parsed = url === undefined || problem !== undefined ? undefined : parseConnectionString(url)
  // As in pg itself, what the url says wins over the separate fields.
  const host = parsed?.host || options.host || process.env.PGHOST || "localhost"
  const checkPort = (port: number, what: string) => {
    if (!validPort(port)) problems.push(`${what} must be a whole number from 1 to 65535 (got ${port})`)
    return port
  }
  const port = parsed?.port
    ? checkPort(Number(parsed.port), "the url's port")
    : options.port !== undefined
    ? checkPort(options.port, label("port", "PGPORT"))
    : process.env.PGPORT
    ? checkPort(Number(process.env.PGPORT), "PGPORT")
    : 5432
  const database = parsed?.database ?? options.database ?? undefined
  const username = parsed?.user || options.username || undefined
  const password = parsed?.password || secret(options.password) || undefined
  const applicationName = options.applicationName ?? name

  // The pool's own checks, so one error lists every problem.
  const core = resolveSettings(settings as Settings)
  if (Either.isLeft(core)) problems.push(...core.left.problems)
  if (problems.length > 0) return Either.left(new PoolConfigError({ pool: name, problems }))

  const client: pg.ClientConfig = {
    ...(url === undefined ? {} : { connectionString: url }),
    host,
    port,
    ...(database === undefined ? {} : { database }),
    ...(username === undefined ? {} : { user: username }),
    ...(password === undefined ? {} : { password }),
    ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
    ...(options.stream === undefined ? {} : { stream: options.stream }),
    ...(options.types === undefined ? {} : { types: options.types }),
    application_name: applicationName
  }

  const sessionSettings = Object.entries(options.sessionSettings ?? {}).map(
    ([key, value]) => [key, String(value)] as const
  )

  return Either.right({
    settings: settings as Settings,
    client,
    describe: `${host}:${port}/${database ?? username ?? "postgres"}`,
    applicationName,
    sessionSettings,
    pgClientConfig: {
      url: url === undefined ? undefined : Redacted.make(url),
      host,
      port,
      database,
      username,
      password: password === undefined ? undefined : Redacted.make(password),
      ssl: options.ssl,
      stream: options.stream,
      idleTimeout: options.idleTimeout,
      connectTimeout: options.createTimeout ?? options.connectTimeout,
      maxConnections: options.maxSize ?? options.maxConnections,
      minConnections: options.minIdle ?? options.minConnections,
      connectionTTL: options.maxLifetime ?? options.connectionTTL,
      applicationName,
      spanAttributes: options.spanAttributes,
      transformResultNames: options.transformResultNames,
      transformQueryNames: options.transformQueryNames,
      transformJson: options.transformJson,
      types: options.types
    }
  })
}

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map(Option.getOrUndefined))

/**
 * Connection settings from the environment: `DATABASE_URL`, else the libpq
 * variables `PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`,
 * `PGAPPNAME`; pool settings from `PG_POOL_*` (`PG_POOL_MAX_SIZE`, ...).
 *
 * @internal
 */
export const fromEnv: Config.Config<Options> = Config.all({
  url: optional(Config.redacted("DATABASE_URL")),
  host: optional(Config.string("PGHOST")),
  database: optional(Config.string("PGDATABASE")),
  username: optional(Config.string("PGUSER")),
  password: optional(Config.redacted("PGPASSWORD")),
  applicationName: optional(Config.string("PGAPPNAME")),
  // An integer, not Config.port: a port out of range is one of the PoolConfigError's problems.
  port: optional(Config.integer("PGPORT")),
  settings: poolSettingsConfig("PG_POOL")
}).pipe(Config.map(({ settings, ...connection }) => ({ ...connection, ...settings, [fromEnvironment]: true })))
