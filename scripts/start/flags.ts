/**
 * The command line of `npm start`.
 */

export interface Flags {
  readonly poolSize: number
  /** One scenario per entry, run in this order. */
  readonly workers: ReadonlyArray<number>
  /** Operations each worker does; ignored when `durationMs` is set. */
  readonly operations: number
  /** Run each scenario this long instead of a fixed number of operations. */
  readonly durationMs: number | undefined
  readonly json: boolean
  readonly help: boolean
}

/** The results table of the pooler document in ../shared/seeds. */
export const defaults: Flags = {
  poolSize: 10,
  workers: [5, 10, 11, 15, 20, 30, 100],
  operations: 100,
  durationMs: undefined,
  json: false,
  help: false
}

export const usage = `Usage: npm start -- [options]

Runs concurrent workers against one lifeguard pool per scenario and reports what the
pool and the server saw. Without DATABASE_URL an embedded PostgreSQL is started in a
temporary folder and removed at the end.

Options:
  --pool-size <n>      connections in the pool (default ${defaults.poolSize})
  --workers <list>     concurrent workers, one scenario each (default ${defaults.workers.join(",")})
  --operations <n>     operations per worker (default ${defaults.operations}); an operation
                       inserts a row and reads it back, one checkout per statement
  --duration <time>    run each scenario for this long instead, e.g. 500ms, 5s, 1m
  --json               print the results as one JSON array on stdout (run it as
                       npm start -s -- --json, so that npm prints no banner there)
  -h, --help           show this text

Environment:
  DATABASE_URL         use this PostgreSQL server instead of an embedded one
`

/** A flag the user got wrong; the message says which and how to fix it. */
export class FlagError extends Error {
  override readonly name = "FlagError"
}

const positiveInteger = (flag: string, text: string): number => {
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new FlagError(`${flag} wants a whole number of at least 1, got "${text}"`)
  }
  return n
}

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000 }

const duration = (flag: string, text: string): number => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text)
  const ms = match === null ? Number.NaN : Number(match[1]) * durationUnits[match[2] ?? "s"]!
  if (!(ms >= 1)) throw new FlagError(`${flag} wants a duration such as 500ms, 5s or 1m, got "${text}"`)
  return Math.round(ms)
}

export const parse = (argv: ReadonlyArray<string>): Flags => {
  let flags: Flags = defaults
  let operationsGiven = false
  const args = [...argv]
  while (args.length > 0) {
    const arg = args.shift()!
    const eq = arg.indexOf("=")
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg
    const value = (): string => {
      if (eq > 0 && arg.startsWith("--")) return arg.slice(eq + 1)
      const next = args.shift()
      if (next === undefined) throw new FlagError(`${name} needs a value (see --help)`)
      return next
    }
    switch (name) {
      case "--pool-size":
        flags = { ...flags, poolSize: positiveInteger(name, value()) }
        break
      case "--workers":
        flags = { ...flags, workers: value().split(",").map((w) => positiveInteger(name, w)) }
        break
      case "--operations":
        flags = { ...flags, operations: positiveInteger(name, value()) }
        operationsGiven = true
        break
      case "--duration":
        flags = { ...flags, durationMs: duration(name, value()) }
        break
      case "--json":
        flags = { ...flags, json: true }
        break
      case "-h":
      case "--help":
        flags = { ...flags, help: true }
        break
      default:
        throw new FlagError(`unknown option "${arg}" (see --help)`)
    }
  }
  if (operationsGiven && flags.durationMs !== undefined) {
    throw new FlagError("--operations and --duration exclude each other: pick a count or a time")
  }
  return flags
}
