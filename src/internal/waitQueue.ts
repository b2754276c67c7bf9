/**
 * The wait queue: an Effect `Queue` of waiters, each holding the `Deferred`
 * its caller is parked on. The queue's backing store is a ring buffer that
 * can also peek at its head (the deadline timer needs that) and drop
 * abandoned waiters in one sweep, so interrupted callers never pile up.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"

/** @internal */
export interface Waiter<T, E> {
  readonly deferred: Deferred.Deferred<T, E>
  /** When the checkout started; its deadline is this plus acquireTimeout. */
  readonly startedAt: number
  /** Arrival order: a waiter put back after a failed validation goes back to this place. */
  readonly seq: number
  /** True once served, failed or abandoned: the slot is dead. */
  settled: boolean
  /** What it was served, until its caller takes it (or gives it back). */
  served: T | undefined
}

const variance = { _A: (_: unknown) => _ }

/** @internal */
export class WaiterDeque<W extends { settled: boolean; readonly seq: number }> implements Queue.BackingQueue<W> {
  readonly [Queue.BackingQueueTypeId] = variance as Queue.BackingQueue<W>[typeof Queue.BackingQueueTypeId]
  private items: Array<W | undefined> = new Array(16)
  private head = 0
  private size = 0

  length(): number {
    return this.size
  }
  capacity(): number {
    return Number.POSITIVE_INFINITY
  }
  offer(element: W): boolean {
    if (this.size === this.items.length) this.grow()
    this.items[(this.head + this.size) & (this.items.length - 1)] = element
    this.size++
    return true
  }
  offerAll(elements: Iterable<W>): Chunk.Chunk<W> {
    for (const element of elements) this.offer(element)
    return Chunk.empty()
  }
  /**
   * Puts a waiter back in arrival order after a failed validation: ahead of
   * every younger waiter, behind every older one. It was being served, so it
   * lands near the front; the walk is short.
   */
  insertInOrder(element: W): void {
    if (this.size === this.items.length) this.grow()
    const mask = this.items.length - 1
    this.head = (this.head - 1) & mask
    this.size++
    let at = this.head
    for (let i = 1; i < this.size; i++) {
      const next = (at + 1) & mask
      if (this.items[next]!.seq > element.seq) break
      this.items[at] = this.items[next]
      at = next
    }
    this.items[at] = element
  }
  peek(): W | undefined {
    return this.size === 0 ? undefined : this.items[this.head]
  }
  poll<Def>(def: Def): W | Def {
    if (this.size === 0) return def
    const element = this.items[this.head]!
    this.items[this.head] = undefined
    this.head = (this.head + 1) & (this.items.length - 1)
    this.size--
    return element
  }
  pollUpTo(limit: number): Chunk.Chunk<W> {
    const out: Array<W> = []
    while (out.length < limit && this.size > 0) out.push(this.poll(undefined)!)
    return Chunk.unsafeFromArray(out)
  }
  /** Drops every settled waiter, keeping the order of the rest. */
  compact(): void {
    const live: Array<W> = []
    while (this.size > 0) {
      const element = this.poll(undefined)!
      if (!element.settled) live.push(element)
    }
    this.head = 0
    let capacity = 16
    while (capacity < live.length * 2) capacity *= 2
    this.items = new Array(capacity)
    for (const element of live) this.offer(element)
  }
  private grow(): void {
    const bigger: Array<W | undefined> = new Array(this.items.length * 2)
    for (let i = 0; i < this.size; i++) bigger[i] = this.items[(this.head + i) & (this.items.length - 1)]
    this.items = bigger
    this.head = 0
  }
}

/** @internal */
export const make = <W extends { settled: boolean; readonly seq: number }>(): Effect.Effect<{
  readonly queue: Queue.Queue<W>
  readonly deque: WaiterDeque<W>
}> => {
  const deque = new WaiterDeque<W>()
  return Effect.map(Queue.make(deque, Queue.backPressureStrategy()), (queue) => ({ queue, deque }))
}
