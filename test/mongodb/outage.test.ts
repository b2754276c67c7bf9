import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, Schedule, Stream } from "effect"
import { MongoPool } from "../../src/mongodb/index.js"
import { ferretScoped } from "../utils/ferretdb.js"

const typedTags = new Set([
  "MongoOperationError",
  "MongoUnavailableError",
  "PoolTimeoutError",
  "PoolClearedError"
])

describe("the server killed under load, then started again", () => {
  it.scopedLive("the driver's pool clear bumps lifeguard's generation, no fiber hangs, errors are typed, the pool recovers by itself", () =>
    Effect.gen(function*() {
      const ferret = yield* ferretScoped
      const mongo = yield* MongoPool.make({
        url: ferret.url,
        maxSize: 5,
        acquireTimeout: "2 seconds",
        // Heartbeats every 500 ms (the driver's minimum) so the test does not wait 10 s for one.
        driver: { heartbeatFrequencyMS: 500, serverSelectionTimeoutMS: 2_000 }
      })
      const ping = mongo.promise((db, { session, signal }) => db.command({ ping: 1 }, { session, signal }))
      const cleared = yield* mongo.pool.events.pipe(
        Stream.filter((event) => event._tag === "ConnectionPoolCleared"),
        Stream.runHead,
        Effect.fork
      )

      let running = true
      let served = 0
      const failures = new Map<string, number>()
      const worker = Effect.gen(function*() {
        while (running) {
          const outcome = yield* Effect.either(ping)
          if (outcome._tag === "Right") served++
          else failures.set(outcome.left._tag, (failures.get(outcome.left._tag) ?? 0) + 1)
        }
      })
      const workers = yield* Effect.forkAll(Array.from({ length: 20 }, () => worker))
      yield* Effect.retry(
        Effect.suspend(() => (served > 50 ? Effect.void : Effect.fail("warming up"))),
        Schedule.spaced("20 millis")
      )

      yield* Effect.promise(ferret.kill)
      const clearEvent = yield* Fiber.join(cleared).pipe(Effect.timeout("10 seconds"))
      expect(Option.isSome(clearEvent)).toBe(true)
      expect((yield* mongo.pool.stats).generation).toBeGreaterThan(0)

      // While the server is away a checkout ends within acquireTimeout, carrying the driver's network error.
      const during = yield* Effect.flip(ping).pipe(Effect.timed)
      const [took, error] = during
      expect(typedTags.has(error._tag), error._tag).toBe(true)
      expect(Duration.toMillis(took)).toBeLessThan(4_000)
      if (error._tag === "PoolTimeoutError") {
        const last = error.lastConnectError as MongoPool.MongoUnavailableError
        expect(last._tag).toBe("MongoUnavailableError")
        expect(last.message).toContain("ECONNREFUSED")
      }

      yield* Effect.promise(ferret.startServer)
      served = 0
      const [recovery] = yield* Effect.retry(
        Effect.suspend(() => (served > 0 ? Effect.void : Effect.fail("not yet"))),
        Schedule.spaced("20 millis").pipe(Schedule.upTo("15 seconds"))
      ).pipe(Effect.timed)
      const recoveredMs = Duration.toMillis(recovery)
      console.info(
        `MongoDB: the pool served again ${Math.round(recoveredMs)} ms after FerretDB was started again; ` +
          `during the outage a checkout failed with ${error._tag} after ${Math.round(Duration.toMillis(took))} ms; ` +
          `failures under load: ${JSON.stringify(Object.fromEntries(failures))}`
      )
      expect(recoveredMs).toBeLessThan(15_000)

      running = false
      const joined = yield* Fiber.join(workers).pipe(Effect.timeout("5 seconds"), Effect.option)
      expect(Option.isSome(joined), "a worker hung").toBe(true)
      for (const tag of failures.keys()) expect(typedTags.has(tag), tag).toBe(true)
      expect(failures.size).toBeGreaterThan(0)
      expect((yield* mongo.pool.stats).inUse).toBe(0)
    }), 60_000)
})
