/**
 * Runs the MongoDB CMAP spec tests (the JSON files of the specification's
 * cmap-format folder) against a lifeguard pool whose connections come from
 * the in-memory `TestFactory`.
 *
 * The files are read at run time from a folder outside the repository (their
 * licence keeps them out of this repository); see `specDir`.
 *
 * How the CMAP vocabulary maps onto the pool:
 * - A CMAP pool starts paused, and its `clear` pauses it: `startPaused` and
 *   `clear({ pause: true })`.
 * - `checkOut` is `pool.get` in a scope of its own; `checkIn` closes that scope.
 * - `close` is `pool.drain`, forked: drain waits for connections in use, but
 *   `ConnectionPoolClosed` is emitted once the idle ones are closed, so the
 *   operation waits for that event.
 * - Threads are fibers that run their operations one after another.
 * - Set-up failures are not retried: a CMAP pool reports them to the checkout
 *   that caused them.
 *
 * Where the comparison is looser than the spec's, on purpose:
 * - Our events are tagged by `_tag`; `cmapView` names it `type` as the files do.
 * - The in-memory pool has no server, so its events carry no `address`, and an
 *   expected `address` is taken as satisfied.
 * - Errors are compared by type only: our messages say what to do about the
 *   error and differ from a driver's by design.
 *
 * Time is the live clock: the files sleep and wait for real (a few hundred
 * milliseconds in all).
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Types from "effect/Types"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Pool, type PoolConfig, type PoolEvent } from "../../src/index.js"
import { TestFactory } from "../../src/testing/index.js"

// --- The file format --------------------------------------------------------

const thread = { thread: Schema.optional(Schema.String) }

const Operation = Schema.Union(
  Schema.Struct({ name: Schema.Literal("start"), target: Schema.String, ...thread }),
  Schema.Struct({ name: Schema.Literal("wait"), ms: Schema.Number, ...thread }),
  Schema.Struct({ name: Schema.Literal("waitForThread"), target: Schema.String, ...thread }),
  Schema.Struct({
    name: Schema.Literal("waitForEvent"),
    event: Schema.String,
    count: Schema.Number,
    timeout: Schema.optional(Schema.Number),
    ...thread
  }),
  Schema.Struct({ name: Schema.Literal("checkOut"), label: Schema.optional(Schema.String), ...thread }),
  Schema.Struct({ name: Schema.Literal("checkIn"), connection: Schema.String, ...thread }),
  Schema.Struct({
    name: Schema.Literal("clear"),
    interruptInUseConnections: Schema.optional(Schema.Boolean),
    ...thread
  }),
  Schema.Struct({ name: Schema.Literal("close"), ...thread }),
  Schema.Struct({ name: Schema.Literal("ready"), ...thread })
)

export type Operation = typeof Operation.Type

const PoolOptions = Schema.Struct({
  maxPoolSize: Schema.optional(Schema.Number),
  minPoolSize: Schema.optional(Schema.Number),
  maxIdleTimeMS: Schema.optional(Schema.Number),
  maxConnecting: Schema.optional(Schema.Number),
  waitQueueTimeoutMS: Schema.optional(Schema.Number),
  backgroundThreadIntervalMS: Schema.optional(Schema.Number),
  connectTimeoutMS: Schema.optional(Schema.Number),
  // Integration files name the client the fail point targets, and bound reads
  // on a socket; an in-memory factory has neither.
  appName: Schema.optional(Schema.String),
  socketTimeoutMS: Schema.optional(Schema.Number)
})

const FailPoint = Schema.Struct({
  configureFailPoint: Schema.optional(Schema.Literal("failCommand")),
  mode: Schema.optional(Schema.Union(Schema.Literal("alwaysOn", "off"), Schema.Struct({ times: Schema.Number }))),
  data: Schema.Struct({
    // Which handshake commands fail. In memory the whole set-up is the handshake.
    failCommands: Schema.optional(Schema.Array(Schema.String)),
    appName: Schema.optional(Schema.String),
    blockConnection: Schema.optional(Schema.Boolean),
    blockTimeMS: Schema.optional(Schema.Number),
    errorCode: Schema.optional(Schema.Number),
    closeConnection: Schema.optional(Schema.Boolean),
    // The spec puts `times` under `mode`; the shared folder's README under `data`.
    times: Schema.optional(Schema.Number)
  })
})

const ExpectedEvent = Schema.Struct(
  { type: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

const SpecSchema = Schema.Struct({
  version: Schema.Number,
  style: Schema.Literal("unit", "integration"),
  description: Schema.String,
  runOn: Schema.optional(Schema.Array(Schema.Unknown)),
  failPoint: Schema.optional(FailPoint),
  poolOptions: Schema.optional(PoolOptions),
  operations: Schema.Array(Operation),
  error: Schema.optional(Schema.Struct({
    type: Schema.String,
    message: Schema.optional(Schema.String),
    address: Schema.optional(Schema.Unknown)
  })),
  events: Schema.Array(ExpectedEvent),
  ignore: Schema.optional(Schema.Array(Schema.String))
})

/**
 * One CMAP test file.
 */
export type Spec = typeof SpecSchema.Type

/**
 * Why a spec file did not pass.
 */
export class ConformanceFailure extends Data.TaggedError("ConformanceFailure")<{
  readonly reason: string
}> {
  override get message(): string {
    return this.reason
  }
}

// Unknown keys are rejected: an option or operation the runner silently
// dropped could make a file pass for the wrong reason.
const decodeSpec = Schema.decodeUnknownEither(SpecSchema, { onExcessProperty: "error", errors: "all" })

/**
 * Checks that a parsed JSON value is a CMAP test.
 */
export const parseSpec = (json: unknown): Either.Either<Spec, ConformanceFailure> =>
  Either.mapLeft(decodeSpec(json), (error) => new ConformanceFailure({ reason: `not a CMAP test: ${error.message}` }))

// --- Where the files are -----------------------------------------------------

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/**
 * The folder to read: `CMAP_SPEC_DIR` (relative to the repository root),
 * else `../shared/cmap-spec` next to the repository.
 */
export const specDir = (): string => path.resolve(repoRoot, process.env["CMAP_SPEC_DIR"] ?? "../shared/cmap-spec")

/**
 * The JSON files of a folder, sorted; a missing or empty folder is an error
 * that says where it looked.
 */
export const specFiles = (dir: string): Either.Either<ReadonlyArray<string>, ConformanceFailure> => {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    return Either.left(
      new ConformanceFailure({
        reason: `no CMAP spec folder at ${dir}. The files are the JSON tests of the MongoDB specifications ` +
          `repository's source/connection-monitoring-and-pooling/tests/cmap-format folder ` +
          `(https://github.com/mongodb/specifications); put them in ../shared/cmap-spec next to the ` +
          `repository, or set CMAP_SPEC_DIR (npm run conformance: --spec-dir) to their folder`
      })
    )
  }
  const files = fs.readdirSync(dir).filter((name) => name.endsWith(".json")).sort()
  return files.length === 0
    ? Either.left(new ConformanceFailure({ reason: `the CMAP spec folder ${dir} holds no .json files` }))
    : Either.right(files)
}

/**
 * Reads, parses and runs one file.
 */
export const runFile = (file: string): Effect.Effect<void, ConformanceFailure> =>
  Effect.try({
    try: () => JSON.parse(fs.readFileSync(file, "utf8")) as unknown,
    catch: (error) => new ConformanceFailure({ reason: `cannot read ${file}: ${String(error)}` })
  }).pipe(
    Effect.flatMap((json) => parseSpec(json)),
    Effect.flatMap(runSpec)
  )

// --- Running a file ----------------------------------------------------------

const defaultEventTimeout = Duration.seconds(10)
// Bounds a file whose thread or checkout never finishes.
const operationsTimeout = Duration.seconds(20)
// "Never run the background task": a run a day never happens within a test.
const never = Duration.hours(24)

/** What the main thread, or a thread it waits for, failed with, named as CMAP names it. */
class ThreadError extends Data.TaggedError("ThreadError")<{
  readonly type: string
  readonly detail: string
}> {}

// Our tags against CMAP's error types. Any other error keeps its tag.
const cmapErrorTypes: Record<string, string> = {
  PoolClosedError: "PoolClosedError",
  PoolTimeoutError: "WaitQueueTimeoutError",
  PoolClearedError: "PoolClearedError"
}

const toThreadError = (error: unknown): ThreadError => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Error"
  const detail = error instanceof Error ? error.message : String(error)
  return new ThreadError({ type: cmapErrorTypes[tag] ?? tag, detail })
}

const runnerError = (detail: string) => new ThreadError({ type: "RunnerError", detail })

type Connection = TestFactory.TestConnection

interface Run {
  readonly pool: Pool.Pool<Connection, TestFactory.TestConnectError>
  readonly events: Array<PoolEvent.PoolEvent>
  /** Each thread's most recent operation; the next one starts when it ends. */
  readonly threads: Map<string, Fiber.Fiber<void, ThreadError>>
  readonly threadScope: Scope.CloseableScope
  /** The forked drains of `close`. */
  readonly closeScope: Scope.CloseableScope
  readonly labelled: Map<string, Scope.CloseableScope>
  /** The scope of every checkout not yet checked in, labelled or not. */
  readonly held: Set<Scope.CloseableScope>
}

// CMAP writes "no limit" as 0.
const limit = (ms: number): Duration.Duration => ms === 0 ? Duration.infinity : Duration.millis(ms)

const settingsOf = (options: Spec["poolOptions"]): PoolConfig.Settings => {
  const settings: Types.Mutable<PoolConfig.Settings> = { name: "cmap", startPaused: true }
  if (options === undefined) return settings
  if (options.maxPoolSize !== undefined) {
    settings.maxSize = options.maxPoolSize === 0 ? Number.POSITIVE_INFINITY : options.maxPoolSize
  }
  if (options.minPoolSize !== undefined) settings.minIdle = options.minPoolSize
  if (options.maxIdleTimeMS !== undefined) settings.idleTimeout = limit(options.maxIdleTimeMS)
  if (options.maxConnecting !== undefined) settings.maxConnecting = options.maxConnecting
  if (options.waitQueueTimeoutMS !== undefined) settings.acquireTimeout = limit(options.waitQueueTimeoutMS)
  if (options.connectTimeoutMS !== undefined) settings.createTimeout = limit(options.connectTimeoutMS)
  if (options.backgroundThreadIntervalMS !== undefined) {
    settings.maintenanceInterval = options.backgroundThreadIntervalMS < 0
      ? never
      : Duration.millis(options.backgroundThreadIntervalMS)
  }
  return settings
}

const failPointOf = (failPoint: NonNullable<Spec["failPoint"]>): TestFactory.FailPoint | undefined => {
  const { data, mode = "alwaysOn" } = failPoint
  if (mode === "off") return undefined
  const times = data.times ?? (typeof mode === "object" ? mode.times : undefined)
  const fail = data.errorCode !== undefined
    ? `the server answered the handshake with error code ${data.errorCode}`
    : data.closeConnection === true
    ? "the server closed the connection during the handshake"
    : undefined
  return {
    ...(times === undefined ? {} : { times }),
    ...(data.blockConnection === true && data.blockTimeMS !== undefined
      ? { delay: Duration.millis(data.blockTimeMS) }
      : {}),
    ...(fail === undefined ? {} : { fail })
  }
}

const finite = (ms: number): number => Number.isFinite(ms) ? ms : 0

/** An event as the spec files write it: our option names map back to CMAP's. */
const cmapView = (event: PoolEvent.PoolEvent): Record<string, unknown> => {
  const { _tag: type, ...fields } = event
  if (event._tag !== "ConnectionPoolCreated") return { type, ...fields }
  const o = event.options
  return {
    type,
    ...fields,
    options: {
      maxPoolSize: finite(o.maxSize),
      minPoolSize: o.minIdle,
      maxIdleTimeMS: finite(o.idleTimeout),
      maxConnecting: o.maxConnecting,
      waitQueueTimeoutMS: finite(o.acquireTimeout)
    }
  }
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value)

/**
 * The spec's MATCH: `42` (or `"42"`) is "present, any value", objects match
 * when the expected keys are a subset, arrays element by element. Returns why
 * not, or `undefined` when they match.
 */
export const mismatch = (expected: unknown, actual: unknown, at = "value"): string | undefined => {
  if (expected === 42 || expected === "42") {
    return actual === undefined || actual === null ? `${at} is missing` : undefined
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${at}: expected an array, got ${show(actual)}`
    for (let i = 0; i < expected.length; i++) {
      const why = mismatch(expected[i], actual[i], `${at}[${i}]`)
      if (why !== undefined) return why
    }
    return undefined
  }
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) {
      return `${at}: expected an object, got ${show(actual)}`
    }
    for (const [key, value] of Object.entries(expected)) {
      const why = mismatch(value, (actual as Record<string, unknown>)[key], `${at}.${key}`)
      if (why !== undefined) return why
    }
    return undefined
  }
  return Object.is(expected, actual) ? undefined : `${at}: expected ${show(expected)}, got ${show(actual)}`
}

const describeEvent = (event: Record<string, unknown>): string => {
  const details = ["connectionId", "reason", "interruptInUseConnections"]
    .filter((key) => event[key] !== undefined)
    .map((key) => `${key}=${show(event[key])}`)
  return details.length === 0 ? String(event["type"]) : `${String(event["type"])}(${details.join(", ")})`
}

/**
 * Compares the events a run emitted with a file's expected ones. Returns why
 * they differ, or `undefined`.
 */
export const eventsMismatch = (
  expected: Spec["events"],
  ignore: ReadonlyArray<string>,
  emitted: ReadonlyArray<PoolEvent.PoolEvent>
): string | undefined => {
  const actual = emitted.filter((event) => !ignore.includes(event._tag)).map(cmapView)
  for (let i = 0; i < expected.length; i++) {
    // Our events have no address; see the module comment.
    const { address: _address, ...wanted } = expected[i]!
    const got = actual[i]
    const why = got === undefined
      ? `expected ${wanted.type} as event #${i + 1}, but only ${actual.length} events were emitted`
      : mismatch(wanted, got, `event #${i + 1} (${wanted.type})`)
    if (why !== undefined) {
      return `${why}\n  expected: ${expected.map((e) => describeEvent(e)).join(", ")}` +
        `\n  emitted:  ${actual.map(describeEvent).join(", ")}`
    }
  }
  return undefined
}

const countOf = (run: Run, type: string): number => run.events.filter((event) => event._tag === type).length

const waitForEvent = (run: Run, type: string, count: number, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    while (countOf(run, type) < count) yield* Effect.sleep(Duration.millis(2))
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        runnerError(`waited ${Duration.format(timeout)} for ${count} ${type} event(s), saw ${countOf(run, type)}`)
    })
  )

const checkOut = (run: Run, label: string | undefined) =>
  Effect.gen(function*() {
    if (label !== undefined && run.labelled.has(label)) {
      return yield* runnerError(`connection label "${label}" is already checked out`)
    }
    const scope = yield* Scope.make()
    run.held.add(scope)
    const exit = yield* Effect.exit(Scope.extend(run.pool.get, scope))
    if (Exit.isFailure(exit)) {
      run.held.delete(scope)
      yield* Scope.close(scope, Exit.void)
      return yield* Cause.failureOrCause(exit.cause).pipe(
        Either.match({
          onLeft: (error) => Effect.fail(toThreadError(error)),
          onRight: (cause) => Effect.failCause(cause)
        })
      )
    }
    if (label !== undefined) run.labelled.set(label, scope)
  })

const checkIn = (run: Run, label: string) =>
  Effect.gen(function*() {
    const scope = run.labelled.get(label)
    if (scope === undefined) return yield* runnerError(`no connection is checked out as "${label}"`)
    run.labelled.delete(label)
    run.held.delete(scope)
    yield* Scope.close(scope, Exit.void)
  })

const perform = (run: Run, op: Operation): Effect.Effect<void, ThreadError> => {
  switch (op.name) {
    case "start":
      return run.threads.has(op.target)
        ? runnerError(`thread "${op.target}" was already started`)
        : Effect.map(Effect.forkIn(Effect.void, run.threadScope), (idle) => {
          run.threads.set(op.target, idle)
        })
    case "wait":
      return Effect.sleep(Duration.millis(op.ms))
    case "waitForThread": {
      const last = run.threads.get(op.target)
      return last === undefined ? runnerError(`thread "${op.target}" was never started`) : Fiber.join(last)
    }
    case "waitForEvent":
      return waitForEvent(
        run,
        op.event,
        op.count,
        op.timeout === undefined ? defaultEventTimeout : Duration.millis(op.timeout)
      )
    case "checkOut":
      return checkOut(run, op.label)
    case "checkIn":
      return checkIn(run, op.connection)
    case "clear":
      return run.pool.clear({ interruptInUse: op.interruptInUseConnections ?? false, pause: true })
    case "close":
      return Effect.zipRight(
        Effect.forkIn(run.pool.drain, run.closeScope),
        waitForEvent(run, "ConnectionPoolClosed", 1, defaultEventTimeout)
      )
    case "ready":
      return run.pool.ready
  }
}

/** Runs `op` on the main thread, or queues it behind its thread's previous operation. */
const dispatch = (run: Run, op: Operation): Effect.Effect<void, ThreadError> => {
  if (op.thread === undefined) return perform(run, op)
  const name = op.thread
  const previous = run.threads.get(name)
  if (previous === undefined) return runnerError(`operation ${op.name} on thread "${name}", which was never started`)
  // A thread stops at its first error: the operations after it fail with it.
  return Effect.map(Effect.forkIn(Effect.zipRight(Fiber.join(previous), perform(run, op)), run.threadScope), (next) => {
    run.threads.set(name, next)
  })
}

const checkError = (expected: Spec["error"], outcome: Exit.Exit<void, ThreadError>): string | undefined => {
  if (Exit.isSuccess(outcome)) {
    return expected === undefined ? undefined : `expected the main thread to fail with ${expected.type}, it did not`
  }
  const failure = Cause.failureOption(outcome.cause)
  const actual = failure._tag === "Some"
    ? failure.value
    : new ThreadError({ type: "Defect", detail: Cause.pretty(outcome.cause) })
  if (expected === undefined) return `the main thread failed with ${actual.type}: ${actual.detail}`
  // Types only: our messages are written for pool users and differ from a driver's.
  return actual.type === expected.type
    ? undefined
    : `expected the main thread to fail with ${expected.type}, it failed with ${actual.type}: ${actual.detail}`
}

/**
 * Runs one CMAP test and fails with the first difference from what it expects.
 * Every pool, fiber and scope it opens is closed before it returns, and the
 * pool must have closed every connection it opened.
 */
export const runSpec = (spec: Spec): Effect.Effect<void, ConformanceFailure> =>
  Effect.gen(function*() {
    const factory = yield* TestFactory.make()
    yield* Effect.scoped(runIn(spec, factory))
    // Set-ups still in flight are not counted: the pool lets them finish in
    // the background, and they close themselves when they land.
    const { open } = factory.counters()
    if (open > 0) {
      return yield* new ConformanceFailure({ reason: `the pool was closed but left ${open} connection(s) open` })
    }
  }).pipe(
    // The pool's own logs (clears, failed set-ups) would interleave with the report.
    Logger.withMinimumLogLevel(LogLevel.Error)
  )

const runIn = (spec: Spec, factory: TestFactory.TestFactory) =>
  Effect.gen(function*() {
    if (spec.failPoint !== undefined) yield* factory.setFailPoint(failPointOf(spec.failPoint))
    const events: Array<PoolEvent.PoolEvent> = []
    const pool = yield* Pool.make({
      ...settingsOf(spec.poolOptions),
      acquire: factory.acquire,
      retrySchedule: Schedule.stop,
      onEvent: (event) => {
        events.push(event)
      }
    }).pipe(Effect.mapError((error) => new ConformanceFailure({ reason: `pool options rejected: ${error.message}` })))
    const run: Run = {
      pool,
      events,
      threads: new Map(),
      threadScope: yield* Scope.make(),
      closeScope: yield* Scope.make(),
      labelled: new Map(),
      held: new Set()
    }
    // Added after the pool, so it runs before the pool's own drain: stop the
    // threads (a waiting checkout must not grab what comes back), return every
    // connection, then stop the forked drains, which have nothing left to wait for.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Scope.close(run.threadScope, Exit.void)
        for (const scope of run.held) yield* Scope.close(scope, Exit.void)
        yield* Scope.close(run.closeScope, Exit.void)
      })
    )
    const outcome = yield* Effect.forEach(spec.operations, (op) => dispatch(run, op), { discard: true }).pipe(
      Effect.timeoutFail({
        duration: operationsTimeout,
        onTimeout: () => runnerError(`the operations did not finish within ${Duration.format(operationsTimeout)}`)
      }),
      Effect.exit
    )
    const emitted = events.slice()
    const why = checkError(spec.error, outcome) ?? eventsMismatch(spec.events, spec.ignore ?? [], emitted)
    if (why !== undefined) return yield* new ConformanceFailure({ reason: why })
  })
