import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** Runs the CMAP suite in a vitest of its own, with the spec folder missing. */
const runWithoutSpecFiles = (ci: boolean) =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CMAP_SPEC_DIR: path.join(repoRoot, ".tmp", "no-such-cmap-spec") }
    delete env["CI"]
    if (ci) env["CI"] = "true"
    const child = execFile(
      process.execPath,
      [path.join(repoRoot, "node_modules", "vitest", "vitest.mjs"), "run", "test/conformance/cmap.test.ts", "--reporter=default"],
      { cwd: repoRoot, env, timeout: 25_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr })
    )
  })

describe("npm test without the CMAP spec files", () => {
  it("passes, saying plainly that the files were not found and how to get them", async () => {
    const { code, output } = await runWithoutSpecFiles(false)
    expect(code, output).toBe(0)
    expect(output).toContain("CMAP conformance files not found, their tests were not run")
    expect(output).toContain("https://github.com/mongodb/specifications")
    expect(output).toContain("CMAP_SPEC_DIR")
  })

  it("fails with CI=true", async () => {
    const { code, output } = await runWithoutSpecFiles(true)
    expect(code, output).toBe(1)
    expect(output).toContain("finds the CMAP spec folder (CI=true: required)")
    expect(output).toContain("no CMAP spec folder at")
  })
})
