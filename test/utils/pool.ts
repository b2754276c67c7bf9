import { Deferred, type Duration, Effect, Fiber, TestClock } from "effect"
import { Pool, type PoolConfig, type PoolEvent } from "../../src/index.js"
import { TestFactory } from "../../src/testing/index.js"

/** A pool over the in-memory factory, with every event recorded in order. */
export const makeTestPool = (
  options: Partial<PoolConfig.Options<TestFactory.TestConnection, TestFactory.TestConnectError>> & {
    readonly connectDelay?: Duration.DurationInput
  } = {}
) =>
  Effect.gen(function*() {
    const factory = yield* TestFactory.make(options.connectDelay === undefined ? {} : { connectDelay: options.connectDelay })
    const events: Array<PoolEvent.PoolEvent> = []
    const { connectDelay: _, ...rest } = options
    const pool = yield* Pool.make({
      acquire: factory.acquire,
      onEvent: (event) => events.push(event),
      ...rest
    })
    const ofType = <T extends PoolEvent.PoolEventType>(type: T) =>
      events.filter((event): event is PoolEvent.PoolEventOf<T> => event._tag === type)
    return { pool, factory, events, ofType }
  })

/** Lets forked fibers run until they block, without moving the clock. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
  yield* TestClock.adjust(0)
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

/** Checks out in a fiber of its own and holds the connection until released. */
export const holdConnection = <A, E>(pool: Pool.Pool<A, E>) =>
  Effect.gen(function*() {
    const release = yield* Deferred.make<void>()
    const got = yield* Deferred.make<A, unknown>()
    const fiber = yield* Effect.fork(
      Effect.scoped(
        Effect.flatMap(
          Effect.tapError(pool.get, (e) => Deferred.fail(got, e)),
          (a) => Effect.zipRight(Deferred.succeed(got, a), Deferred.await(release))
        )
      )
    )
    return {
      fiber,
      connection: Deferred.await(got),
      release: Effect.zipRight(Deferred.succeed(release, undefined), Fiber.await(fiber))
    }
  })
