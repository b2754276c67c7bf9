/**
 * Suite `inmem`: checkout, trivial work, return, as fast as the workers go,
 * with objects that cost nothing to make, so only the pool is measured.
 *
 * Two variants of every configuration. `max10-workers100` does nothing while
 * holding the connection (the workload of issue #2). Under Effect's
 * cooperative scheduler a fiber then cycles through its whole time slice
 * with nobody else asking, so the Effect pools rarely queue anyone however
 * many workers there are, while the promise pools, whose every `await`
 * yields, queue for real. `max10-workers100-yield` gives up the thread once
 * while holding (as any real use of a connection does), so workers beyond
 * the pool's size really wait, in every pool.
 */
import type { Contender, Result, Suite } from "./measure.js"
import { interleaved, median, runWindow, withRatios } from "./measure.js"
import { handoffCeiling, pools, scopedCeiling, useCeiling } from "./contenders.js"

interface Config {
  readonly maxSize: number
  readonly workers: number
  readonly hold: "none" | "yield"
}

const sizes = [
  { maxSize: 10, workers: 1 },
  { maxSize: 10, workers: 10 },
  { maxSize: 10, workers: 100 },
  { maxSize: 10, workers: 1000 },
  { maxSize: 100, workers: 1000 }
]

const configs: ReadonlyArray<Config> = (["none", "yield"] as const).flatMap((hold) => sizes.map((s) => ({ ...s, hold })))

const configName = (c: Config) => `max${c.maxSize}-workers${c.workers}${c.hold === "yield" ? "-yield" : ""}`

/**
 * The array ceilings only run where nobody waits; the hand-off ceiling only
 * where workers really queue.
 */
const contendersFor = (c: Config): ReadonlyArray<Contender> => [
  ...pools,
  ...(c.workers <= c.maxSize ? [scopedCeiling, useCeiling] : []),
  ...(c.hold === "yield" ? [handoffCeiling] : [])
]

export const inmem: Suite = {
  name: "inmem",
  reference: "effect-pool",
  run: async ({ quick, reps, log }) => {
    const windowMs = quick ? 100 : 400
    // Effect's scoped paths take most of a second to be optimised.
    const warmUpMs = quick ? 150 : 400
    const items = configs.flatMap((config) => contendersFor(config).map((contender) => ({ config, contender })))
    const samples = await interleaved(reps, items, async ({ config, contender }, warmUp) => {
      const t = await runWindow(contender, { ...config, windowMs: warmUp ? warmUpMs : windowMs })
      const opsPerSec = t.cycles / (t.elapsedMs / 1000)
      if (!warmUp) log(`inmem ${configName(config)} ${contender.name}: ${Math.round(opsPerSec)} ops/s`)
      return opsPerSec
    })
    const results: Array<Result> = items.map(({ config, contender }, i) => ({
      suite: "inmem",
      config: configName(config),
      contender: contender.name,
      opsPerSec: median(samples[i]!),
      samples: samples[i]!
    }))
    return withRatios(results, "effect-pool", (r) => r.opsPerSec ?? undefined)
  }
}
