/**
 * The layer's resources: one `MongoClient`, connected when the layer is
 * built and closed after lifeguard's drain, and the lifeguard pool of lease
 * slots in front of it, whose limits the driver's pool is given.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type Db, MongoClient, type TransactionOptions } from "mongodb"
import { make as makePool } from "../../internal/pool.js"
import * as PoolHealth from "../../PoolHealth.js"
import type { Pool } from "../../Pool.js"
import type { PoolConfigError, PoolError } from "../../PoolError.js"
import type { PoolEvent } from "../../PoolEvent.js"
import { type Capabilities, CurrentLease, type DriverEvent, type Lease, type MongoPoolClient, type MongoPoolEvent, type Options } from "../MongoPool.js"
import { resolve } from "./config.js"
import { MongoConnectError, type MongoError, MongoUnavailableError, MongoUnsupportedError } from "../MongoError.js"
import { operationFailed } from "./errors.js"
import { DriverMonitor } from "./events.js"
import { LeaseImpl, type Owner, run } from "./lease.js"
import { watch } from "./watchdog.js"

/** How long a lease set-up waits for an unreachable server before it reports the driver's last error. */
const unavailableProbe = 1_000

/** @internal */
export const make = (
  options: Options
): Effect.Effect<MongoPoolClient, PoolConfigError | MongoConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* resolve(options)
    const currentLeaseKey = CurrentLease.key
    const name = config.pool.name
    const servers = config.servers
    const clock = yield* Effect.clock
    const tracer = config.commandSpans ? yield* Effect.tracer : undefined

    // Driver events have their own hub; `events` merges it with the pool's.
    const driverHub = yield* Effect.acquireRelease(PubSub.unbounded<DriverEvent>(), PubSub.shutdown)
    let subscribers = 0
    const onEvent = options.onEvent
    let clear: (reason: unknown) => void = () => {}

    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new MongoClient(config.url, config.driver)),
      (client) => Effect.promise(() => client.close().catch(() => {}))
    )
    const leaseOwner: Owner = {
      name,
      client,
      checkTimeout: config.pool.checkTimeout,
      killSessions: false,
      lsids: config.commandSpans ? new WeakMap() : undefined
    }
    const monitor = new DriverMonitor(client, {
      name,
      options: config.pool,
      clock,
      sink: {
        listened: () => onEvent !== undefined || subscribers > 0,
        emit: (event) => {
          if (onEvent !== undefined) onEvent(event)
          if (subscribers > 0) driverHub.unsafeOffer(event)
        }
      },
      onCleared: (_address, reason) => clear(reason),
      tracer,
      parentOf: (lsid) =>
        typeof lsid === "object" && lsid !== null ? leaseOwner.lsids?.get(lsid)?.parent : undefined
    })

    yield* Effect.tryPromise({
      try: () => client.connect(),
      catch: (cause) => new MongoConnectError({ pool: name, servers, timeout: Duration.millis(config.startTimeout), cause })
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(config.startTimeout),
        onTimeout: () =>
          new MongoConnectError({
            pool: name,
            servers,
            timeout: Duration.millis(config.startTimeout),
            cause: monitor.lastError ?? "no server answered"
          })
      })
    )
    const capabilities = yield* probeCapabilities(client)
    leaseOwner.killSessions = capabilities.killSessions
    const db = client.db(config.database)

    let nextLease = 0
    const unavailable = (cause: unknown) => new MongoUnavailableError({ pool: name, servers, cause })
    /** While no server is known, a set-up pings: its server selection makes the driver check again at once. */
    const awaitServer = Effect.tryPromise({
      try: (signal) => client.db("admin").command({ ping: 1 }, { signal }),
      catch: (cause) => unavailable(monitor.lastError ?? cause)
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(Math.min(unavailableProbe, config.pool.createTimeout)),
        onTimeout: () => unavailable(monitor.lastError)
      })
    )
    const newLease = Effect.sync(() => new LeaseImpl(++nextLease, client, db, leaseOwner))
    // The driver's clear arrives in a driver callback, outside any fiber: it runs in the pool's scope,
    // with the logger, tracer and log level of whoever built the pool.
    const runInScope = yield* FiberSet.makeRuntime<never, void, never>()
    // Connecting the client above is this adapter's start-up check; the core runs none of its own.
    const { initializationFailTimeout: _startUpCheck, ...settings } = config.settings
    const pool = yield* makePool<LeaseImpl, MongoUnavailableError, never>({
      ...settings,
      acquire: Effect.suspend(() => monitor.available ? newLease : Effect.zipRight(awaitServer, newLease)),
      ...(onEvent === undefined ? {} : { onEvent: onEvent as (event: PoolEvent) => void })
    })
    clear = (reason) => runInScope(pool.clear({ reason: reason ?? `the driver cleared its pool for ${servers}` }))

    /**
     * One `connect()`. Interrupted (the layer is closing), it stops waiting at once; the client is
     * closed again once that connect settled, so no topology it opened outlives the layer.
     */
    const reconnect = Effect.async<void, unknown>((resume) => {
      const connecting = client.connect()
      connecting.then(() => resume(Effect.void), (error) => resume(Effect.fail(error)))
      return Effect.sync(() => {
        connecting.then(() => client.close(), () => client.close()).catch(() => {})
      })
    })
    // A wedged driver monitor never sees the server again (watchdog.ts): the client is closed and connected
    // again, until a connect succeeds.
    const restartClient = (stalled: { readonly address: string; readonly runningMs: number; readonly bound: number }) =>
      Effect.gen(function*() {
        yield* Effect.logWarning(
          `the driver's check of ${stalled.address} has run for ${stalled.runningMs} ms, past its bound of ` +
            `${stalled.bound} ms (2 x connectTimeoutMS + heartbeatFrequencyMS + 1 s): restarting the MongoClient`
        )
        yield* pool.clear({ reason: `the driver's monitor of ${stalled.address} stalled; the client was restarted` })
        yield* Effect.uninterruptible(Effect.promise(() => client.close().catch(() => {})))
        yield* reconnect.pipe(
          Effect.tapError((error) =>
            Effect.logWarning("the restarted MongoClient could not connect; trying again").pipe(
              Effect.annotateLogs("error", String(error))
            )
          ),
          Effect.retry(Schedule.spaced(Duration.millis(client.options.heartbeatFrequencyMS))),
          Effect.orDie
        )
      }).pipe(Effect.annotateLogs("pool", name))
    // Interruptible even when the layer is built in an uninterruptible region: it runs until the layer closes.
    yield* Effect.forkScoped(Effect.interruptible(watch(monitor, client.options, restartClient)))

    const get: Effect.Effect<Lease, PoolError | MongoUnavailableError, Scope.Scope> = Effect.flatMap(
      pool.get,
      (lease) =>
        Effect.flatMap(Effect.scope, (scope) =>
          Effect.as(
            Scope.addFinalizerExit(scope, (exit) => Effect.suspend(() => lease.end(Exit.isInterrupted(exit)))),
            lease
          ))
    )

    const use = <A, E, R>(f: (lease: Lease) => Effect.Effect<A, E, R>) =>
      pool.use((lease) => Effect.onExit(f(lease), (exit) => Effect.suspend(() => lease.end(Exit.isInterrupted(exit)))))

    const promise = <A>(
      f: (db: Db, lease: Lease) => Promise<A>,
      operation = "command"
    ): Effect.Effect<A, MongoError | PoolError | MongoUnavailableError> =>
      Effect.contextWithEffect((context: Context.Context<never>) => {
        const held = context.unsafeMap.get(currentLeaseKey) as LeaseImpl | undefined
        if (held !== undefined) return run(held, operation, f, false)
        return pool.use((lease) => run(lease, operation, f, true))
      })

    const withLease = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.contextWithEffect((context: Context.Context<never>) =>
        context.unsafeMap.has(currentLeaseKey)
          ? effect
          : use((lease) => Effect.provideService(effect, CurrentLease, lease))
      )

    const inTransaction = <A, E, R>(
      lease: LeaseImpl,
      effect: Effect.Effect<A, E, R>,
      txOptions: TransactionOptions | undefined
    ): Effect.Effect<A, E | MongoError, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const session = lease.session
          session.startTransaction(txOptions)
          return Effect.flatMap(Effect.exit(restore(Effect.provideService(effect, CurrentLease, lease))), (exit) =>
            Exit.isSuccess(exit)
              ? Effect.as(run(lease, "commitTransaction", () => session.commitTransaction(), false), exit.value)
              : Effect.zipRight<void, never, never, A, E | MongoError, R>(
                Effect.promise(() => session.abortTransaction().catch(() => {})),
                exit
              ))
        })
      )

    const withTransaction = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      txOptions?: TransactionOptions
    ): Effect.Effect<A, E | MongoError | MongoUnsupportedError | PoolError | MongoUnavailableError, R> =>
      Effect.contextWithEffect((
        context: Context.Context<never>
      ): Effect.Effect<A, E | MongoError | MongoUnsupportedError | PoolError | MongoUnavailableError, R> => {
        const held = context.unsafeMap.get(currentLeaseKey) as LeaseImpl | undefined
        // A transaction inside one joins it: it runs on the same session.
        if (held !== undefined && held.session.inTransaction()) return effect
        if (!capabilities.transactions) {
          return Effect.fail(
            new MongoUnsupportedError({
              pool: name,
              feature: "transactions",
              servers,
              reason: "they need a replica set or a sharded cluster (this is a standalone server or FerretDB)"
            })
          )
        }
        if (held !== undefined) return inTransaction(held, effect, txOptions)
        return pool.use((lease) =>
          Effect.onExit(
            inTransaction(lease, effect, txOptions),
            (exit) => Effect.suspend(() => lease.end(Exit.isInterrupted(exit)))
          )
        )
      })

    // The cached ping of the pooler document, as the core's health check's probe. It takes no
    // lease, so it answers while every lease is held.
    const ping = Effect.tryPromise({
      try: (signal) => client.db("admin").command({ ping: 1 }, { signal }),
      catch: (cause) => operationFailed(name, "ping", monitor.lastError ?? cause)
    })
    const healthCheck = yield* PoolHealth.make(pool, {
      probe: ping,
      probeTtl: Duration.millis(config.healthCheckInterval)
    })
    const health = healthCheck.check

    const driverEvents: Stream.Stream<DriverEvent> = Stream.unwrapScoped(
      Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(driverHub)
        yield* Effect.acquireRelease(Effect.sync(() => subscribers++), () => Effect.sync(() => subscribers--))
        return Stream.fromQueue(subscription)
      })
    )
    const events: Stream.Stream<MongoPoolEvent> = Stream.merge(pool.events, driverEvents)

    return {
      name,
      // The entries are LeaseImpls; `invalidate` is handed back what `get` gave out.
      pool: pool as unknown as Pool<Lease, MongoUnavailableError>,
      client,
      db,
      capabilities,
      get,
      use,
      promise,
      withLease,
      withTransaction,
      health,
      healthCheck,
      events,
      driverConnections: Effect.sync(() => monitor.connections())
    } satisfies MongoPoolClient
  })

/** What the server can do beyond CRUD, asked once at start-up. */
const probeCapabilities = (client: MongoClient): Effect.Effect<Capabilities> =>
  Effect.promise(async () => {
    const admin = client.db("admin")
    const [hello, killSessions] = await Promise.all([
      admin.command({ hello: 1 }).catch(() => ({} as Record<string, unknown>)),
      admin.command({ killSessions: [] }).then(() => true, () => false)
    ])
    return {
      transactions: typeof hello.setName === "string" || hello.msg === "isdbgrid",
      killSessions
    }
  })
