/**
 * Turns `PgPool.Options` into pool settings, a `pg.ClientConfig` and the
 * `PgClientConfig` that `PgClient.config` reports; reads them from Effect
 * `Config` for `layerConfig`.
 *
 * @internal
 */
import type { PgClientConfig } from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type pg from "pg"
import { parse as parseConnectionString } from "pg-connection-string"
import type { Settings } from "../../PoolConfig.js"
import { config as poolSettingsConfig } from "../../internal/config.js"
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

const settingKeys = [
  "name",
  "maxSize",
  "minIdle",
  "maxConnecting",
  "acquireTimeout",
  "createTimeout",
  "idleTimeout",
  "maxLifetime",
  "lifetimeJitter",
  "maxUses",
  "validateAfterIdle",
  "checkTimeout",
  "leakDetectionThreshold",
  "maxWaiters",
  "reuse",
  "maintenanceInterval",
  "drainTimeout",
  "startPaused"
] as const satisfies ReadonlyArray<keyof Settings>

/** @internal */
export const defaultName = "pg"

/** @internal */
export const resolve = (options: Options): Resolved => {
  const settings: Record<string, unknown> = {}
  // @effect/sql-pg's names, so a PgClientConfig works unchanged; lifeguard's names win.
  if (options.maxConnections !== undefined) settings.maxSize = options.maxConnections
  if (options.minConnections !== undefined) settings.minIdle = options.minConnections
  if (options.connectTimeout !== undefined) settings.createTimeout = options.connectTimeout
  if (options.connectionTTL !== undefined) settings.maxLifetime = options.connectionTTL
  for (const key of settingKeys) if (options[key] !== undefined) settings[key] = options[key]
  const name = options.name ?? defaultName
  settings.name = name

  const url = secret(options.url)
  const parsed = url === undefined ? undefined : parseConnectionString(url)
  // As in pg itself, what the url says wins over the separate fields.
  const host = parsed?.host ?? options.host ?? process.env.PGHOST ?? "localhost"
  const port = (parsed?.port ? Number(parsed.port) : undefined) ?? options.port ??
    (process.env.PGPORT ? Number(process.env.PGPORT) : 5432)
  const database = parsed?.database ?? options.database ?? undefined
  const username = parsed?.user ?? options.username ?? undefined
  const password = parsed?.password ?? secret(options.password) ?? undefined
  const applicationName = options.applicationName ?? name

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

  return {
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
  }
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
  port: optional(Config.port("PGPORT")),
  database: optional(Config.string("PGDATABASE")),
  username: optional(Config.string("PGUSER")),
  password: optional(Config.redacted("PGPASSWORD")),
  applicationName: optional(Config.string("PGAPPNAME")),
  settings: poolSettingsConfig("PG_POOL")
}).pipe(Config.map(({ settings, ...connection }) => ({ ...connection, ...settings })))
