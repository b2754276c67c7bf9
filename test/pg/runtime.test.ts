import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, HashMap, Layer, Logger, LogLevel, Option, Supervisor } from "effect"
import { PgPool } from "../../src/pg/index.js"
import { adminQuery, sharedServer, uniqueName } from "../utils/postgres.js"

const server = await sharedServer()
afterAll(() => server.stop())

/** A logger that keeps every line and resolves `cleared` at the pool's "pool cleared" line. */
const recordingLogger = (lines: Array<string>, cleared: Deferred.Deferred<void>) =>
  Logger.make(({ annotations, logLevel, message }) => {
    const app = HashMap.get(annotations, "app").pipe(Option.map((value) => ` app=${String(value)}`), Option.getOrElse(() => ""))
    const text = `${logLevel.label} ${(Array.isArray(message) ? message : [message]).map(String).join(" ")}${app}`
    lines.push(text)
    if (text.includes("pool cleared")) Deferred.unsafeDone(cleared, Effect.void)
  })

const isClearedEvent = (event: unknown) => {
  const e = event as { readonly type?: string; readonly _tag?: string }
  return (e._tag ?? e.type) === "ConnectionPoolCleared"
}

/**
 * Builds a pool, runs one statement, terminates its connection on the server (57P01, which
 * makes the adapter clear the pool from a pg callback), waits for `done` and closes the layer.
 */
const terminateOneConnection = (done: Deferred.Deferred<void>, onCleared: () => void = () => {}) =>
  Effect.scoped(Effect.gen(function*() {
    const name = uniqueName("runtime")
    const context = yield* Layer.build(PgPool.layer({
      url: server.url,
      name,
      applicationName: name,
      maxSize: 1,
      onEvent: (event) => {
        if (isClearedEvent(event)) onCleared()
      }
    }))
    const sql = Context.get(context, SqlClient.SqlClient)
    const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
    yield* Effect.promise(() => adminQuery(server.url, "SELECT pg_terminate_backend($1)", [row!.pid]))
    yield* Deferred.await(done).pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the pool was never cleared") }),
      Effect.orDie
    )
  }))

describe("the clear after a server shutdown runs in the caller's runtime", () => {
  it.live("it logs through the caller's logger, and no fiber outlives the layer", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const cleared = yield* Deferred.make<void>()
      const supervisor = yield* Supervisor.track
      yield* terminateOneConnection(cleared).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, recordingLogger(lines, cleared))),
        Effect.annotateLogs("app", "billing"),
        Effect.supervised(supervisor)
      )
      // The caller's logger, with the caller's annotations.
      const clearedLine = lines.find((line) => line.startsWith("INFO pool cleared"))
      expect(clearedLine).toMatch(/ app=billing$/)
      // Every fiber the pool started (the clear's included) ended with the layer's scope.
      const alive = yield* supervisor.value
      expect(alive.map((fiber) => fiber.id())).toStrictEqual([])
    }))

  it.live("it keeps the caller's log level", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const cleared = yield* Deferred.make<void>()
      // The clear logs in the same synchronous run that emits its event, so once the event is in,
      // the line would have been written.
      yield* terminateOneConnection(cleared, () => Deferred.unsafeDone(cleared, Effect.void)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, recordingLogger(lines, cleared))),
        Logger.withMinimumLogLevel(LogLevel.Warning)
      )
      expect(lines.filter((line) => line.includes("pool cleared"))).toStrictEqual([])
    }))
})
