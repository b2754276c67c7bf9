/**
 * `npm run bench`: lifeguard side by side with its peers, in one process.
 *
 *   npm run bench                       every suite, tables on stdout, writes docs/bench/
 *   npm run bench -- --json             the same results as one JSON array on stdout
 *   npm run bench -- --suite inmem      one suite (repeat or comma-separate for more)
 *   npm run bench -- --quick            short windows, one repetition; writes nothing
 *   npm run bench -- --reps 7           repetitions of inmem and pg (default 5, quick 1);
 *                                       fairness takes up to 3, scale up to 2, memory one pass
 *   npm run bench -- --no-write         leave docs/bench/ alone
 *
 * npm prints its own "> lifeguard@0.1.0 bench" banner on stdout; for JSON
 * alone there use `npm run -s bench -- --json`.
 *
 * Progress goes to stderr. The exit code is 1 when a suite failed.
 */
import { fairness } from "./fairness.js"
import { inmem } from "./inmem.js"
import { memory } from "./memory.js"
import { mongodb } from "./mongodb.js"
import { pg } from "./pg.js"
import { report, targets } from "./report.js"
import { scale } from "./scale.js"
import type { Result, Suite } from "./measure.js"
import { writeResults } from "./write.js"

/** In run order. A new suite (MongoDB, say) is one more entry here. */
const suites: ReadonlyArray<Suite> = [inmem, pg, mongodb, memory, fairness, scale]

interface Args {
  readonly help: boolean
  readonly json: boolean
  readonly quick: boolean
  readonly write: boolean
  readonly reps: number | undefined
  readonly suites: ReadonlyArray<string>
}

const usage = `usage: npm run bench -- [--json] [--quick] [--suite ${suites.map((s) => s.name).join("|")}]... [--reps N] [--no-write]`

const parseArgs = (argv: ReadonlyArray<string>): Args => {
  let help = false
  let json = false
  let quick = false
  let write = true
  let reps: number | undefined
  const chosen: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes("=") ? arg.split("=", 2) as [string, string] : [arg, undefined]
    const value = () => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value\n${usage}`)
      return v
    }
    switch (flag) {
      case "--json":
        json = true
        break
      case "--quick":
        quick = true
        break
      case "--no-write":
        write = false
        break
      case "--suite":
        chosen.push(...value().split(","))
        break
      case "--reps": {
        const n = Number(value())
        if (!Number.isInteger(n) || n < 1) throw new Error(`--reps takes a positive integer\n${usage}`)
        reps = n
        break
      }
      case "--help":
      case "-h":
        help = true
        break
      default:
        throw new Error(`unknown argument ${arg}\n${usage}`)
    }
  }
  for (const name of chosen) {
    if (!suites.some((s) => s.name === name)) throw new Error(`unknown suite ${name}\n${usage}`)
  }
  return { help, json, quick, write, reps, suites: chosen }
}

const main = async () => {
  const args = parseArgs(process.argv.slice(2))
  const log = (message: string) => process.stderr.write(message + "\n")
  if (args.help) return log(usage)
  const selected = args.suites.length === 0 ? suites : suites.filter((s) => args.suites.includes(s.name))
  const reps = args.reps ?? (args.quick ? 1 : 5)
  const started = Date.now()
  const results: Array<Result> = []
  const failed: Array<string> = []
  for (const suite of selected) {
    const t0 = Date.now()
    log(`== ${suite.name}`)
    try {
      const rs = await suite.run({ quick: args.quick, reps, log })
      results.push(...rs)
      log(`== ${suite.name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      if (!args.json) process.stdout.write(report(suite, rs) + "\n")
    } catch (error) {
      failed.push(suite.name)
      log(`== ${suite.name} FAILED: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    }
  }
  const checks = targets(results)
  const summary = checks.map((c) => `${c.met ? "met   " : "MISSED"} ${c.target}: ${c.detail}`).join("\n")
  if (args.json) {
    process.stdout.write(JSON.stringify(results, null, 2) + "\n")
    if (checks.length > 0) log(summary)
  } else if (checks.length > 0) {
    process.stdout.write(`targets\n${summary}\n`)
  }
  log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (args.write && !args.quick && results.length > 0) {
    const written = await writeResults(results, { reps, seconds: (Date.now() - started) / 1000 })
    log(`wrote ${written.join(", ")}`)
  }
  if (failed.length > 0) {
    log(`failed suites: ${failed.join(", ")}`)
    process.exitCode = 1
  }
}

let finished = false
process.on("exit", (code) => {
  // The event loop ran dry with the run still waiting on a promise nobody will settle.
  if (!finished && code === 0) {
    process.stderr.write("bench stopped before it finished: a contender left a promise that never settles\n")
    process.exitCode = 1
  }
})

main().then(
  () => {
    finished = true
    // Every pool and client is closed by now; a stray timer must not keep the run alive.
    process.exit()
  },
  (error: unknown) => {
    finished = true
    process.stderr.write((error instanceof Error ? error.message : String(error)) + "\n")
    process.exit(2)
  }
)
