/**
 * A lease's end and cancel (src/mongodb/internal/lease.ts) over a stand-in client, on the
 * virtual clock: what must be waited for, what is bounded, what is said.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, TestClock } from "effect"
import type { ClientSession, Db, MongoClient } from "mongodb"
import { LeaseImpl, type Owner } from "../../src/mongodb/internal/lease.js"

interface Stand {
  /** Resolves the pending endSession. */
  readonly endSession: () => void
  readonly ended: () => boolean
  readonly killed: Array<unknown>
}

/** A lease over a client whose session is `inTransaction` as asked and whose killSessions fails with `killError`. */
const standIn = (options: { readonly inTransaction: boolean; readonly killError?: unknown }) => {
  let resolveEnd = () => {}
  let ended = false
  const killed: Array<unknown> = []
  const session = {
    id: { id: "lsid" },
    hasEnded: false,
    inTransaction: () => options.inTransaction,
    endSession: () =>
      new Promise<void>((resolve) => {
        resolveEnd = () => {
          ended = true
          resolve()
        }
      })
  } as unknown as ClientSession
  const client = {
    startSession: () => session,
    db: () => ({
      command: (command: unknown) => {
        killed.push(command)
        return options.killError === undefined ? Promise.resolve({ ok: 1 }) : Promise.reject(options.killError)
      }
    })
  } as unknown as MongoClient
  const owner: Owner = { name: "lease", client, checkTimeout: 1_000, killSessions: true, lsids: undefined }
  const lease = new LeaseImpl(1, client, {} as Db, owner)
  const stand: Stand = { endSession: () => resolveEnd(), ended: () => ended, killed }
  return { lease, owner, stand }
}

const collectWarnings = (warnings: Array<string>) =>
  Logger.add(Logger.make(({ logLevel, message }) => {
    if (logLevel._tag === "Warning") warnings.push(String(message))
  }))

describe("a MongoDB lease's end", () => {
  it.effect("with a transaction left open, the slot goes back only after its abort ended", () =>
    Effect.gen(function*() {
      const { lease, stand } = standIn({ inTransaction: true })
      void lease.session
      const returned = yield* Deferred.make<void>()
      const ending = yield* Effect.fork(Effect.zipRight(lease.end(false), Deferred.succeed(returned, undefined)))
      yield* TestClock.adjust("500 millis")
      expect(yield* Deferred.isDone(returned)).toBe(false)
      stand.endSession()
      yield* Fiber.join(ending)
      expect(stand.ended()).toBe(true)
    }))

  it.effect("an abort that never ends is waited for checkTimeout (in a finalizer too), then the slot goes back with a warning", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const { lease } = standIn({ inTransaction: true })
      void lease.session
      const ending = yield* Effect.fork(Effect.uninterruptible(lease.end(false)).pipe(Effect.provide(collectWarnings(warnings))))
      yield* TestClock.adjust("999 millis")
      expect(ending.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(ending)
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("did not end within checkTimeout (1000 ms)")
    }))

  it.effect("without a transaction there is nothing to wait for", () =>
    Effect.gen(function*() {
      const { lease, stand } = standIn({ inTransaction: false })
      void lease.session
      yield* lease.end(false)
      expect(stand.ended()).toBe(false)
    }))
})

describe("a MongoDB lease's cancel", () => {
  it.effect("a failed killSessions is said, with the server's error", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const { lease, stand } = standIn({ inTransaction: false, killError: Object.assign(new Error("not authorized"), { code: 13 }) })
      void lease.session
      yield* lease.cancel(Promise.resolve()).pipe(Effect.provide(collectWarnings(warnings)))
      expect(stand.killed).toStrictEqual([{ killSessions: [{ id: "lsid" }] }])
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("killSessions for an interrupted operation failed (Error: not authorized)")
    }))

  it.effect("a server without killSessions is asked no more, and nothing is said", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const { lease, owner } = standIn({ inTransaction: false, killError: Object.assign(new Error("no such command"), { code: 59 }) })
      void lease.session
      yield* lease.cancel(Promise.resolve()).pipe(Effect.provide(collectWarnings(warnings)))
      expect(owner.killSessions).toBe(false)
      expect(warnings).toStrictEqual([])
    }))
})

describe("a MongoDB lease's cancel, as the canceler of an interrupted call runs (uninterruptible)", () => {
  it.effect("an operation that never settles is waited for checkTimeout, then given up with a warning", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const { lease } = standIn({ inTransaction: false })
      const cancelling = yield* Effect.fork(
        Effect.uninterruptible(lease.cancel(new Promise(() => {}))).pipe(Effect.provide(collectWarnings(warnings)))
      )
      yield* TestClock.adjust("999 millis")
      expect(cancelling.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(cancelling)
      expect(warnings).toStrictEqual([
        "an interrupted operation did not settle within checkTimeout (1000 ms); its lease is returned anyway"
      ])
    }))
})
