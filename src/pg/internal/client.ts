/**
 * The lifeguard pool of `PgConnection`s and the @effect/sql `SqlClient` /
 * `PgClient` on top of it.
 *
 * A statement outside a transaction checks a connection out for itself, as
 * a direct call of the pool (no Scope, no fiber switch between statements). `withTransaction`, `reserve` and streams pin one
 * connection with `pool.get` for their whole life. Either way a connection goes
 * back only once it is clean: no query running, outside any transaction block,
 * still alive; otherwise it is rolled back or destroyed first.
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as RcRef from "effect/RcRef"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import pg from "pg"
import Cursor from "pg-cursor"
import type { Pool } from "../../Pool.js"
import { type Direct, dispatch, make as makePool } from "../../internal/pool.js"
import { type ConnectTimeoutError, PoolConfigError, type PoolError } from "../../PoolError.js"
import type { Options, PgPoolClient } from "../PgPool.js"
import { defaultName, resolve } from "./config.js"
import { awaitReady, close, orGiveUp, type Owner, PgConnection, rowsOf, sendCancelRequest } from "./connection.js"
import {
  checkoutFailed,
  codeOf,
  connectFailed,
  hostNotFound,
  isConnectionGone,
  isRetryable,
  isServerGoingAway,
  queryFailed,
  resolver,
  sessionSettingsRejected
} from "./errors.js"
import * as hosts from "./hosts.js"
import { listen, listenConnection } from "./listen.js"
import * as pooler from "./pooler.js"

type TransformRows = (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const keep = <A>(_: PgConnection, result: Effect.Effect<A, SqlError>) => result
const identity = <A>(a: A) => a
const ignore = () => undefined
const always = () => true
const rowsOnly = (result: any) => result.rows
const cursorBatch = 128

/** @internal */
export const make = (
  options: Options
): Effect.Effect<PgPoolClient, PoolConfigError | SqlError | ConnectTimeoutError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const hostList = hosts.resolveHosts(options)
    const scalingProblems = [...hostList.problems, ...pooler.problems(options)]
    if (scalingProblems.length > 0) {
      return yield* new PoolConfigError({ pool: options.name ?? defaultName, problems: scalingProblems })
    }
    const config = yield* resolve(hostList.options)
    const name = config.settings.name!
    const becameReadOnly = hosts.becameReadOnly(hostList.targetSessionAttrs)
    // Set once the pool exists; connections are only made after that.
    let pool: Pool<PgConnection, SqlError> = undefined as never
    // Bumped on every clear this adapter makes: one server shutdown clears the pool once, not once per connection.
    let epoch = 0
    // The clear after a server shutdown starts in a pg callback, outside any fiber. It runs in the pool's
    // scope (interrupted when it closes) with the logger, tracer and log level of whoever built the pool.
    const runInScope = yield* FiberSet.makeRuntime<never, void, never>()
    const owner: Owner & { cancelTimeout: number } = {
      name,
      cancelTimeout: 5_000,
      unfit: becameReadOnly,
      onGone: (connection, error) => {
        // `pool` is unset while the start-up check runs inside the pool's constructor.
        if ((isServerGoingAway(error) || becameReadOnly(error)) && connection.epoch === epoch && pool !== undefined) {
          epoch++
          runInScope(pool.clear({ reason: error }))
        }
      }
    }

    /** Makes a returning connection fit for the next user, or retires it. */
    const settle = (connection: PgConnection): Effect.Effect<void> =>
      Effect.suspend(() => {
        // A failed statement is called back before its ReadyForQuery: the transaction status comes with it.
        if (connection.gone === undefined && connection.running === 0 && !connection.isReady) {
          return Effect.zipRight(awaitReady(connection), settle(connection))
        }
        if (connection.gone !== undefined || connection.running > 0) return pool.invalidate(connection)
        if (connection.txStatus === "I") return Effect.void
        // Returned inside a transaction block (a bare BEGIN, a failed COMMIT): roll it back here.
        return connection.run("ROLLBACK", [], false, ignore, keep, connection.cancelQuery).pipe(
          // A return runs uninterruptible; without this the timeout could not stop a ROLLBACK that hangs.
          Effect.interruptible,
          Effect.timeout(owner.cancelTimeout),
          Effect.matchEffect({
            onFailure: () => pool.invalidate(connection),
            onSuccess: () => connection.clean ? Effect.void : pool.invalidate(connection)
          })
        )
      }).pipe(Effect.uninterruptible)

    const settleIfDirty = <A>(connection: PgConnection, result: Effect.Effect<A, SqlError>) =>
      connection.clean ? result : Effect.zipRight(settle(connection), result)

    const connect = (connection: PgConnection, describe: string) =>
      Effect.async<void, SqlError>((resume) => {
        connection.connect((error) => {
          if (!error) return resume(Effect.void)
          if (codeOf(error) !== "ENOTFOUND") return resume(Effect.fail(connectFailed(name, describe, error)))
          // A resolver can fail once and answer the next time: only a second ENOTFOUND is permanent.
          const host = (error as { readonly hostname?: string }).hostname ?? connection.host
          resume(Effect.flatMap(
            Effect.promise(() => resolver.notFound(host)),
            (notFound) =>
              Effect.fail(
                notFound ? hostNotFound(name, describe, host, error) : connectFailed(name, describe, error)
              )
          ))
        })
        // Interrupted (createTimeout, pool closing): drop the half-open socket now.
        return Effect.sync(() => connection.connection.stream.destroy())
      })

    const applySessionSettings = (connection: PgConnection) => {
      if (config.sessionSettings.length === 0) return Effect.void
      const params = config.sessionSettings.flat()
      const calls = config.sessionSettings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`)
      return connection.run(`SELECT ${calls.join(", ")}`, params, false, ignore, keep, connection.cancelQuery).pipe(
        Effect.mapError((error) => sessionSettingsRejected(name, error.cause))
      )
    }

    const setUp = (client: pg.ClientConfig, describe: string) =>
      Effect.gen(function*() {
        const connection = new PgConnection(client, owner)
        connection.epoch = epoch
        connection.cancelAndSettle = Effect.zipRight(connection.cancelQuery, settle(connection))
        // Registered before connecting, so a set-up cut short by createTimeout still closes the socket.
        yield* Effect.addFinalizer(() => close(connection))
        yield* connect(connection, describe)
        yield* applySessionSettings(connection)
        return connection
      })

    // A host list (or a role to check) walks the hosts, createTimeout for each; one host is set up directly.
    const perHost = hosts.perHostTimeout(options)
    const walking = hosts.needsWalk(hostList) && perHost !== undefined
    const database = config.pgClientConfig.database ?? config.pgClientConfig.username ?? "postgres"
    const setUpRetryable = options.isRetryable ?? isRetryable
    const acquire = walking
      ? hosts.walk(name, hosts.walkList(hostList, config.client), perHost, (target) =>
        setUp(hosts.clientFor(config.client, target), `${target.host}:${target.port}/${database}`), hosts.roleOf, setUpRetryable)
      : setUp(config.client, config.describe)

    const walkBounds = (ms: number) =>
      options.initializationFailTimeout === undefined && config.settings.initializationFailTimeout !== undefined
        ? { createTimeout: ms, initializationFailTimeout: ms }
        : { createTimeout: ms }

    pool = yield* makePool<PgConnection, SqlError, never>({
      ...config.settings,
      // With a host list, the event's address names every host; which one a connection is on varies.
      address: hostList.targets.length > 1
        ? hostList.targets.map((target) => `${target.host}:${target.port}`).join(",")
        : `${config.pgClientConfig.host}:${config.pgClientConfig.port}`,
      // The walk enforces createTimeout per host; the pool's bounds (and the start-up check's, unless
      // given) cover the whole walk.
      ...(walking ? walkBounds(perHost * Math.max(1, hostList.targets.length) + 250) : {}),
      acquire,
      // Runs only for connections idle longer than validateAfterIdle: a cheap round trip.
      validate: (connection) =>
        connection.gone === undefined
          ? connection.run("SELECT 1", [], false, always, keep, connection.cancelQuery)
          : Effect.succeed(false),
      ...(options.discardOnReturn === true
        ? {
          reset: (connection: PgConnection) =>
            connection.clean
              ? connection.run("DISCARD ALL", [], false, always, keep, connection.cancelQuery)
              : Effect.succeed(false)
        }
        : {}),
      isRetryable: walking ? hosts.retryableWith(setUpRetryable) : setUpRetryable,
      ...(options.retrySchedule === undefined ? {} : { retrySchedule: options.retrySchedule }),
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent })
    })
    owner.cancelTimeout = pool.options.checkTimeout

    // A connection can be unfit at checkout: it died while idle, or an interruption landed between
    // its last statement and the settle that follows it. No statement was sent on it: retrying is safe.
    const unfitAtCheckout = new SqlError({ message: "connection unfit at checkout" })
    // A checkout can also be failed by the clear that followed a server shutdown; that is retryable too.
    const checkoutRetries = pool.options.maxSize + 2
    const retryable = (error: PoolError | SqlError) => error === unfitAtCheckout || error._tag === "PoolClearedError"

    /**
     * One statement on a connection checked out for it alone. The pool sends
     * it the moment it hands a connection over (see `Direct`), and the
     * connection goes on to the next statement from pg's callback, as in
     * `pg.Pool`; a connection that needs a check, or a settle, first goes the
     * fiber way (`use`).
     */
    class PooledStatement<A> implements Direct<PgConnection, A, SqlError> {
      constructor(
        readonly sql: string,
        readonly params: ReadonlyArray<unknown>,
        readonly arrays: boolean,
        readonly map: (result: any) => A
      ) {}
      start(connection: PgConnection, done: (outcome: Effect.Effect<A, SqlError>, clean: boolean) => void): boolean {
        if (!connection.clean) return false
        connection.send(this.sql, this.params, this.arrays, this.map, done)
        return true
      }
      settle(connection: PgConnection): Effect.Effect<void> {
        return settle(connection)
      }
      use(connection: PgConnection): Effect.Effect<A, SqlError> {
        return connection.clean
          ? connection.run(this.sql, this.params, this.arrays, this.map, settleIfDirty, connection.cancelAndSettle)
          : Effect.zipRight(settle(connection), Effect.fail(unfitAtCheckout))
      }
      cancel(connection: PgConnection): Effect.Effect<void> {
        return connection.cancelQuery
      }
    }

    /** Runs one statement on a connection checked out for it alone. */
    const runPooled = <A>(
      sql: string,
      params: ReadonlyArray<unknown>,
      arrays: boolean,
      map: (result: any) => A,
      retries = checkoutRetries
    ): Effect.Effect<A, SqlError> =>
      // Hot path: the callbacks are inline and anonymous, so no per-call function naming (tsx keepNames).
      Effect.catchAll(
        dispatch(pool, new PooledStatement(sql, params, arrays, map)),
        (error) =>
          retries > 0 && retryable(error)
            ? runPooled(sql, params, arrays, map, retries - 1)
            : Effect.fail(checkoutFailed(error))
      )

    /** Checks out a connection for the current scope (transactions, reserve, streams). */
    const reserveConnection: Effect.Effect<PgConnection, SqlError, Scope.Scope> = Effect.flatMap(
      Effect.scope,
      (outer) => {
        const attempt = (retries: number): Effect.Effect<PgConnection, SqlError> =>
          Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) =>
            Effect.matchEffect(Scope.extend(pool.get, scope), {
              onFailure: (error) =>
                Effect.zipRight(
                  Scope.close(scope, Exit.void),
                  retries > 0 && retryable(error) ? attempt(retries - 1) : Effect.fail(checkoutFailed(error))
                ),
              onSuccess: (connection) => {
                if (!connection.clean && retries > 0) {
                  return settle(connection).pipe(
                    Effect.zipRight(Scope.close(scope, Exit.void)),
                    Effect.zipRight(attempt(retries - 1))
                  )
                }
                // Added after pool.get's own finalizer, so it runs first: the connection is clean when it goes back.
                return Effect.as(Scope.addFinalizer(scope, settle(connection)), connection)
              }
            }))
        // withTransaction acquires its connection in an uninterruptible region; the wait for one must
        // still be interruptible (and it is bounded by acquireTimeout inside the pool).
        return Effect.interruptible(attempt(checkoutRetries))
      }
    )

    const stream = (connection: PgConnection, sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const cursor = new Cursor(sql, params as Array<unknown>)
        let reading = false
        connection.running++
        connection.query(cursor)
        yield* Effect.addFinalizer(() => closeCursor(connection, cursor, reading))
        const pull = Effect.async<Chunk.Chunk<any>, Option.Option<SqlError>>((resume) => {
          reading = true
          cursor.read(cursorBatch, (error, rows) => {
            reading = false
            if (error) {
              if (isConnectionGone(error)) connection.markGone(error)
              resume(Effect.fail(Option.some(queryFailed(name, error))))
            } else if (rows.length === 0) resume(Effect.fail(Option.none()))
            else {
              // Thrown here, a row transform's error would escape pg-cursor's callback and crash the process.
              try {
                resume(Effect.succeed(Chunk.unsafeFromArray(transformRows ? transformRows(rows) : rows)))
              } catch (defect) {
                resume(Effect.die(defect))
              }
            }
          })
        })
        return Stream.repeatEffectChunkOption(pull)
      }))

    /** Closes a cursor; one still reading is cancelled on the server first. */
    const closeCursor = (connection: PgConnection, cursor: Cursor, reading: boolean) =>
      Effect.suspend(() => {
        let abandonRequest = () => {}
        const closing = Effect.async<void>((resume) => {
          const closed = () => {
            connection.finished()
            resume(Effect.void)
          }
          const close = () => {
            // A cursor that failed (cancelled, say) already sent its Sync; once that ReadyForQuery is in,
            // close() would wait for another that never comes.
            if (cursor.state === "error" && (connection as unknown as { readyForQuery: boolean }).readyForQuery) closed()
            else cursor.close(closed)
          }
          if (reading) abandonRequest = sendCancelRequest(connection, close)
          else close()
        })
        return orGiveUp(closing, owner.cancelTimeout, () => {
          abandonRequest()
          connection.markGone(new Error(`a cursor did not close within ${owner.cancelTimeout} ms`))
        })
      })

    /** A connection pinned for a transaction, `reserve` or a stream. */
    class PinnedConnection implements Connection {
      constructor(readonly connection: PgConnection) {}
      private run<A>(sql: string, params: ReadonlyArray<unknown>, arrays: boolean, map: (result: any) => A) {
        return this.connection.run(sql, params, arrays, map, keep, this.connection.cancelQuery)
      }
      execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
        return this.run(sql, params, false, transformRows ? (r) => transformRows(rowsOf(r)) : rowsOf)
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        return this.run(sql, params, false, identity)
      }
      executeValues(sql: string, params: ReadonlyArray<unknown>) {
        return this.run(sql, params, true, rowsOnly)
      }
      executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
        // A connection that is gone has no transaction left: the server rolled it back when it lost
        // the session. Failing here would turn withTransaction's rollback into a defect.
        if (this.connection.gone !== undefined && sql.startsWith("ROLLBACK")) return Effect.succeed([])
        return this.execute(sql, params, transformRows)
      }
      executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
        return stream(this.connection, sql, params, transformRows)
      }
    }

    /** The connection statements outside a transaction see: each call checks one out for itself. */
    const pooled: Connection = {
      execute: (sql, params, transformRows) =>
        runPooled(sql, params, false, transformRows ? (r) => transformRows(rowsOf(r)) : rowsOf),
      executeRaw: (sql, params) => runPooled(sql, params, false, identity),
      executeValues: (sql, params) => runPooled(sql, params, true, rowsOnly),
      executeUnprepared: (sql, params, transformRows) =>
        runPooled(sql, params, false, transformRows ? (r) => transformRows(rowsOf(r)) : rowsOf),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrapScoped(Effect.map(reserveConnection, (connection) => stream(connection, sql, params, transformRows)))
    }

    const transformRows = options.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined

    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(pooled),
      beginTransaction: pooler.beginStatement(options),
      transactionAcquirer: Effect.map(reserveConnection, (connection) => new PinnedConnection(connection)),
      compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
      spanAttributes: [
        ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", config.pgClientConfig.database ?? config.pgClientConfig.username ?? "postgres"],
        ["server.address", config.pgClientConfig.host ?? "localhost"],
        ["server.port", config.pgClientConfig.port ?? 5432],
        ["lifeguard.pool", name]
      ],
      transformRows
    })

    const listenOptions = pooler.listenOptions(name, options, hostList.targets.length)
    const listener = listenOptions instanceof SqlError
      ? listenOptions
      : yield* RcRef.make({
        acquire: listenConnection(
          listenOptions === options ? config : yield* resolve(hosts.resolveHosts(listenOptions).options),
          name
        )
      })
    const json = Statement.custom<PgClient.PgCustom>("PgJson")

    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      config: config.pgClientConfig,
      // Only connections it made are ever handed to its users, so the wider type is safe to expose.
      pool: pool as unknown as Pool<pg.Client, SqlError>,
      json: (value: unknown) => json(value),
      listen: (channel: string) =>
        listener instanceof SqlError ? Stream.fail(listener) : listen(listener, name, channel),
      notify: (channel: string, payload: string) =>
        runPooled("SELECT pg_notify($1, $2)", [channel, payload], false, ignore)
    }) as PgPoolClient
  })
