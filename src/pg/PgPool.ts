/**
 * PostgreSQL through a lifeguard pool of `pg` connections, served as the
 * @effect/sql `SqlClient` and the @effect/sql-pg `PgClient`: swap
 * `PgClient.layer` for `PgPool.layer` and every `sql` statement stays as it
 * is, compiled by @effect/sql-pg's own compiler, while checkouts gain
 * lifeguard's timeouts, fair waiters, generations, events and metrics.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 * import { PgPool } from "lifeguard/pg"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT 1 AS one`
 * })
 *
 * program.pipe(
 *   Effect.provide(PgPool.layer({ url: "postgres://postgres@127.0.0.1:5432/postgres", maxSize: 10 })),
 *   Effect.runPromise
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Duplex } from "node:stream"
import type { ConnectionOptions as TlsOptions } from "node:tls"
import type pg from "pg"
import type { Pool } from "../Pool.js"
import type { Settings } from "../PoolConfig.js"
import type { ConnectTimeoutError, PoolConfigError, PoolError } from "../PoolError.js"
import type { PoolEvent } from "../PoolEvent.js"
import * as internal from "./internal/client.js"
import * as config from "./internal/config.js"
import * as errors from "./internal/errors.js"

/**
 * Where and how to connect. `url` wins over the separate fields, as in `pg`;
 * unset fields fall back to the `PG*` environment variables, as in `pg`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionOptions {
  readonly url?: string | Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly username?: string | undefined
  readonly password?: string | Redacted.Redacted | undefined
  readonly ssl?: boolean | TlsOptions | undefined
  /** A socket factory, as `pg`'s `stream` option. */
  readonly stream?: (() => Duplex) | undefined
  /** Shown in `pg_stat_activity.application_name`. Default: the pool's name. */
  readonly applicationName?: string | undefined
  /** Session settings applied to every new connection (`SET key = value`), e.g. `{ statement_timeout: "5s" }`. */
  readonly sessionSettings?: Readonly<Record<string, string | number | boolean>> | undefined
  readonly types?: pg.CustomTypesConfig | undefined
}

/**
 * The pool's {@link Settings}, each also accepting `undefined`.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolSettings = { readonly [K in keyof Settings]?: Settings[K] | undefined }

/**
 * Everything `PgPool.layer` takes. The pool settings are lifeguard's
 * (`maxSize`, `acquireTimeout`, `validateAfterIdle`, ...; the pool's `name`
 * defaults to `"pg"`); `checkTimeout` also bounds how long an interrupted
 * query may take to stop after its cancel. @effect/sql-pg's names
 * (`maxConnections`, `minConnections`, `connectTimeout`, `connectionTTL`,
 * `idleTimeout`) are accepted too, so a `PgClientConfig` works unchanged.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends ConnectionOptions, Omit<PoolSettings, "initializationFailTimeout"> {
  /**
   * The start-up check: building the layer opens `max(1, minIdle)` connections
   * and fails with the set-up error if it cannot within this long, as
   * `PgClient.layer` fails when the server is down. Default: `createTimeout`
   * (10 seconds, or `connectTimeout`); off for a pool that starts paused;
   * `false` turns it off.
   */
  readonly initializationFailTimeout?: Duration.DurationInput | false | undefined
  /**
   * Whether retrying can fix a set-up error. Default {@link isRetryable}: an
   * authentication failure, a missing database, a rejected session setting
   * or a host name that does not resolve fail every waiting checkout at once.
   */
  readonly isRetryable?: ((error: SqlError) => boolean) | undefined
  /** How failed set-ups are retried (the core's `retrySchedule`). Default: exponential from 100 ms, capped at 5 s, jittered. */
  readonly retrySchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Run `DISCARD ALL` on every returned connection, dropping session state (prepared statements, temp tables, settings). Default false. */
  readonly discardOnReturn?: boolean | undefined
  /** Called synchronously for every pool event. */
  readonly onEvent?: ((event: PoolEvent) => void) | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** @effect/sql-pg's name for `maxSize`. */
  readonly maxConnections?: number | undefined
  /** @effect/sql-pg's name for `minIdle`. */
  readonly minConnections?: number | undefined
  /** @effect/sql-pg's name for `createTimeout`. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** @effect/sql-pg's name for `maxLifetime`. */
  readonly connectionTTL?: Duration.DurationInput | undefined
}

/**
 * The `PgClient` a `PgPool` serves, with the pool behind it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgPoolClient extends PgClient.PgClient {
  readonly pool: Pool<pg.Client, SqlError>
}

/**
 * The lifeguard pool behind a `PgPool` layer: read `stats`, follow `events`,
 * `clear` it. Connections taken from it directly are plain `pg.Client`s;
 * whoever takes one leaves it as they found it.
 *
 * @since 0.1.0
 * @category tags
 */
export class PgPool extends Context.Tag("lifeguard/pg/PgPool")<PgPool, Pool<pg.Client, SqlError>>() {}

/**
 * Makes the pool and its client in the current scope; closing the scope
 * drains the pool. Building connects (see `initializationFailTimeout`) and
 * fails with the set-up error when the server cannot be used, as
 * `PgClient.layer` does; with `initializationFailTimeout: false` it does not
 * connect, and an application can start while the server is away.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<
  PgPoolClient,
  PoolConfigError | SqlError | ConnectTimeoutError,
  Scope.Scope | Reactivity.Reactivity
> = internal.make

/**
 * Provides `SqlClient`, `PgClient` and {@link PgPool}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<PgPool | PgClient.PgClient | SqlClient.SqlClient, PoolConfigError | SqlError | ConnectTimeoutError> =>
  Layer.scopedContext(Effect.map(make(options), toContext)).pipe(Layer.provide(Reactivity.layer))

/**
 * Connection settings from the environment: `DATABASE_URL`, else `PGHOST`,
 * `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGAPPNAME`; pool settings
 * from `PG_POOL_MAX_SIZE`, `PG_POOL_ACQUIRE_TIMEOUT` ("5 seconds"), ... (see
 * `PoolConfig.config`). Every one is optional.
 *
 * @since 0.1.0
 * @category config
 */
export const configFromEnv: Config.Config<Options> = config.fromEnv

/**
 * Like {@link layer}, with the options read from Effect `Config`; by default
 * {@link configFromEnv}.
 *
 * @example
 * ```ts
 * PgPool.layerConfig({ url: Config.redacted("DATABASE_URL"), maxSize: Config.succeed(20) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = configFromEnv
): Layer.Layer<
  PgPool | PgClient.PgClient | SqlClient.SqlClient,
  PoolConfigError | ConfigError.ConfigError | SqlError | ConnectTimeoutError
> =>
  Layer.scopedContext(Effect.map(Effect.flatMap(Config.unwrap(options), make), toContext)).pipe(
    Layer.provide(Reactivity.layer)
  )

const toContext = (client: PgPoolClient) =>
  Context.make(PgPool, client.pool).pipe(
    Context.add(PgClient.PgClient, client),
    Context.add(SqlClient.SqlClient, client)
  )

/**
 * The default `isRetryable` of a `PgPool`: false for set-up errors that every
 * attempt would meet again (SQLSTATE class 28, an authentication failure;
 * 3D000, a database that does not exist; a session setting the server
 * rejects; a host name that still does not resolve on a second lookup), true
 * for the rest. Compose your own with it:
 * `isRetryable: (error) => PgPool.isRetryable(error) && !isMaintenance(error)`.
 *
 * @since 0.1.0
 * @category errors
 */
export const isRetryable: (error: SqlError) => boolean = errors.isRetryable

/**
 * The pool's own error when a statement failed because it got no
 * connection (`PoolTimeoutError`, `PoolClosedError`, ...), carried as the
 * `cause` of the `SqlError` that statements fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export const poolError = (error: SqlError): Option.Option<PoolError> => {
  const cause = error.cause
  return typeof cause === "object" && cause !== null && "_tag" in cause && poolErrorTags.has(cause._tag as string)
    ? Option.some(cause as PoolError)
    : Option.none()
}

const poolErrorTags = new Set([
  "PoolTimeoutError",
  "PoolClosedError",
  "PoolClearedError",
  "PoolWaitQueueFullError",
  "ConnectTimeoutError"
])
