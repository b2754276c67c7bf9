/**
 * Suite `fairness`: many more workers than connections, every checkout's wait
 * recorded. Reports the wait percentiles and whether checkouts were served in
 * the order they were asked for (FIFO).
 */
import type { Result, Suite } from "./measure.js"
import { interleaved, median, percentile, runWindow, WaitRecorder } from "./measure.js"
import { pools } from "./contenders.js"

const configs = [
  { maxSize: 10, workers: 100 },
  { maxSize: 10, workers: 1000 }
]

interface Sample {
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly outOfOrder: number
}

export const fairness: Suite = {
  name: "fairness",
  run: async ({ quick, reps, log }) => {
    const windowMs = quick ? 200 : 1000
    const items = configs.flatMap((config) => pools.map((contender) => ({ config, contender })))
    const samples = await interleaved(Math.min(reps, 3), items, async ({ config, contender }, warmUp): Promise<Sample> => {
      const waits = new WaitRecorder(config.workers)
      const t = await runWindow(contender, { ...config, windowMs: warmUp ? windowMs / 2 : windowMs, waits })
      const sorted = waits.sorted()
      const sample = {
        opsPerSec: t.cycles / (t.elapsedMs / 1000),
        p50Ms: percentile(sorted, 0.5),
        p90Ms: percentile(sorted, 0.9),
        p99Ms: percentile(sorted, 0.99),
        maxMs: percentile(sorted, 1),
        outOfOrder: waits.outOfOrder
      }
      if (!warmUp) {
        log(`fairness max${config.maxSize}-workers${config.workers} ${contender.name}: p50 ${sample.p50Ms.toFixed(3)} ms, p99 ${sample.p99Ms.toFixed(3)} ms, ${sample.outOfOrder} out of order`)
      }
      return sample
    })
    return items.map(({ config, contender }, i): Result => {
      const s = samples[i]!
      const med = (f: (x: Sample) => number) => median(s.map(f))
      const outOfOrder = Math.max(...s.map((x) => x.outOfOrder))
      return {
        suite: "fairness",
        config: `max${config.maxSize}-workers${config.workers}`,
        contender: contender.name,
        opsPerSec: med((x) => x.opsPerSec),
        p50Ms: med((x) => x.p50Ms),
        p90Ms: med((x) => x.p90Ms),
        p99Ms: med((x) => x.p99Ms),
        maxMs: med((x) => x.maxMs),
        fifo: outOfOrder === 0,
        outOfOrder
      }
    })
  }
}
