import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schedule, Scope, TestClock } from "effect"
import * as fc from "fast-check"
import { Pool } from "../src/index.js"
import { TestFactory } from "../src/testing/index.js"
import { settle } from "./utils/pool.js"

const settings = fc.record({
  maxSize: fc.integer({ min: 1, max: 4 }),
  maxConnecting: fc.integer({ min: 1, max: 3 }),
  acquireTimeoutMs: fc.integer({ min: 10, max: 100 }),
  connectDelayMs: fc.constantFrom(0, 5, 20),
  validate: fc.boolean(),
  reset: fc.boolean(),
  reuse: fc.constantFrom("lifo" as const, "fifo" as const),
  maxUses: fc.constantFrom(2, 5, Number.POSITIVE_INFINITY)
})

const operation = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ op: "checkout" as const }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("return" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("interrupt" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("invalidate" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("break" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const), interruptInUse: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("failSetUps" as const), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 60 }) }) }
)

interface Holder {
  readonly fiber: Fiber.RuntimeFiber<void, unknown>
  readonly release: Deferred.Deferred<void>
  connection: TestFactory.TestConnection | undefined
}

describe("invariants under random checkouts, returns, interrupts, timeouts, invalidations and clears", () => {
  it.effect.prop(
    "the pool never breaks its invariants and leaves nothing behind",
    { settings, operations: fc.array(operation, { minLength: 1, maxLength: 40 }) },
    ({ operations, settings }) =>
      Effect.gen(function*() {
        const factory = yield* TestFactory.make({ connectDelay: `${settings.connectDelayMs} millis` })
        const poolScope = yield* Scope.make()
        const pool = yield* Pool.make({
          acquire: factory.acquire,
          maxSize: settings.maxSize,
          maxConnecting: settings.maxConnecting,
          acquireTimeout: `${settings.acquireTimeoutMs} millis`,
          reuse: settings.reuse,
          maxUses: settings.maxUses,
          retrySchedule: Schedule.spaced("5 millis"),
          validateAfterIdle: "10 millis",
          drainTimeout: "1 second",
          ...(settings.validate ? { validate: factory.validate } : {}),
          ...(settings.reset ? { reset: factory.reset } : {})
        }).pipe(Scope.extend(poolScope))

        const holders: Array<Holder> = []
        const held = new Set<number>()
        const violations: Array<string> = []

        const checkout = Effect.gen(function*() {
          const release = yield* Deferred.make<void>()
          const holder: Holder = { fiber: undefined as never, release, connection: undefined }
          const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
            const connection = yield* pool.get
            if (held.has(connection.id)) violations.push(`connection ${connection.id} handed to two holders`)
            if (!connection.open) violations.push(`closed connection ${connection.id} handed out`)
            held.add(connection.id)
            holder.connection = connection
            yield* Effect.ensuring(
              Deferred.await(release),
              Effect.sync(() => {
                held.delete(connection.id)
              })
            )
          })).pipe(Effect.ignore))
          holders.push(Object.assign(holder, { fiber }))
        })

        const pick = (index: number) => holders.length === 0 ? undefined : holders[index % holders.length]

        const checkInvariants = Effect.gen(function*() {
          const stats = yield* pool.stats
          const counters = factory.counters()
          expect(stats.total).toBeLessThanOrEqual(settings.maxSize)
          expect(stats.idle + stats.inUse + stats.pending).toBe(stats.total)
          expect(counters.maxConnecting).toBeLessThanOrEqual(settings.maxConnecting)
          expect(counters.maxOpen).toBeLessThanOrEqual(settings.maxSize)
          expect(counters.open).toBe(stats.idle + stats.inUse)
          expect(violations).toStrictEqual([])
        })

        for (const operation of operations) {
          switch (operation.op) {
            case "checkout":
              yield* checkout
              break
            case "return": {
              const holder = pick(operation.pick)
              if (holder) yield* Deferred.succeed(holder.release, undefined)
              break
            }
            case "interrupt": {
              const holder = pick(operation.pick)
              if (holder) yield* Fiber.interruptFork(holder.fiber)
              break
            }
            case "invalidate": {
              const connection = pick(operation.pick)?.connection
              if (connection) yield* pool.invalidate(connection)
              break
            }
            case "break": {
              const connection = pick(operation.pick)?.connection
              if (connection) yield* factory.breakConnection(connection)
              break
            }
            case "clear":
              yield* pool.clear({ interruptInUse: operation.interruptInUse })
              break
            case "failSetUps":
              yield* factory.failNext(operation.count)
              break
            case "advance":
              yield* TestClock.adjust(`${operation.ms} millis`)
              break
          }
          yield* settle
          yield* checkInvariants
        }

        // Let every holder go, then close the pool: everything it opened is closed and no holder is left running.
        for (const holder of holders) yield* Deferred.succeed(holder.release, undefined)
        yield* TestClock.adjust("1 second")
        yield* settle
        const closing = yield* Effect.fork(Scope.close(poolScope, Exit.void))
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        for (const holder of holders) expect(holder.fiber.unsafePoll()).not.toBeNull()
        const stats = yield* pool.stats
        expect(stats).toMatchObject({ total: 0, idle: 0, inUse: 0, pending: 0, waiting: 0, closed: true })
        expect(factory.counters().open).toBe(0)
        expect(held.size).toBe(0)
        expect(violations).toStrictEqual([])
      }),
    { fastCheck: { numRuns: 150 } }
  )
})
