/**
 * MongoDB through lifeguard: the `mongodb` driver keeps its sockets (one
 * `MongoClient` per layer, its pool limits derived from lifeguard's), and
 * lifeguard hands out leases in front of it: Scope-managed, fair FIFO
 * admission, one deadline per checkout, interruption that stops the
 * operation, drain, health, and the same events and metrics as every other
 * lifeguard pool.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { MongoPool } from "lifeguard/mongodb"
 *
 * const users = MongoPool.collection("users")
 *
 * const program = Effect.gen(function*() {
 *   yield* users.insertOne({ _id: 1, name: "Ada" })
 *   return yield* users.findOne({ _id: 1 })
 * })
 *
 * program.pipe(
 *   Effect.provide(MongoPool.layer({ url: "mongodb://127.0.0.1:27017/app", maxSize: 10 })),
 *   Effect.runPromise
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type {
  AggregateOptions,
  BulkWriteOptions,
  ClientSession,
  CountDocumentsOptions,
  Db,
  DeleteOptions,
  DeleteResult,
  Document,
  FindOptions,
  InsertManyResult,
  InsertOneOptions,
  InsertOneResult,
  MongoClient,
  MongoClientOptions,
  TransactionOptions,
  UpdateFilter,
  UpdateOptions,
  UpdateResult
} from "mongodb"
import type { Pool } from "../Pool.js"
import type * as PoolHealth from "../PoolHealth.js"
import type { Settings } from "../PoolConfig.js"
import type { ConnectTimeoutError, PoolConfigError, PoolError } from "../PoolError.js"
import type { PoolEvent } from "../PoolEvent.js"
import * as internal from "./internal/client.js"
import * as collectionInternal from "./internal/collection.js"
import * as config from "./internal/config.js"
import * as errors from "./internal/errors.js"
import type { MongoConnectError, MongoError, MongoUnavailableError, MongoUnsupportedError } from "./MongoError.js"

/**
 * The pool's {@link Settings}, each also accepting `undefined`.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolSettings = { readonly [K in keyof Settings]?: Settings[K] | undefined }

/**
 * Everything `MongoPool.layer` takes. The pool settings are lifeguard's
 * (`maxSize`, `acquireTimeout`, ...; the pool's `name` defaults to
 * `"mongodb"`); the driver is given `maxPoolSize = maxSize`,
 * `minPoolSize = minIdle`, `maxConnecting = maxConnecting` and
 * `maxIdleTimeMS = idleTimeout`, so it never queues behind lifeguard's back.
 * `checkTimeout` also bounds how long an interrupted operation may take to
 * settle.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends PoolSettings {
  /** A `mongodb://` or `mongodb+srv://` connection string. */
  readonly url: string | Redacted.Redacted
  /** The database leases' `db` is. Default: the connection string's path, else `"test"`. */
  readonly database?: string | undefined
  /**
   * Driver options, passed through, except those lifeguard owns (`maxPoolSize`,
   * `minPoolSize`, `maxConnecting`, `maxIdleTimeMS`, `waitQueueTimeoutMS`,
   * `monitorCommands`): setting one here or in the url is a `PoolConfigError`.
   */
  readonly driver?: MongoClientOptions | undefined
  /** How long building the layer may take to reach a server. Default 30 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
  /** How long the health probe's `ping` is reused before the next. Default 1 second; 0 pings every time. */
  readonly healthCheckInterval?: Duration.DurationInput | undefined
  /**
   * A span per driver command (`db.system = mongodb`), under the span of the
   * operation that sent it. Default false: it turns on the driver's command
   * monitoring, which with the spans about doubled the client CPU of a `ping`.
   */
  readonly commandSpans?: boolean | undefined
  /** Called synchronously for every event, lifeguard's and the driver's. */
  readonly onEvent?: ((event: MongoPoolEvent) => void) | undefined
}

/**
 * What a checkout yields. `session` is the lease's own `ClientSession`,
 * started on first use and ended when the lease ends; `signal` fires when
 * the fiber running an operation on the lease is interrupted (read it for
 * each call: after it fired, the next call gets a fresh one). Keep nothing
 * of a lease after it was returned: the next checkout reuses it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly client: MongoClient
  readonly db: Db
  readonly session: ClientSession
  readonly signal: AbortSignal
}

/**
 * One of the driver's CMAP events as lifeguard reports it: the same event,
 * under the same name, as a lifeguard pool's, plus the server's `address`.
 *
 * @since 0.1.0
 * @category models
 */
export type DriverEvent = PoolEvent & { readonly address: string }

/**
 * lifeguard's events about leases, and the driver's about its sockets
 * (those carry `address`).
 *
 * @since 0.1.0
 * @category models
 */
export type MongoPoolEvent = PoolEvent | DriverEvent

/**
 * What the server does beyond CRUD, asked once at start-up. FerretDB 1.24
 * has neither.
 *
 * @since 0.1.0
 * @category models
 */
export interface Capabilities {
  /** A replica set or a sharded cluster. */
  readonly transactions: boolean
  /** Interrupted operations are also killed on the server. */
  readonly killSessions: boolean
}

/**
 * The service a `MongoPool` layer provides.
 *
 * @since 0.1.0
 * @category models
 */
export interface MongoPoolClient {
  readonly name: string
  /** The lifeguard pool of leases: `stats`, `clear`, `events` of the leases alone. */
  readonly pool: Pool<Lease, MongoUnavailableError>
  readonly client: MongoClient
  readonly db: Db
  readonly capabilities: Capabilities
  /** Checks out a lease; closing the scope returns it. */
  readonly get: Effect.Effect<Lease, PoolError | MongoUnavailableError, Scope.Scope>
  /** Checks out a lease for the duration of `f`. */
  readonly use: <A, E, R>(
    f: (lease: Lease) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PoolError | MongoUnavailableError, R>
  /** See {@link promise}. */
  readonly promise: <A>(
    f: (db: Db, lease: Lease) => Promise<A>,
    operation?: string
  ) => Effect.Effect<A, MongoError | PoolError | MongoUnavailableError>
  /** See {@link withLease}. */
  readonly withLease: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PoolError | MongoUnavailableError, R>
  /** See {@link withTransaction}. */
  readonly withTransaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: TransactionOptions
  ) => Effect.Effect<A, E | MongoError | MongoUnsupportedError | PoolError | MongoUnavailableError, R>
  /** The core's health check (`PoolHealth`) of the lease pool, probing with a `ping` cached for `healthCheckInterval`; the ping takes no lease. */
  readonly health: Effect.Effect<PoolHealth.Health>
  /** The same check as a `PoolHealth.HealthCheck`, for `lifeguard/http`'s readiness route. */
  readonly healthCheck: PoolHealth.HealthCheck
  /** Every event from now on, lifeguard's and the driver's; ends when the layer closes. */
  readonly events: Stream.Stream<MongoPoolEvent>
  /** The driver's connections by server and state, as its events reported them. */
  readonly driverConnections: Effect.Effect<
    ReadonlyArray<{ readonly address: string; readonly idle: number; readonly inUse: number; readonly pending: number }>
  >
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class MongoPool extends Context.Tag("lifeguard/mongodb/MongoPool")<MongoPool, MongoPoolClient>() {}

/**
 * The lease `withLease` and `withTransaction` blocks run on; {@link promise}
 * and {@link collection} use it when it is there.
 *
 * @since 0.1.0
 * @category tags
 */
export class CurrentLease extends Context.Tag("lifeguard/mongodb/CurrentLease")<CurrentLease, Lease>() {}

/**
 * Connects one `MongoClient` and makes the lease pool in the current scope;
 * closing the scope drains the pool, then closes the client. Fails with
 * `MongoConnectError` when no server answers within `startTimeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<
  MongoPoolClient,
  PoolConfigError | MongoConnectError | MongoUnavailableError | ConnectTimeoutError,
  Scope.Scope
> = internal.make

/**
 * Provides {@link MongoPool}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<MongoPool, PoolConfigError | MongoConnectError | MongoUnavailableError | ConnectTimeoutError> =>
  Layer.scoped(MongoPool, make(options))

/**
 * `MONGODB_URL` (required), `MONGODB_DATABASE`, and pool settings from
 * `MONGODB_POOL_MAX_SIZE`, `MONGODB_POOL_ACQUIRE_TIMEOUT` ("5 seconds"), ...
 * (see `PoolConfig.config`).
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
 * MongoPool.layerConfig({ url: Config.redacted("MONGODB_URL"), database: Config.succeed("app") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = configFromEnv
): Layer.Layer<
  MongoPool,
  PoolConfigError | MongoConnectError | MongoUnavailableError | ConnectTimeoutError | ConfigError.ConfigError
> =>
  Layer.scoped(MongoPool, Effect.flatMap(Config.unwrap(options), make))

/**
 * Runs one driver call as an Effect, on the current lease (inside
 * {@link withLease} or {@link withTransaction}) or on a lease of its own.
 * Pass the lease's `session` and `signal` to the driver: interrupting the
 * fiber then aborts the call (and kills it on the server where
 * `killSessions` works), and the lease returns only once the call settled.
 *
 * @example
 * ```ts
 * MongoPool.promise((db, { session, signal }) => db.collection("users").findOne({ _id: 1 }, { session, signal }))
 * ```
 *
 * @since 0.1.0
 * @category operations
 */
export const promise = <A>(
  f: (db: Db, lease: Lease) => Promise<A>,
  operation?: string
): Effect.Effect<A, MongoError | PoolError | MongoUnavailableError, MongoPool> =>
  Effect.flatMap(MongoPool, (mongo) => mongo.promise(f, operation))

/**
 * Runs `effect` on one lease (a unit of work: the pooler's "session" mode);
 * every operation inside uses it.
 *
 * @since 0.1.0
 * @category operations
 */
export const withLease = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PoolError | MongoUnavailableError, R | MongoPool> =>
  Effect.flatMap(MongoPool, (mongo) => mongo.withLease(effect))

/**
 * Runs `effect` in a transaction on one lease's session: committed when it
 * succeeds, aborted when it fails or is interrupted. The checkout is subject
 * to `acquireTimeout` like any other; nested calls join the outer
 * transaction. Fails with `MongoUnsupportedError` on a server without
 * transactions (a standalone server, FerretDB). It does not retry on
 * `TransientTransactionError`: the error says `retryable`.
 *
 * @since 0.1.0
 * @category operations
 */
export const withTransaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: TransactionOptions
): Effect.Effect<A, E | MongoError | MongoUnsupportedError | PoolError | MongoUnavailableError, R | MongoPool> =>
  Effect.flatMap(MongoPool, (mongo) => mongo.withTransaction(effect, options))

/**
 * The pool's health (`PoolHealth.Health`: `ready`, `degraded`, `draining` or
 * `down`), with a `ping` cached for `healthCheckInterval` as its probe.
 *
 * @since 0.1.0
 * @category operations
 */
export const health: Effect.Effect<PoolHealth.Health, never, MongoPool> = Effect.flatMap(
  MongoPool,
  (mongo) => mongo.health
)

/**
 * A filter, as the driver takes it for an untyped collection.
 *
 * @since 0.1.0
 * @category models
 */
export type Query = Document

/**
 * The errors of a collection call.
 *
 * @since 0.1.0
 * @category models
 */
export type CollectionError = MongoError | PoolError | MongoUnavailableError

/**
 * The common calls on one collection, as Effects on the current lease or a
 * lease of their own. With a `Schema`, documents read are decoded with it and
 * documents written are encoded with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Collection<A> {
  readonly name: string
  readonly find: (
    filter?: Query,
    options?: FindOptions
  ) => Effect.Effect<ReadonlyArray<A>, CollectionError | ParseResult.ParseError, MongoPool>
  readonly findOne: (
    filter: Query,
    options?: FindOptions
  ) => Effect.Effect<Option.Option<A>, CollectionError | ParseResult.ParseError, MongoPool>
  readonly insertOne: (
    doc: A,
    options?: InsertOneOptions
  ) => Effect.Effect<InsertOneResult, CollectionError | ParseResult.ParseError, MongoPool>
  readonly insertMany: (
    docs: ReadonlyArray<A>,
    options?: BulkWriteOptions
  ) => Effect.Effect<InsertManyResult, CollectionError | ParseResult.ParseError, MongoPool>
  readonly updateOne: (
    filter: Query,
    update: UpdateFilter<Document> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult, CollectionError, MongoPool>
  readonly updateMany: (
    filter: Query,
    update: UpdateFilter<Document> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult, CollectionError, MongoPool>
  readonly deleteOne: (filter: Query, options?: DeleteOptions) => Effect.Effect<DeleteResult, CollectionError, MongoPool>
  readonly deleteMany: (filter?: Query, options?: DeleteOptions) => Effect.Effect<DeleteResult, CollectionError, MongoPool>
  readonly aggregate: (
    pipeline: ReadonlyArray<Document>,
    options?: AggregateOptions
  ) => Effect.Effect<ReadonlyArray<Document>, CollectionError, MongoPool>
  readonly countDocuments: (
    filter?: Query,
    options?: CountDocumentsOptions
  ) => Effect.Effect<number, CollectionError, MongoPool>
}

/**
 * The typed helper for one collection.
 *
 * @example
 * ```ts
 * const User = Schema.Struct({ _id: Schema.Number, name: Schema.String })
 * const users = MongoPool.collection("users", User)
 * const ada = users.findOne({ _id: 1 }) // Effect<Option<{ _id: number; name: string }>, ...>
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const collection: {
  (name: string): Collection<Document>
  <A, I>(name: string, schema: Schema.Schema<A, I>): Collection<A>
} = collectionInternal.make as any

/**
 * The errors: `MongoOperationError`, `MongoDuplicateKeyError`,
 * `MongoConnectError`, `MongoUnavailableError`, `MongoUnsupportedError` (see
 * the `MongoError` module).
 *
 * @since 0.1.0
 * @category errors
 */
export {
  type FailureKind,
  MongoConnectError,
  MongoDuplicateKeyError,
  type MongoError,
  MongoOperationError,
  MongoUnavailableError,
  MongoUnsupportedError
} from "./MongoError.js"

/**
 * Which driver error an operation's error is, for code that calls the
 * driver itself.
 *
 * @since 0.1.0
 * @category errors
 */
export const operationFailed: (pool: string, operation: string, error: unknown) => MongoError = errors.operationFailed
