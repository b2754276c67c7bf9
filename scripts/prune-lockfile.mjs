// Drops, from package-lock.json, optional dependencies that have no entry of their own.
//
// npm records an optional platform package it could not fetch (the darwin, win32 and musl
// builds of rollup and msgpackr-extract, when the registry in use serves only this platform's)
// as a dangling reference, and `npm ci` then refuses the whole lockfile (npm/cli#9846).
// Those packages never install here anyway. Run `node scripts/prune-lockfile.mjs` after
// `npm install` changed the lockfile on such a machine.
import { readFileSync, writeFileSync } from "node:fs"

const path = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(path, "utf8"))
const present = new Set(Object.keys(lock.packages).map((key) => key.replace(/^.*node_modules\//, "")))
let pruned = 0
for (const entry of Object.values(lock.packages)) {
  for (const name of Object.keys(entry.optionalDependencies ?? {})) {
    if (!present.has(name)) {
      delete entry.optionalDependencies[name]
      pruned++
    }
  }
}
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n")
console.log(`pruned ${pruned} dangling optional dependencies from package-lock.json`)
