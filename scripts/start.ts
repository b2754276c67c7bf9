/**
 * `npm start`: the pooler scenarios (a pool of 10 under 5 to 100 concurrent workers) against a
 * real PostgreSQL, then MongoDB (MONGODB_URL, else FerretDB from tools/ferretdb), with what the
 * pool and the server saw. Needs nothing but `npm install`:
 * without DATABASE_URL it runs on an embedded server that it removes at the end, Ctrl-C too.
 *
 * Exit code 0 only when every operation succeeded and the server never listed more
 * connections from a pool than its size.
 */
import { Cause, Effect, Exit, FiberId, Option } from "effect"
import type { Fiber } from "effect"
import { constants } from "node:os"
import * as Flags from "./start/flags.js"
import * as Mongo from "./start/mongodb.js"
import * as Postgres from "./start/postgres.js"
import * as Report from "./start/report.js"
import * as Scenario from "./start/scenario.js"
import * as Server from "./start/server.js"

const log = (line: string) => process.stderr.write(`${line}\n`)

/** Rewrites one line in a terminal; in a log (CI) prints about a line a second and the last one. */
const progressPrinter = () => {
  let current: Scenario.Scenario | undefined
  let nextLineAt = 0
  return (p: Scenario.Progress) => {
    if (process.stderr.isTTY === true) {
      process.stderr.write(`\r\x1b[K${Report.progressLine(p)}${p.final ? "\n" : ""}`)
      return
    }
    if (p.scenario !== current) {
      current = p.scenario
      nextLineAt = 1000
    }
    if (p.final || p.elapsedMs >= nextLineAt) {
      nextLineAt = p.elapsedMs + 1000
      log(Report.progressLine(p))
    }
  }
}

const main = (flags: Flags.Flags) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Server.server(log)
    if (!server.embedded) log("DATABASE_URL is set: running on that server")
    const mongodb = yield* Mongo.server(log)
    const backends: ReadonlyArray<Scenario.Backend> = [
      yield* Postgres.backend(server.url),
      ...(Option.isSome(mongodb) ? [yield* Mongo.backend(mongodb.value)] : [])
    ]

    const onProgress = progressPrinter()
    const results: Array<Scenario.ScenarioResult> = []
    for (const backend of backends) {
      log(`${backend.name}: pool of ${flags.poolSize}, ` +
        (flags.durationMs === undefined
          ? `${flags.operations} operations per worker`
          : `${flags.durationMs}ms per scenario`) +
        " (an operation inserts a row and reads it back)")
      for (const workers of flags.workers) {
        const scenario: Scenario.Scenario = {
          label: Scenario.label(workers, flags.poolSize),
          workers,
          poolSize: flags.poolSize,
          operations: flags.operations,
          durationMs: flags.durationMs
        }
        results.push(yield* Scenario.run(backend, scenario, { onProgress, progressEveryMs: 200 }))
      }
    }

    if (flags.json) {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
    } else {
      for (const backend of backends) {
        const own = results.filter((r) => r.backend === backend.name)
        process.stdout.write(`\n${backend.name}, pool of ${flags.poolSize}:\n\n${Report.table(own)}\n\n`)
      }
    }
    const problems = Report.problems(results)
    for (const problem of problems) log(`FAILED ${problem}`)
    if (!flags.json && problems.length === 0) {
      log("every operation succeeded and no server saw more connections than the pool size")
    }
    return problems.length === 0 ? 0 : 1
  }))

const start = () => {
  let flags: Flags.Flags
  try {
    flags = Flags.parse(process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof Flags.FlagError)) throw error
    log(`npm start: ${error.message}`)
    process.exit(2)
  }
  if (flags.help) {
    process.stdout.write(Flags.usage)
    process.exit(0)
  }

  // A signal interrupts the program so that every scope closes: pools drain, the embedded
  // server stops and its folder goes. Repeats are ignored: npm, tsx and the terminal may each
  // deliver the same Ctrl-C.
  let signalled: NodeJS.Signals | undefined
  let fiber: Fiber.RuntimeFiber<number, unknown> | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== undefined) return
    signalled = signal
    log(`\n${signal}: stopping and cleaning up`)
    fiber?.unsafeInterruptAsFork(FiberId.none)
  }
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal)

  fiber = Effect.runFork(main(flags))
  fiber.addObserver((exit) => {
    if (signalled !== undefined) process.exit(128 + constants.signals[signalled])
    if (Exit.isSuccess(exit)) process.exit(exit.value)
    const failure = Cause.failureOption(exit.cause)
    log(
      failure._tag === "Some" && failure.value instanceof Error
        ? `npm start failed: ${failure.value.message}`
        : `npm start failed:\n${Cause.pretty(exit.cause)}`
    )
    process.exit(1)
  })
}

start()
