import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites that start database servers share one per process; keep files apart.
    pool: "forks",
    fileParallelism: false,
    // The JSON report lets .ci/run close with a plain "N passed, M failed" line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]]
  }
})
