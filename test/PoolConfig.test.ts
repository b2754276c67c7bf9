import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { PoolConfig } from "../src/index.js"

const problemsOf = (settings: PoolConfig.Settings) =>
  Either.match(PoolConfig.resolve(settings), { onLeft: (error) => error.problems, onRight: () => [] })

// The environment provider's own settings: names joined with "_".
const fromEnv = (vars: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" })

describe("negative durations", () => {
  it("are rejected in every form, not decoded to zero", () => {
    for (const idleTimeout of [-5, "-5 seconds", "-0.5 millis", [-5, 0] as const, BigInt(-5)]) {
      expect(problemsOf({ idleTimeout: idleTimeout as Duration.DurationInput }), String(idleTimeout)).toStrictEqual([
        `idleTimeout must not be negative (got ${String(idleTimeout)})`
      ])
    }
  })

  it("zero and positive ones still decode", () => {
    const resolved = Either.getOrThrow(PoolConfig.resolve({ idleTimeout: "0 seconds", drainTimeout: "-0 seconds" }))
    expect(resolved.idleTimeout).toBe(0)
    expect(resolved.drainTimeout).toBe(0)
    expect(Either.getOrThrow(PoolConfig.resolve({ idleTimeout: "5 seconds" })).idleTimeout).toBe(5_000)
  })
})

describe("settings from the environment", () => {
  it.effect("a negative duration fails at the variable a user sets", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.withConfigProvider(PoolConfig.config("DB_POOL"), fromEnv({ DB_POOL_IDLE_TIMEOUT: "-5 seconds" }))
      )
      expect(String(error)).toContain("DB_POOL_IDLE_TIMEOUT")
      expect(String(error)).toContain("at least zero")
      expect(String(error)).not.toContain("DB_POOL.IDLE_TIMEOUT")
    }))

  it.effect("every malformed variable is named by its real name, all in one error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.withConfigProvider(
        PoolConfig.config("DB_POOL"),
        fromEnv({ DB_POOL_MAX_SIZE: "ten", DB_POOL_ACQUIRE_TIMEOUT: "soon" })
      ))
      expect(String(error)).toContain("at DB_POOL_MAX_SIZE")
      expect(String(error)).toContain("at DB_POOL_ACQUIRE_TIMEOUT")
    }))

  it.effect("Infinity turns a duration off", () =>
    Effect.gen(function*() {
      const settings = yield* Effect.withConfigProvider(
        PoolConfig.config("DB_POOL"),
        fromEnv({ DB_POOL_IDLE_TIMEOUT: "Infinity", DB_POOL_MAX_LIFETIME: "5 minutes" })
      )
      const resolved = Either.getOrThrow(PoolConfig.resolve(settings))
      expect(resolved.idleTimeout).toBe(Number.POSITIVE_INFINITY)
      expect(resolved.maxLifetime).toBe(300_000)
    }))
})
