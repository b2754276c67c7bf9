import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import * as Net from "node:net"
import { PgPool } from "../../src/pg/index.js"
import { resolver } from "../../src/pg/internal/errors.js"
import { adminQuery, freePort, startEmbedded } from "../utils/postgres.js"

// Set-up errors retrying cannot fix, against a private server with password authentication
// (the local one trusts everyone). "Fast" is counted in set-up attempts, not in time: a
// retried error would make several within the deadlines below.
const server = await startEmbedded()
afterAll(() => server.stop())
await adminQuery(server.url, "CREATE ROLE app LOGIN PASSWORD 'right'")

const base = `127.0.0.1:${server.port}`
const appUrl = (database = "postgres", password = "right") => `postgres://app:${password}@${base}/${database}`

/** Counts set-up attempts (ConnectionCreated: one per attempt, before it connects). */
const attemptCounter = () => {
  let attempts = 0
  return {
    onEvent: (event: unknown) => {
      const e = event as { readonly type?: string; readonly _tag?: string }
      if ((e._tag ?? e.type) === "ConnectionCreated") attempts++
    },
    attempts: () => attempts
  }
}

/** Builds the layer, expecting it to fail; returns the error and the attempts made. */
const buildFailure = (options: PgPool.Options) =>
  Effect.gen(function*() {
    const counter = attemptCounter()
    const error = yield* Effect.scoped(Effect.flip(Layer.build(PgPool.layer({ ...options, onEvent: counter.onEvent }))))
    return { error, attempts: counter.attempts() }
  })

/** A socket whose name lookup fails with ENOTFOUND, without asking any resolver. */
const unresolvableSocket = () => {
  const socket = new Net.Socket()
  const connect = socket.connect.bind(socket) as (options: Net.TcpSocketConnectOpts) => Net.Socket
  const lookup: Net.LookupFunction = (hostname, _options, callback) =>
    callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", hostname }), "", 4)
  Object.assign(socket, { connect: (port: number, host: string) => connect({ port, host, lookup }) })
  return socket
}

const withResolver = <A, E, R>(notFound: boolean, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = resolver.notFound
      resolver.notFound = () => Promise.resolve(notFound)
      return before
    }),
    () => effect,
    (before) => Effect.sync(() => {
      resolver.notFound = before
    })
  )

// Defaults except createTimeout: the start-up check (on by default) gets 10 seconds, the
// checkouts 30; a retried error would make attempt after attempt within them.
describe("permanent set-up errors fail the layer build at once, on the first attempt", () => {
  it.live("a wrong password (SQLSTATE 28P01)", () =>
    Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({ url: appUrl("postgres", "wrong") })
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain(`password authentication failed for user "app"`)
      expect(error.message).toContain("SQLSTATE 28P01")
      expect(error.message).toContain("fix the user name or password")
      expect(attempts).toBe(1)
    }))

  it.live("a database that does not exist (3D000)", () =>
    Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({ url: appUrl("no_such_db") })
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain(`database "no_such_db" does not exist`)
      expect(error.message).toContain("SQLSTATE 3D000")
      expect(attempts).toBe(1)
    }))

  it.live("a session setting the server does not know (42704)", () =>
    Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({ url: appUrl(), sessionSettings: { no_such_setting: "1" } })
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain(`the server rejected sessionSettings: unrecognized configuration parameter "no_such_setting"`)
      expect(error.message).toContain("SQLSTATE 42704")
      expect(attempts).toBe(1)
    }))

  it.live("a session setting with a value the server rejects (22023)", () =>
    Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({ url: appUrl(), sessionSettings: { statement_timeout: "soon" } })
      expect(error.message).toContain(`invalid value for parameter "statement_timeout"`)
      expect(error.message).toContain("SQLSTATE 22023")
      expect(attempts).toBe(1)
    }))

  it.live("a host name that does not resolve, on a second lookup too (ENOTFOUND)", () =>
    withResolver(true, Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({
        url: `postgres://app:right@db.invalid:${server.port}/postgres`,
        stream: unresolvableSocket
      })
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain(`the host name "db.invalid" does not resolve`)
      expect(attempts).toBe(1)
    })))

  it.live("a url that is not postgres: or postgresql: (no attempt at all)", () =>
    Effect.gen(function*() {
      const { attempts, error } = yield* buildFailure({ url: `mysql://app:right@${base}/postgres` })
      expect(error._tag).toBe("PoolConfigError")
      expect(error.message).toContain("url must start with postgres:// or postgresql://")
      expect(attempts).toBe(0)
    }))
})

describe("which errors are retried", () => {
  it.live("an ENOTFOUND the second lookup does not confirm is retried, as a resolver's blip", () =>
    withResolver(false, Effect.gen(function*() {
      const counter = attemptCounter()
      const layer = PgPool.layer({
        url: `postgres://app:right@db.invalid:${server.port}/postgres`,
        stream: unresolvableSocket,
        initializationFailTimeout: false,
        acquireTimeout: "1 second",
        retrySchedule: Schedule.spaced("50 millis"),
        onEvent: counter.onEvent
      })
      const error = yield* Effect.flip(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)).pipe(
        Effect.provide(layer)
      )
      expect(PgPool.poolError(error).pipe((o) => o._tag === "Some" ? o.value._tag : undefined)).toBe("PoolTimeoutError")
      expect(error.message).toContain("ENOTFOUND db.invalid")
      expect(counter.attempts()).toBeGreaterThan(1)
    })))

  it.live("a refused connection is retried until the start-up check's deadline, then fails the build with it", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.promise(freePort)
      const { attempts, error } = yield* buildFailure({
        url: `postgres://app:right@127.0.0.1:${closed}/postgres`,
        initializationFailTimeout: "1 second",
        retrySchedule: Schedule.spaced("50 millis")
      })
      expect(error._tag).toBe("SqlError")
      expect(error.message).toContain("ECONNREFUSED")
      expect(attempts).toBeGreaterThan(1)
    }))

  it("PgPool.isRetryable: only what the adapter classified as permanent, and class 28 / 3D000 by code", () => {
    const sqlError = (code: string) =>
      PgPool.isRetryable(Object.assign(Object.create(null), { cause: Object.assign(new Error("x"), { code }) }))
    expect(sqlError("28P01")).toBe(false)
    expect(sqlError("28000")).toBe(false)
    expect(sqlError("3D000")).toBe(false)
    for (const code of ["ECONNREFUSED", "57P03", "53300", "08006", "ENOTFOUND"]) expect(sqlError(code), code).toBe(true)
  })
})

describe("without the start-up check", () => {
  it.live("a permanent error fails every waiting checkout at once, with one attempt and no retry loop", () =>
    Effect.gen(function*() {
      const counter = attemptCounter()
      const context = yield* Layer.build(PgPool.layer({
        url: appUrl("postgres", "wrong"),
        initializationFailTimeout: false,
        maxConnecting: 1,
        onEvent: counter.onEvent
      }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const pool = Context.get(context, PgPool.PgPool)
      expect(counter.attempts()).toBe(0)
      const errors = yield* Effect.forEach([1, 2, 3], () => Effect.flip(sql`SELECT 1`), { concurrency: "unbounded" })
      for (const error of errors) {
        expect(error._tag).toBe("SqlError")
        expect(error.message).toContain(`password authentication failed for user "app"`)
      }
      expect(counter.attempts()).toBe(1)
      expect(yield* pool.stats).toMatchObject({ connectFailures: 1, pending: 0, waiting: 0, total: 0 })
    }).pipe(Effect.scoped))

  it.live("retrySchedule is the pool's: recurs(0) hands a refused connection's error to the checkout at once", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.promise(freePort)
      const counter = attemptCounter()
      const error = yield* Effect.flip(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)).pipe(
        Effect.provide(PgPool.layer({
          url: `postgres://app:right@127.0.0.1:${closed}/postgres`,
          initializationFailTimeout: false,
          retrySchedule: Schedule.recurs(0),
          onEvent: counter.onEvent
        }))
      )
      expect(error.message).toContain("ECONNREFUSED")
      expect(PgPool.poolError(error)._tag).toBe("None")
      expect(counter.attempts()).toBe(1)
    }))
})

describe("the start-up check when the server is there", () => {
  it.live("building the layer opens max(1, minIdle) connections", () =>
    Effect.gen(function*() {
      for (const [minIdle, opened] of [[0, 1], [3, 3]] as const) {
        const stats = yield* Effect.scoped(Effect.flatMap(
          Layer.build(PgPool.layer({ url: appUrl(), minIdle })),
          (context) => Context.get(context, PgPool.PgPool).stats
        ))
        expect(stats, `minIdle ${minIdle}`).toMatchObject({ total: opened, idle: opened, connectFailures: 0 })
      }
    }))

  it.live("its deadline is createTimeout by default, and false turns it off", () =>
    Effect.gen(function*() {
      const optionsOf = (options: PgPool.Options) =>
        Effect.scoped(Effect.map(Layer.build(PgPool.layer({ url: appUrl(), ...options })), (context) =>
          Context.get(context, PgPool.PgPool).options))
      expect((yield* optionsOf({})).initializationFailTimeout).toBe(10_000)
      expect((yield* optionsOf({ connectTimeout: "3 seconds" })).initializationFailTimeout).toBe(3_000)
      expect((yield* optionsOf({ initializationFailTimeout: false })).initializationFailTimeout).toBeUndefined()
      expect((yield* optionsOf({ startPaused: true })).initializationFailTimeout).toBeUndefined()
    }))
})
