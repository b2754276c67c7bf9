import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Logger, TestClock } from "effect"
import { TestFactory } from "../src/testing/index.js"
import { Pool } from "../src/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

/** Runs `body` with every log line rendered by Effect's logfmt logger into `lines`. */
const withLines = <A, E, R>(body: (lines: ReadonlyArray<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const collector = Logger.map(Logger.logfmtLogger, (line) => {
    lines.push(line)
  })
  return body(lines).pipe(Effect.provide(Logger.add(collector)))
}

const expectOneLine = (lines: ReadonlyArray<string>, message: string): string => {
  const line = lines.find((l) => l.includes(`message="${message}"`))
  expect(line, `a log line "${message}" in:\n${lines.join("\n")}`).toBeDefined()
  expect(line).not.toContain("\n")
  return line!
}

describe("log lines", () => {
  it.scoped("a clear logs what happened in words, the reason as one annotation line", () =>
    withLines((lines) =>
      Effect.gen(function*() {
        const { pool } = yield* makeTestPool({ name: "logged" })
        yield* pool.clear({ reason: new Error("the server restarted\n  at somewhere (file.ts:1:1)") })
        const line = expectOneLine(lines, "pool cleared")
        expect(line).toContain(`reason="Error: the server restarted"`)
        expect(line).toContain("generation=1")
        expect(line).toContain("pool=logged")
        expect(line).not.toContain("somewhere")
      })
    ))

  it.scoped("a throwing listener is logged with the error as a Cause, not a dump", () =>
    withLines((lines) =>
      Effect.gen(function*() {
        const factory = yield* TestFactory.make()
        const pool = yield* Pool.make({
          name: "listener",
          acquire: factory.acquire,
          onEvent: (event) => {
            if (event._tag === "ConnectionCheckedOut") throw new Error("listener bug")
          }
        })
        yield* Effect.scoped(pool.get)
        yield* settle
        const line = expectOneLine(lines, "the onEvent listener threw; the event was dropped for it")
        expect(line).toContain("level=ERROR")
        expect(line).toContain("event=ConnectionCheckedOut")
        expect(line).toMatch(/cause="Error: listener bug/)
      })
    ))

  it.scoped("a suspected leak and a drain deadline log single structured lines", () =>
    withLines((lines) =>
      Effect.gen(function*() {
        const { pool } = yield* makeTestPool({
          name: "leaky",
          leakDetectionThreshold: "50 millis",
          drainTimeout: "1 second"
        })
        const held = yield* holdConnection(pool)
        yield* held.connection
        yield* TestClock.adjust("50 millis")
        const leak = expectOneLine(lines, "connection checked out for longer than leakDetectionThreshold; was it returned?")
        expect(leak).toContain("connectionId=1")
        expect(leak).toContain("leakDetectionThreshold=50ms")
        expect(leak).toMatch(/checkedOutBy="by fiber #\d+/)

        const drain = yield* Effect.fork(pool.drain)
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(drain)
        const late = expectOneLine(lines, "closed the connections still checked out after drainTimeout")
        expect(late).toContain("connections=1")
        expect(late).toContain("drainTimeout=1s")
        yield* held.release
      })
    ))
})
