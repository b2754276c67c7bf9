import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { sharedServer } from "./utils/postgres.js"

// Packs the repository as `npm pack` does on a clean clone, installs the tarball into a project of
// its own and runs a program there, as a user would. Offline: the peers come from this repository's
// node_modules, found by Node's lookup in the project's parent folder.

const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const modules = fs.realpathSync(Path.join(repoRoot, "node_modules"))
const manifest = JSON.parse(fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8")) as {
  readonly peerDependencies: Record<string, string>
  readonly peerDependenciesMeta: Record<string, { readonly optional?: boolean }>
  readonly files: ReadonlyArray<string>
}

const server = await sharedServer()
const work = await mkdtemp(Path.join(Os.tmpdir(), "lifeguard-package-"))
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
  await server.stop()
})

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}) =>
  new Promise<string>((resolve, reject) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout: 90_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })

const git = (args: ReadonlyArray<string>) => run("git", args, repoRoot)

/** `^x.y.z` holds `version` (the only form of range the manifest uses). */
/** A caret range, or several joined by `||` (the installed version need fit one). */
const caretHolds = (range: string, version: string): boolean =>
  range.split("||").some((one) => oneCaretHolds(one.trim(), version))

const oneCaretHolds = (range: string, version: string) => {
  const [lo, v] = [range.replace(/^\^/, ""), version].map((s) => s.split(/[.-]/).slice(0, 3).map(Number))
  if (!range.startsWith("^") || lo!.some(Number.isNaN)) throw new Error(`unexpected range ${range}`)
  const [major, minor, patch] = v!
  const [loMajor, loMinor, loPatch] = lo!
  if (loMajor! > 0) return major === loMajor && (minor! > loMinor! || (minor === loMinor && patch! >= loPatch!))
  return major === 0 && minor === loMinor && patch! >= loPatch!
}

const program = `
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { Pool } from "lifeguard"
import { PgPool } from "lifeguard/pg"
import { TestFactory } from "lifeguard/testing"

class Db extends Pool.Tag("app/Db")<Db, TestFactory.TestConnection, TestFactory.TestConnectError>() {}

const inMemory = Effect.gen(function*() {
  const factory = yield* TestFactory.make()
  const pool = yield* Pool.make({ acquire: factory.acquire, maxSize: 2, name: "app" })
  yield* pool.use(factory.query)
  return (yield* pool.stats).checkouts
}).pipe(Effect.scoped)

const postgres = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly one: number }>\`SELECT 1::int AS one\`
  return rows[0]!.one
}).pipe(Effect.provide(PgPool.layer({ url: process.env.DATABASE_URL!, maxSize: 2 })))

const checkouts: number = await Effect.runPromise(inMemory)
const one: number = await Effect.runPromise(postgres)
console.log(JSON.stringify({ checkouts, one, tag: Db.key }))
`

describe("the npm package", () => {
  it("npm pack on a clean clone builds it, and it installs and runs in a project of its own", async () => {
    // A clean clone of the working tree: the files git would commit, no dist/.
    const clone = Path.join(work, "clone")
    const files = (await git(["ls-files", "--cached", "--others", "--exclude-standard"])).split("\n").filter(Boolean)
    for (const file of files) {
      const from = Path.join(repoRoot, file)
      if (file === "node_modules" || !fs.existsSync(from)) continue
      await mkdir(Path.dirname(Path.join(clone, file)), { recursive: true })
      await cp(from, Path.join(clone, file), { verbatimSymlinks: true })
    }
    expect(fs.existsSync(Path.join(clone, "dist"))).toBe(false)
    await symlink(modules, Path.join(clone, "node_modules"))
    const packed = JSON.parse(await run("npm", ["pack", "--json", "--pack-destination", work], clone)) as ReadonlyArray<{
      readonly filename: string
      readonly files: ReadonlyArray<{ readonly path: string }>
    }>
    const shipped = packed[0]!.files.map((f) => f.path)
    for (const file of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/pg/index.js", "dist/testing/index.js", "dist/http/index.js", "dist/mongodb/index.js"]) {
      expect(shipped, file).toContain(file)
    }
    expect(shipped.filter((f) => f.startsWith("test/") || f.startsWith("scripts/"))).toStrictEqual([])

    // Every bare import of the built code is a declared peer, and every peer is imported.
    const imported = new Set<string>()
    for (const file of shipped.filter((f) => f.startsWith("dist/") && f.endsWith(".js"))) {
      const text = await readFile(Path.join(clone, file), "utf8")
      for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)) {
        if (specifier!.startsWith("node:") || specifier!.startsWith("lifeguard")) continue
        imported.add(specifier!.startsWith("@") ? specifier!.split("/").slice(0, 2).join("/") : specifier!.split("/")[0]!)
      }
    }
    const peers = Object.keys(manifest.peerDependencies).sort()
    expect([...imported].sort()).toStrictEqual(peers)
    for (const peer of peers) {
      const version = (JSON.parse(fs.readFileSync(Path.join(modules, peer, "package.json"), "utf8")) as { version: string }).version
      expect(caretHolds(manifest.peerDependencies[peer]!, version), `${peer}@${version} in ${manifest.peerDependencies[peer]}`).toBe(true)
      // Only the core's own peer is required: each adapter's peers are for those who use it.
      expect(manifest.peerDependenciesMeta[peer]?.optional === true, peer).toBe(peer !== "effect")
    }

    // A project of its own; its parent folder's node_modules holds the peers.
    const app = Path.join(work, "app")
    await mkdir(app)
    await symlink(modules, Path.join(work, "node_modules"))
    await writeFile(Path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
    await run("npm", [
      "install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--legacy-peer-deps",
      Path.join(work, packed[0]!.filename)
    ], app)
    expect(fs.realpathSync(Path.join(app, "node_modules", "lifeguard"))).toBe(Path.join(app, "node_modules", "lifeguard"))
    await writeFile(Path.join(app, "main.ts"), program)
    await writeFile(Path.join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true,
        exactOptionalPropertyTypes: true, skipLibCheck: true, types: ["node"], outDir: "out"
      },
      files: ["main.ts"]
    }))
    // Type-checks against the shipped declarations, then runs.
    await run(process.execPath, [Path.join(modules, "typescript", "bin", "tsc"), "-p", "."], app)
    const output = await run(process.execPath, [Path.join(app, "out", "main.js")], app, { DATABASE_URL: server.url })
    expect(JSON.parse(output)).toStrictEqual({ checkouts: 1, one: 1, tag: "app/Db" })
  }, 240_000)

  it("says what it is to bundlers and registries: no side effects, MIT with its licence text, where it lives", () => {
    const fields = manifest as unknown as Record<string, unknown>
    expect(fields.sideEffects).toBe(false)
    expect(fields.license).toBe("MIT")
    expect(fs.readFileSync(Path.join(repoRoot, "LICENSE"), "utf8")).toMatch(/^MIT License/)
    expect(fields.repository).toMatchObject({ url: "git+https://github.com/lifeguard-ts/lifeguard.git" })
    expect((fields.scripts as Record<string, string>).prepack).toContain("npm run build")
  })

  it("the README's links work on the npm page: none is relative to the repository", () => {
    const readme = fs.readFileSync(Path.join(repoRoot, "README.md"), "utf8")
    const links = [...readme.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]!)
    expect(links.length).toBeGreaterThan(0)
    expect(links.filter((link) => !/^(https:\/\/|#)/.test(link))).toStrictEqual([])
  })

  it("the README says how to install before how to work on the repository", () => {
    const readme = fs.readFileSync(Path.join(repoRoot, "README.md"), "utf8")
    const install = readme.indexOf("## Install")
    expect(install).toBeGreaterThan(0)
    expect(install).toBeLessThan(readme.indexOf("## Working on this repository"))
    expect(readme).toContain("npm install lifeguard effect @effect/sql @effect/sql-pg")
  })
})
