/**
 * A virtual clock and scheduler, for property tests that run thousands of schedules.
 *
 * Why not TestClock: each of its wake-ups first polls, on the live event loop
 * (several `setTimeout(0)` rounds), until every fiber of the test is suspended.
 * That costs milliseconds per wake-up; 10,000 schedules of dozens of wake-ups
 * would take the better part of an hour. Here every fiber runs on a scheduler
 * that only queues its tasks, and the test (plain synchronous code, not a
 * fiber) runs them until none is left: the world is then quiescent, every
 * fiber suspended or done, known without polling. Time moves only in
 * {@link VirtualWorld.advance}, which wakes sleepers in deadline order and
 * runs each one's consequences before the next. Everything is deterministic,
 * so a schedule replays exactly.
 */
import { Clock, Duration, Effect, FiberId, Logger, LogLevel, Random, Runtime } from "effect"
import type { Fiber, Scheduler } from "effect"

/** The test's own bound: a step that runs this many tasks without going quiet is a livelock. */
const taskBudget = 1_000_000

/** Thrown when the world does not go quiet within the budget: the test fails instead of hanging. */
export class HangError extends Error {}

interface Sleeper {
  readonly at: number
  readonly order: number
  readonly wake: () => void
}

/** A `Clock` whose time moves only when the world advances it. */
export class VirtualClock implements Clock.Clock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  now = 0
  readonly sleepers = new Set<Sleeper>()
  private order = 0

  unsafeCurrentTimeMillis(): number {
    return this.now
  }
  unsafeCurrentTimeNanos(): bigint {
    return BigInt(this.now) * 1_000_000n
  }
  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.now)
  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.unsafeCurrentTimeNanos())

  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const sleeper: Sleeper = {
        at: this.now + Duration.toMillis(duration),
        order: this.order++,
        wake: () => resume(Effect.void)
      }
      this.sleepers.add(sleeper)
      return Effect.sync(() => {
        this.sleepers.delete(sleeper)
      })
    })
  }

  /** The sleeper due first (ties in the order they fell asleep). */
  next(): Sleeper | undefined {
    let first: Sleeper | undefined
    for (const sleeper of this.sleepers) {
      if (first === undefined || sleeper.at < first.at || (sleeper.at === first.at && sleeper.order < first.order)) {
        first = sleeper
      }
    }
    return first
  }
}

/** A scheduler that queues tasks for the world to run, first in, first out. */
class QueueScheduler implements Scheduler.Scheduler {
  private tasks: Array<Scheduler.Task> = []
  private head = 0

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return fiber.currentOpCount > 2048 ? 0 : false
  }
  scheduleTask(task: Scheduler.Task): void {
    this.tasks.push(task)
  }
  /** Runs the oldest task; false when there is none. */
  runOne(): boolean {
    if (this.head === this.tasks.length) {
      if (this.head > 0) this.tasks = [], this.head = 0
      return false
    }
    const task = this.tasks[this.head]!
    this.tasks[this.head++] = undefined as never
    task()
    return true
  }
  size(): number {
    return this.tasks.length - this.head
  }
}

/**
 * The clock, the scheduler and a seeded `Random`, with the driver's controls:
 * fork an effect into the world, run it until quiet, move time, and run a
 * callback after a given number of tasks (to interrupt in the middle of a step).
 */
export class VirtualWorld {
  readonly clock = new VirtualClock()
  private readonly scheduler = new QueueScheduler()
  private readonly random: Random.Random
  private trigger: { remaining: number; run: () => void } | undefined = undefined
  tasksRun = 0

  constructor(seed: number) {
    this.random = Random.make(seed)
  }

  get now(): number {
    return this.clock.now
  }

  /** Starts an effect in the world, on the virtual clock and scheduler, with logging off. */
  fork<A, E>(effect: Effect.Effect<A, E>): Fiber.RuntimeFiber<A, E> {
    return Runtime.runFork(Runtime.defaultRuntime)(
      effect.pipe(
        Effect.withClock(this.clock),
        Effect.withRandom(this.random),
        Logger.withMinimumLogLevel(LogLevel.None)
      ),
      { scheduler: this.scheduler }
    )
  }

  /** Interrupts a fiber of the world without waiting for it. */
  interrupt(fiber: Fiber.RuntimeFiber<unknown, unknown>): void {
    fiber.unsafeInterruptAsFork(FiberId.none)
  }

  /** Runs `run` once `tasks` more tasks have run (or when the world next goes quiet, if sooner). */
  after(tasks: number, run: () => void): void {
    this.trigger = { remaining: tasks, run }
  }

  private fire(): void {
    const trigger = this.trigger
    this.trigger = undefined
    trigger?.run()
  }

  /** Runs every task, and every sleeper already due, until nothing is left to run now. */
  settle(): void {
    let budget = taskBudget
    for (;;) {
      if (this.trigger !== undefined && this.trigger.remaining <= 0) this.fire()
      if (this.scheduler.runOne()) {
        this.tasksRun++
        if (this.trigger !== undefined) this.trigger.remaining--
        if (--budget === 0) throw new HangError(`still running after ${taskBudget} tasks at ${this.now} ms: a livelock`)
        continue
      }
      const due = this.clock.next()
      if (due !== undefined && due.at <= this.now) {
        this.clock.sleepers.delete(due)
        due.wake()
        continue
      }
      if (this.trigger === undefined) return
      this.fire()
    }
  }

  /** Moves time forward by `millis`, waking each sleeper at its instant and letting it run before the next. */
  advance(millis: number): void {
    const end = this.now + millis
    this.settle()
    for (;;) {
      const due = this.clock.next()
      if (due === undefined || due.at > end) break
      this.clock.now = Math.max(this.clock.now, due.at)
      this.settle()
    }
    this.clock.now = end
    this.settle()
  }

  /** When the next sleeper is due, if any. */
  nextWakeUp(): number | undefined {
    return this.clock.next()?.at
  }

  /** Tasks queued and sleepers pending: zero once everything in the world has ended. */
  pending(): { readonly tasks: number; readonly sleepers: number } {
    return { tasks: this.scheduler.size(), sleepers: this.clock.sleepers.size }
  }
}
