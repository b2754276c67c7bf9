/**
 * The driver-monitor watchdog (src/mongodb/internal/watchdog.ts): the bound on the virtual clock,
 * and the restart on a real client whose monitor is wedged, through a real proxy to FerretDB.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Logger, Schedule, TestClock } from "effect"
import { EventEmitter } from "node:events"
import type { MongoClient, TopologyDescriptionChangedEvent } from "mongodb"
import { MongoPool } from "../../src/mongodb/index.js"
import { DriverMonitor } from "../../src/mongodb/internal/events.js"
import { stalledAfter, watch } from "../../src/mongodb/internal/watchdog.js"
import type { ResolvedOptions } from "../../src/PoolConfig.js"
import { ferretScoped } from "../utils/ferretdb.js"
import { uniqueName } from "../utils/postgres.js"
import { startToxiproxy } from "../utils/toxiproxy.js"

const timings = { connectTimeoutMS: 1_000, heartbeatFrequencyMS: 500 }

/** A DriverMonitor over a bare emitter standing for the client, and the restarts the watchdog asked for. */
const fakeDriver = Effect.gen(function*() {
  const client = new EventEmitter()
  const monitor = new DriverMonitor(client as unknown as MongoClient, {
    name: "watchdog",
    options: {} as ResolvedOptions,
    clock: yield* Effect.clock,
    sink: { listened: () => false, emit: () => {} },
    onCleared: () => {},
    tracer: undefined,
    parentOf: () => undefined
  })
  const restarts: Array<{ readonly address: string; readonly runningMs: number }> = []
  const fiber = yield* Effect.fork(watch(monitor, timings, (stalled) => Effect.sync(() => restarts.push(stalled))))
  return { client, monitor, restarts, fiber }
})

describe("the driver-monitor watchdog", () => {
  it("bounds a check at 2 x connectTimeoutMS + heartbeatFrequencyMS + 1 s, and never when connectTimeoutMS is 0", () => {
    expect(stalledAfter(timings)).toBe(3_500)
    expect(stalledAfter({ connectTimeoutMS: 30_000, heartbeatFrequencyMS: 10_000 })).toBe(71_000)
    expect(stalledAfter({ connectTimeoutMS: 0, heartbeatFrequencyMS: 10_000 })).toBe(Number.POSITIVE_INFINITY)
  })

  it.effect("restarts once for a check that runs past its bound, and never for checks that end", () =>
    Effect.gen(function*() {
      const { client, restarts, fiber } = yield* fakeDriver
      // Checks that end, however many, are never stalled.
      for (let i = 0; i < 20; i++) {
        client.emit("serverHeartbeatStarted", { connectionId: "a:1", awaited: false })
        yield* TestClock.adjust("400 millis")
        client.emit(i % 2 === 0 ? "serverHeartbeatSucceeded" : "serverHeartbeatFailed", { connectionId: "a:1", failure: new Error("refused") })
      }
      expect(restarts).toStrictEqual([])

      client.emit("serverHeartbeatStarted", { connectionId: "a:1", awaited: false })
      yield* TestClock.adjust("3 seconds")
      expect(restarts).toStrictEqual([])
      yield* TestClock.adjust("1 second")
      expect(restarts).toHaveLength(1)
      expect(restarts[0]!.address).toBe("a:1")
      expect(restarts[0]!.runningMs).toBeGreaterThanOrEqual(3_500)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a restart forgets the checks the closed client left behind, and says no server is known", () =>
    Effect.gen(function*() {
      const { client, monitor, restarts, fiber } = yield* fakeDriver
      client.emit("serverHeartbeatStarted", { connectionId: "a:1", awaited: false })
      yield* TestClock.adjust("4 seconds")
      expect(restarts).toHaveLength(1)
      expect(monitor.available).toBe(false)
      yield* TestClock.adjust("10 seconds")
      expect(restarts).toHaveLength(1)
      // The new client's checks are watched as the old one's were.
      client.emit("serverHeartbeatStarted", { connectionId: "a:1", awaited: false })
      yield* TestClock.adjust("4 seconds")
      expect(restarts).toHaveLength(2)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a server dropped from the topology, or a closed topology, leaves no check behind", () =>
    Effect.gen(function*() {
      const { client, restarts, fiber } = yield* fakeDriver
      // Streaming monitors always have a check outstanding; closing the server ends it without an outcome.
      client.emit("serverHeartbeatStarted", { connectionId: "a:1", awaited: true })
      client.emit("serverClosed", { address: "a:1" })
      client.emit("serverHeartbeatStarted", { connectionId: "b:1", awaited: true })
      client.emit("topologyClosed", {})
      yield* TestClock.adjust("1 minute")
      expect(restarts).toStrictEqual([])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("with connectTimeoutMS 0 it does not run at all", () =>
    Effect.gen(function*() {
      const done = yield* Effect.fork(watch({ stalledCheck: () => ({ address: "a:1", runningMs: 1e9 }), restarted: () => {} }, {
        connectTimeoutMS: 0,
        heartbeatFrequencyMS: 500
      }, () => Effect.die("restarted")))
      yield* TestClock.adjust("1 minute")
      expect(done.unsafePoll()?._tag).toBe("Success")
    }))

  it.scopedLive("a real client whose monitor wedged is restarted, and the pool serves again by itself", () =>
    Effect.gen(function*() {
      const ferret = yield* ferretScoped
      const toxiproxy = yield* Effect.acquireRelease(Effect.promise(startToxiproxy), (server) => Effect.promise(server.stop))
      const link = yield* Effect.promise(() => toxiproxy.proxy(uniqueName("wedge"), `127.0.0.1:${ferret.port}`))
      const warnings: Array<string> = []
      const collector = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const mongo = yield* MongoPool.make({
        url: `mongodb://127.0.0.1:${link.port}/lg_watchdog`,
        maxSize: 4,
        acquireTimeout: "1500 millis",
        driver: { heartbeatFrequencyMS: 500, connectTimeoutMS: 500, serverSelectionTimeoutMS: 1_000 }
      }).pipe(Effect.provide(Logger.add(collector)))
      const ping = mongo.promise((db, { session, signal }) => db.command({ ping: 1 }, { session, signal }))
      yield* ping

      // Wedge the monitor as the driver does when a check's socket closes under it: its next check never settles.
      const server = [...(mongo.client as any).topology.s.servers.values()][0]
      const connection = yield* Effect.succeed(server.monitor.connection).pipe(
        Effect.filterOrFail((c) => c != null),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds")))
      )
      connection.command = () => new Promise(() => {})
      const nextCheck = Effect.async<void>((resume) => {
        mongo.client.once("serverHeartbeatStarted", () => resume(Effect.void))
      })
      yield* nextCheck.pipe(Effect.timeout("5 seconds"))
      // Cut every socket: operations fail until the driver marks the server unknown, and only a check could
      // bring it back.
      const unknown = Effect.async<void>((resume) => {
        const seen = (event: TopologyDescriptionChangedEvent) => {
          if (event.newDescription.hasDataBearingServers) return
          mongo.client.off("topologyDescriptionChanged", seen)
          resume(Effect.void)
        }
        mongo.client.on("topologyDescriptionChanged", seen)
      })
      yield* Effect.promise(() => link.setEnabled(false))
      yield* Effect.raceFirst(unknown, Effect.forever(Effect.either(ping))).pipe(Effect.timeout("5 seconds"))
      yield* Effect.promise(() => link.setEnabled(true))

      const [took] = yield* Effect.timed(Effect.retry(ping, Schedule.spaced("100 millis").pipe(Schedule.upTo("15 seconds"))))
      console.info(`MongoDB watchdog: the pool served again ${Math.round(Duration.toMillis(took))} ms after the proxy came back`)
      expect(warnings.some((line) => line.includes("restarting the MongoClient"))).toBe(true)
      // The bound is 2.5 s here: a restart within it plus a heartbeat and a connect.
      expect(Duration.toMillis(took)).toBeLessThan(8_000)
      expect((yield* mongo.pool.stats).generation).toBeGreaterThan(0)
    }), 60_000)
})
