import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Mongo from "../../scripts/start/mongodb.js"
import * as Scenario from "../../scripts/start/scenario.js"
import { sharedServer } from "../utils/ferretdb.js"

const server = await sharedServer()
afterAll(() => server.stop())

describe("npm start: the scenario engine on MongoDB", () => {
  it.scopedLive("10 workers share a pool of 3: every operation succeeds and the driver never holds more than 3", () =>
    Effect.gen(function*() {
      const backend = yield* Mongo.backend(server.url)
      const result = yield* Scenario.run(backend, {
        label: Scenario.label(10, 3),
        workers: 10,
        poolSize: 3,
        operations: 8,
        durationMs: undefined
      })
      expect(result.backend).toBe("mongodb")
      expect(result.failed, JSON.stringify(result.errors)).toBe(0)
      expect(result.operations).toBe(80)
      expect(result.serverSamples).toBeGreaterThan(0)
      expect(result.peakServerConnections).toBeGreaterThan(0)
      expect(result.peakServerConnections).toBeLessThanOrEqual(3)
      expect(result.peakPoolConnections).toBeLessThanOrEqual(3)
      expect(result.peakWaiters).toBeGreaterThan(0)
      // Two operations per scenario operation, each its own lease.
      expect(result.checkouts).toBe(160)
      expect(Scenario.passed(result)).toBe(true)
    }))
})
