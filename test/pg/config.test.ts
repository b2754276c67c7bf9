import { afterAll, describe, expect, it } from "@effect/vitest"
import type { SqlClient } from "@effect/sql"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { PoolConfig } from "../../src/index.js"
import type { PoolConfigError } from "../../src/PoolError.js"
import { PgPool } from "../../src/pg/index.js"
import { sharedServer } from "../utils/postgres.js"

const server = await sharedServer()
afterAll(() => server.stop())

// A value other than the default for every core setting, as code gives it, as the environment
// gives it, and as pool.options reports it.
const walk: { readonly [K in keyof PoolConfig.ResolvedOptions]: readonly [PoolConfig.Settings[K], string, unknown] } = {
  name: ["walk", "walk", "walk"],
  maxSize: [7, "7", 7],
  minIdle: [1, "1", 1],
  maxConnecting: [3, "3", 3],
  acquireTimeout: ["7 seconds", "7 seconds", 7_000],
  createTimeout: ["3 seconds", "3 seconds", 3_000],
  idleTimeout: ["7 minutes", "7 minutes", 420_000],
  maxLifetime: ["9 minutes", "9 minutes", 540_000],
  lifetimeJitter: ["20 seconds", "20 seconds", 20_000],
  maxUses: [70, "70", 70],
  validateAfterIdle: ["7 seconds", "7 seconds", 7_000],
  checkTimeout: ["2 seconds", "2 seconds", 2_000],
  leakDetectionThreshold: ["7 minutes", "7 minutes", 420_000],
  traceWaitsOver: ["7 millis", "7 millis", 7],
  maxWaiters: [77, "77", 77],
  reuse: ["fifo", "fifo", "fifo"],
  maintenanceInterval: ["7 seconds", "7 seconds", 7_000],
  drainTimeout: ["7 seconds", "7 seconds", 7_000],
  startPaused: [true, "true", true],
  initializationFailTimeout: ["4 seconds", "4 seconds", 4_000]
}

// A paused pool opens nothing, so it cannot pass a start-up check: this one is built on its own.
const alone = new Set(["startPaused"])
const entries = (pick: boolean) => Object.entries(walk).filter(([key]) => alone.has(key) === pick)

const envName = (key: string) => `PG_POOL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
const fromEnv = (vars: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))

const optionsOf = (layer: Layer.Layer<PgPool.PgPool, unknown>) =>
  Effect.scoped(Effect.map(Layer.build(layer), (context) => Context.get(context, PgPool.PgPool).options))

const configErrorOf = <E extends { readonly _tag: string; readonly message: string }>(
  layer: Layer.Layer<PgPool.PgPool | SqlClient.SqlClient, E>
) => Effect.scoped(Effect.flip(Layer.build(layer)))

describe("every core setting passes through the adapter", () => {
  it("the walk covers every setting the core has", () => {
    expect(Object.keys(walk).sort()).toStrictEqual(Object.keys(PoolConfig.defaults).sort())
    for (const [key, [, , resolved]] of Object.entries(walk)) {
      expect(resolved, key).not.toStrictEqual(PoolConfig.defaults[key as keyof PoolConfig.ResolvedOptions])
    }
  })

  for (const pick of [false, true]) {
    const keys = entries(pick).map(([key]) => key).join(", ")
    it.live(`given to PgPool.layer: ${keys}`, () =>
      Effect.gen(function*() {
        const options = Object.fromEntries(entries(pick).map(([key, [value]]) => [key, value]))
        const resolved = yield* optionsOf(PgPool.layer({ url: server.url, ...options }))
        for (const [key, [, , expected]] of entries(pick)) {
          expect(resolved[key as keyof typeof resolved], key).toStrictEqual(expected)
        }
      }))

    it.live(`read from PG_POOL_* by layerConfig: ${keys}`, () =>
      Effect.gen(function*() {
        const vars = Object.fromEntries(entries(pick).map(([key, [, text]]) => [envName(key), text]))
        const resolved = yield* optionsOf(
          PgPool.layerConfig().pipe(Layer.provide(fromEnv({ DATABASE_URL: server.url, ...vars })))
        )
        for (const [key, [, , expected]] of entries(pick)) {
          expect(resolved[key as keyof typeof resolved], `${key} from ${envName(key)}`).toStrictEqual(expected)
        }
      }))
  }
})

describe("connection settings that cannot work fail the layer build with a PoolConfigError", () => {
  const cases: ReadonlyArray<readonly [string, PgPool.Options, RegExp]> = [
    ["an empty url", { url: "" }, /url is empty/],
    ["a url that does not parse", { url: "postgres://app:secret@[::1/db" }, /url is not a valid URL/],
    ["a url port out of range", { url: "postgres://app@127.0.0.1:99999/db" }, /url has port 99999/],
    ["a url port of zero", { url: "postgres://app@127.0.0.1:0/db" }, /the url's port must be a whole number from 1 to 65535 \(got 0\)/],
    ["a port out of range", { host: "127.0.0.1", port: 70_000 }, /port must be a whole number from 1 to 65535 \(got 70000\)/],
    ["a wrong scheme", { url: "mysql://app:secret@127.0.0.1:3306/db" }, /url must start with postgres:\/\/ or postgresql:\/\//],
    ["no scheme at all", { url: "127.0.0.1:5432/db" }, /url must start with postgres:\/\//]
  ]
  for (const [what, options, message] of cases) {
    it.live(what, () =>
      Effect.gen(function*() {
        const error = yield* configErrorOf(PgPool.layer(options))
        expect(error._tag).toBe("PoolConfigError")
        expect(error.message).toMatch(message)
        expect(error.message).toContain(`pool "pg"`)
        // The password never shows in a message.
        expect(error.message).not.toContain("secret")
      }))
  }

  it.live("every problem is listed, connection and pool settings together", () =>
    Effect.gen(function*() {
      const error = (yield* configErrorOf(
        PgPool.layer({ url: "mysql://127.0.0.1/db", maxSize: 0, idleTimeout: "-5 seconds" })
      )) as PoolConfigError
      expect(error._tag).toBe("PoolConfigError")
      expect(error.problems).toHaveLength(3)
      expect(error.message).toMatch(/url must start with postgres/)
      expect(error.message).toMatch(/maxSize must be a whole number of at least 1/)
      expect(error.message).toMatch(/idleTimeout must not be negative \(got -5 seconds\)/)
    }))

  it.live("from the environment, each problem names the variable it came from", () =>
    Effect.gen(function*() {
      const empty = (yield* configErrorOf(
        PgPool.layerConfig().pipe(Layer.provide(fromEnv({ DATABASE_URL: "", PG_POOL_MAX_SIZE: "0" })))
      )) as PoolConfigError
      expect(empty._tag).toBe("PoolConfigError")
      expect(empty.problems).toStrictEqual([
        "DATABASE_URL is empty",
        "maxSize must be a whole number of at least 1 (got 0)"
      ])
      const scheme = yield* configErrorOf(
        PgPool.layerConfig().pipe(Layer.provide(fromEnv({ DATABASE_URL: "http://127.0.0.1/db" })))
      )
      expect(scheme.message).toMatch(/DATABASE_URL must start with postgres:\/\//)
      const port = yield* configErrorOf(
        PgPool.layerConfig().pipe(Layer.provide(fromEnv({ PGHOST: "127.0.0.1", PGPORT: "65536" })))
      )
      expect(port._tag).toBe("PoolConfigError")
      expect(port.message).toMatch(/PGPORT must be a whole number from 1 to 65535 \(got 65536\)/)
    }))

  it.live("a malformed pool variable is a ConfigError at its real name", () =>
    Effect.gen(function*() {
      const error = yield* configErrorOf(
        PgPool.layerConfig().pipe(Layer.provide(fromEnv({ DATABASE_URL: server.url, PG_POOL_IDLE_TIMEOUT: "-5 seconds" })))
      )
      expect(String(error)).toContain("PG_POOL_IDLE_TIMEOUT")
      expect(String(error)).not.toContain("PG_POOL.IDLE_TIMEOUT")
    }))
})
