/**
 * One server per test process, found once: the machinery behind each server module's
 * `sharedServer` and `sharedServerScoped` (PostgreSQL, FerretDB).
 */
import { Effect } from "effect"
import type { Scope } from "effect"

export interface Stoppable {
  readonly stop: () => Promise<void>
}

export interface Shared<S> {
  /** The memoized server; a failed search, or a stop, lets the next call search again. */
  readonly get: () => Promise<S>
  /** The server as a scoped resource, reference counted: stopped when the last scope closes. */
  readonly scoped: Effect.Effect<S, never, Scope.Scope>
}

export const sharedPerProcess = <S extends Stoppable>(find: () => Promise<S>): Shared<S> => {
  let shared: Promise<S> | undefined
  let users = 0
  const get = (): Promise<S> => {
    if (shared === undefined) {
      const found = find().then((server): S => ({
        ...server,
        stop: async () => {
          shared = undefined
          await server.stop()
        }
      }))
      shared = found
      found.catch(() => {
        shared = undefined
      })
    }
    return shared
  }
  const scoped = Effect.acquireRelease(
    Effect.promise(get).pipe(Effect.tap(() => Effect.sync(() => users++))),
    (server) => Effect.promise(() => (--users === 0 ? server.stop() : Promise.resolve()))
  )
  return { get, scoped }
}
