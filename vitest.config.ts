import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A stuck test fails rather than waits: no test needs more than a few seconds, and every
    // server start and stop has its own, shorter deadline (test/utils/postgres.ts).
    testTimeout: 30_000,
    // Hooks may start an embedded server: initdb and start, each with a deadline within this.
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    // Suites that start database servers share one per process; keep files apart.
    pool: "forks",
    fileParallelism: false,
    // The JSON report lets .ci/run close with a plain "N passed, M failed" line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]]
  }
})
