import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option, Schedule } from "effect"
import { PgPool } from "../../src/pg/index.js"
import { startEmbedded } from "../utils/postgres.js"

// This suite stops and starts its server: it gets its own, never the shared one.
const server = await startEmbedded()
afterAll(() => server.stop())

describe("the server goes away and comes back", () => {
  it.live("checkouts fail clearly while it is down, within acquireTimeout, and succeed soon after it is back", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      expect(yield* sql`SELECT 1::int AS ok`).toStrictEqual([{ ok: 1 }])
      const before = yield* pool.stats

      yield* Effect.promise(server.stopServer)
      const down = yield* Effect.forEach(
        [0, 1, 2],
        () => Effect.timed(Effect.exit(sql`SELECT 1::int AS ok`)),
        { concurrency: "unbounded" }
      )
      for (const [duration, exit] of down) {
        // No hang past acquireTimeout (1 s), with some slack for a loaded machine.
        expect(Duration.toMillis(duration)).toBeLessThan(2_500)
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Option.getOrThrow(Exit.isFailure(exit) ? Exit.causeOption(exit) : Option.none())
        const sqlError = error._tag === "Fail" ? error.error : undefined
        expect(sqlError?._tag).toBe("SqlError")
        // The message says what happened: the pool's name, and why the server could not be reached.
        expect(sqlError!.message).toMatch(/pool "restart"/)
        expect(sqlError!.message).toMatch(/ECONNREFUSED|Connection terminated|shutting down|terminating connection/)
      }
      // The shutdown (57P01 on the idle connection) moved the pool to a new generation.
      expect((yield* pool.stats).generation).toBeGreaterThan(before.generation)

      yield* Effect.promise(server.startServer)
      const [duration, rows] = yield* Effect.timed(
        sql`SELECT 1::int AS ok`.pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("5 seconds"))))
      )
      expect(rows).toStrictEqual([{ ok: 1 }])
      expect(Duration.toMillis(duration)).toBeLessThan(5_000)
      // Back to normal: every statement succeeds.
      const again = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => sql<{ i: number }>`SELECT ${i}::int AS i`, {
        concurrency: "unbounded"
      })
      expect(again.map(([row]) => row!.i)).toStrictEqual([1, 2, 3, 4, 5])
    }).pipe(
      Effect.provide(PgPool.layer({
        url: server.url,
        name: "restart",
        maxSize: 3,
        acquireTimeout: "1 second",
        createTimeout: "500 millis"
      }))
    ))
})
