/**
 * A real PostgreSQL restart under load, through Toxiproxy: a private embedded server is stopped and
 * started again while 30 fibers read and write. Zero hung fibers, every acknowledged write found
 * once, recovery time measured.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import { type EmbeddedServer, startEmbedded, uniqueName } from "../utils/postgres.js"
import { startToxiproxy, type ToxiproxyServer } from "../utils/toxiproxy.js"
import { mix, pgAdapter as adapter, recordResult, resultOf, runScenario, sleep, timeToRecover } from "./harness.js"

// This suite stops and starts its server: it gets its own, never the shared one.
let server: EmbeddedServer
let toxiproxy: ToxiproxyServer
beforeAll(async () => {
  server = await startEmbedded()
  toxiproxy = await startToxiproxy()
  await adapter.prepare(server.url)
})
afterAll(async () => {
  await toxiproxy?.stop()
  await server?.stop()
})

const seed = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)

describe("a real server restart through Toxiproxy", () => {
  it.live(`PostgreSQL stopped and started under load: nothing hung, nothing lost (RELIABILITY_SEED=${seed})`, () =>
    Effect.gen(function*() {
      const name = uniqueName("rel-restart")
      const link = yield* Effect.promise(() => toxiproxy.proxy(name, `127.0.0.1:${server.port}`))
      const createTimeout = 1_000
      const run = yield* runScenario({
        adapter,
        url: server.url,
        target: link,
        settings: { name, maxSize: 8, acquireTimeout: 2_000, createTimeout, checkTimeout: 1_000 },
        load: { fibers: 30, pick: mix(seed), watchdog: "20 seconds", deadline: 5_000, slowMs: 300, bigRows: 500 },
        body: (_, load) =>
          Effect.gen(function*() {
            yield* sleep(2_000)
            const stoppedAt = Date.now()
            yield* Effect.promise(server.stopServer)
            yield* sleep(1_000)
            yield* Effect.promise(server.startServer)
            const upAt = Date.now()
            const recoveryMs = yield* timeToRecover(load.nextOk, 30_000)
            yield* sleep(1_500)
            return { recoveryMs, outageMs: upAt - stoppedAt + recoveryMs }
          })
      })
      // Back within one step of the backoff (5 s, jittered up to x1.2) and a set-up.
      expect(run.extra.recoveryMs).toBeLessThan(6_000 + createTimeout + 1_000)
      expect(run.report.untyped).toStrictEqual([])
      expect(run.report.hung).toBe(0)
      expect(run.leaked).toBe(0)
      expect(run.writes.lost).toStrictEqual([])
      expect(run.writes.duplicated).toStrictEqual([])
      recordResult(resultOf(run, adapter, {
        scenario: "restart",
        load: "30 fibers, mixed reads/writes/slow/large/bad, 5 s deadline each",
        faults: "embedded PostgreSQL stopped (fast shutdown), down 1 s, started again",
        recoveryMs: run.extra.recoveryMs,
        notes: `first success ${run.extra.recoveryMs} ms after the server was back; ` +
          `${run.extra.outageMs} ms from the stop to the first success`
      }))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)), 90_000)
})
