/**
 * What a checkout yields: the pool's entry is a lease slot, not a socket (the
 * driver keeps the sockets). Each checkout gets a `ClientSession` of its own,
 * started on first use and ended when the checkout ends, and an `AbortSignal`
 * that fires when the fiber running an operation on it is interrupted.
 *
 * A slot is reused by the next checkout, like a connection: nothing of a
 * lease may be kept after it was returned.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"
import type { ClientSession, Db, MongoClient } from "mongodb"
import type { Lease } from "../MongoPool.js"
import type { MongoError } from "../MongoError.js"
import { isCommandNotFound, operationFailed } from "./errors.js"

/** What every lease of one layer shares. */
export interface Owner {
  readonly name: string
  readonly client: MongoClient
  /** How long an interrupted operation may take to settle before its lease is returned anyway. */
  readonly checkTimeout: number
  /** Known to work on this server (probed at start-up; FerretDB has no killSessions). */
  killSessions: boolean
  /** Command spans look their parent up by the command's `lsid` (undefined: spans are off). */
  readonly lsids: WeakMap<object, LeaseImpl> | undefined
}

const ignore = () => {}

/** @internal */
export class LeaseImpl implements Lease {
  private ownSession: ClientSession | undefined = undefined
  private controller: AbortController | undefined = undefined
  /** The span the current operation runs under, for command spans. */
  parent: Tracer.AnySpan | undefined = undefined

  constructor(readonly id: number, readonly client: MongoClient, readonly db: Db, readonly owner: Owner) {}

  get session(): ClientSession {
    if (this.ownSession === undefined) {
      const session = this.client.startSession()
      this.ownSession = session
      const id = session.id
      if (this.owner.lsids !== undefined && id !== undefined) this.owner.lsids.set(id, this)
    }
    return this.ownSession
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) this.controller = new AbortController()
    return this.controller.signal
  }

  /** Aborts what runs with the current signal; the next operation gets a fresh one. */
  abort(): void {
    const controller = this.controller
    if (controller === undefined) return
    this.controller = undefined
    controller.abort()
  }

  /**
   * Ends what this checkout started, at once, before the slot goes back to the
   * pool. The effect it returns waits, up to checkTimeout, for the abort of a
   * transaction left open (the only end that talks to the server), so the
   * slot's next holder never runs beside it; otherwise it has nothing to wait for.
   */
  end(interrupted: boolean): Effect.Effect<void> {
    if (interrupted) this.abort()
    this.parent = undefined
    const session = this.ownSession
    if (session === undefined) return Effect.void
    this.ownSession = undefined
    const aborting = session.inTransaction()
    // endSession aborts an open transaction and never rejects (the spec says to ignore its errors).
    const ended = session.endSession().then(ignore, ignore)
    if (!aborting) return Effect.void
    // Lease ends run in finalizers: interruptible, or the timeout could not stop the wait.
    return Effect.interruptible(Effect.promise(() => ended)).pipe(
      Effect.timeout(Duration.millis(this.owner.checkTimeout)),
      Effect.catchAll(() =>
        Effect.logWarning(
          `the abort of a transaction left open did not end within checkTimeout (${this.owner.checkTimeout} ms); ` +
            `its lease is returned anyway`
        )
      ),
      Effect.annotateLogs("pool", this.owner.name)
    )
  }

  /**
   * The canceler of an interrupted operation: aborts it through the signal,
   * kills it on the server where `killSessions` works (the abort only closes
   * the socket, the server would go on), and resolves once it settled.
   */
  cancel(running: Promise<unknown>): Effect.Effect<void> {
    const session = this.ownSession
    this.abort()
    const settled = running.then(ignore, ignore)
    const kill = session !== undefined && this.owner.killSessions ? killSession(this.owner, session) : undefined
    // A canceler runs uninterruptible: the waits are made interruptible, or their timeouts could not stop them.
    const waited = Effect.interruptible(Effect.promise(() => settled)).pipe(
      Effect.timeout(Duration.millis(this.owner.checkTimeout)),
      Effect.catchAll(() =>
        Effect.logWarning(
          `an interrupted operation did not settle within checkTimeout (${this.owner.checkTimeout} ms); ` +
            `its lease is returned anyway`
        )
      )
    )
    const killed = kill === undefined ? Effect.void : Effect.interruptible(Effect.promise(() => kill)).pipe(
      Effect.timeout(Duration.millis(this.owner.checkTimeout)),
      Effect.orElseSucceed(() => "no answer within checkTimeout"),
      Effect.flatMap((failure) =>
        failure === undefined ? Effect.void : Effect.logWarning(
          `killSessions for an interrupted operation failed (${String(failure)}); the server may still be running it`
        )
      )
    )
    return Effect.zipRight(waited, killed, { concurrent: true }).pipe(Effect.annotateLogs("pool", this.owner.name))
  }
}

/** Kills the session's operations on the server; resolves to why that failed, if it did. */
const killSession = (owner: Owner, session: ClientSession): Promise<unknown> | undefined => {
  const id = session.id
  if (id === undefined || session.hasEnded) return undefined
  return owner.client.db("admin").command({ killSessions: [id] }).then(ignore, (error) => {
    // A server without the command (FerretDB) is asked no more; any other failure is worth a line.
    if (!isCommandNotFound(error)) return error
    owner.killSessions = false
    return undefined
  })
}

/**
 * Runs one driver call on a lease as an Effect. Interrupting it aborts the
 * call and waits until it settled. With `ownLease` the lease was checked out
 * for this call alone and ends as soon as the call settles.
 *
 * @internal
 */
export const run = <A>(
  lease: LeaseImpl,
  operation: string,
  f: (db: Db, lease: Lease) => Promise<A>,
  ownLease: boolean
): Effect.Effect<A, MongoError> => {
  const call = Effect.async<A, MongoError>((resume) => {
    let running: Promise<A>
    const settle = (outcome: Effect.Effect<A, MongoError>) =>
      resume(ownLease ? Effect.zipRight(lease.end(false), outcome) : outcome)
    try {
      running = f(lease.db, lease)
    } catch (error) {
      settle(Effect.fail(operationFailed(lease.owner.name, operation, error)))
      return
    }
    // Set by the canceler: the call's late outcome must not touch a lease that may be someone else's by then.
    let cancelled = false
    let settled = false
    running.then(
      (value) => {
        settled = true
        if (!cancelled) settle(Effect.succeed(value))
      },
      (error) => {
        settled = true
        if (!cancelled) settle(Effect.fail(operationFailed(lease.owner.name, operation, error)))
      }
    )
    return Effect.suspend(() => {
      if (settled) return Effect.void
      cancelled = true
      const cancel = lease.cancel(running)
      return ownLease ? Effect.ensuring(cancel, Effect.suspend(() => lease.end(true))) : cancel
    })
  })
  if (lease.owner.lsids === undefined) return call
  return Effect.withFiberRuntime((fiber) => {
    lease.parent = fiber.currentSpan
    return call
  })
}
