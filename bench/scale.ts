/**
 * Suite `scale`: the cost of a checkout as the wait queue grows. A pool of 10
 * connections and N + 10 workers, so about N are parked at any moment; the
 * time per completed checkout should not depend on N.
 */
import type { Result, Suite } from "./measure.js"
import { interleaved, median, runWindow, withRatios } from "./measure.js"
import { handoffCeiling, pools } from "./contenders.js"

const maxSize = 10
const waiterCounts = [10, 100, 1_000, 10_000, 100_000]
const quickCounts = waiterCounts.slice(0, 4)

/**
 * effect's Pool is left out beyond 1,000 waiters: its semaphore wakes every
 * waiter on each release, and a waiter interrupted while parked gives back a
 * permit it never took, so with 10,000 waiters one window takes minutes and
 * with 100,000 not one checkout completed in four seconds.
 */
const mostWaiters: Record<string, number> = { "effect-pool": 1_000 }

export const scale: Suite = {
  name: "scale",
  reference: "effect-pool",
  run: async ({ quick, reps, log }) => {
    const windowMs = quick ? 200 : 700
    const counts = quick ? quickCounts : waiterCounts
    const items = counts.flatMap((waiters) =>
      [...pools, handoffCeiling].filter((c) => waiters <= (mostWaiters[c.name] ?? Infinity)).map((contender) => ({ waiters, contender }))
    )
    const samples = await interleaved(Math.min(reps, 2), items, async ({ contender, waiters }, warmUp) => {
      const begun = performance.now()
      const t = await runWindow(contender, {
        maxSize,
        workers: waiters + maxSize,
        windowMs: warmUp ? windowMs / 2 : windowMs,
        // Every worker should get through the queue at least once, however
        // long that takes, up to a limit for pools that slow down with it.
        minCycles: warmUp ? 0 : waiters,
        maxWindowMs: quick ? 1_000 : 5_000
      })
      const ns = t.cycles === 0 ? t.elapsedMs * 1e6 : (t.elapsedMs * 1e6) / t.cycles
      if (!warmUp) log(`scale waiters${waiters} ${contender.name}: ${Math.round(ns)} ns per checkout (${t.cycles} in ${t.elapsedMs.toFixed(0)} ms; ${((performance.now() - begun) / 1000).toFixed(1)} s with set-up)`)
      return ns
    }, ({ waiters }) => waiters === counts[0])
    const results: Array<Result> = items.map(({ waiters, contender }, i) => {
      const ns = median(samples[i]!)
      return {
        suite: "scale",
        config: `waiters${waiters}`,
        contender: contender.name,
        opsPerSec: 1e9 / ns,
        nsPerCheckout: ns,
        samples: samples[i]!
      }
    })
    for (const r of results) {
      const first = results.find((x) => x.contender === r.contender && x.config === `waiters${counts[0]}`)
      if (first?.nsPerCheckout !== undefined) r.growth = r.nsPerCheckout! / first.nsPerCheckout
    }
    return withRatios(results, "effect-pool", (r) => r.opsPerSec ?? undefined)
  }
}
