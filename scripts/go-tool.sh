#!/usr/bin/env bash
# Prints the path of the cached binary for tools/NAME, building it first when it is missing.
# The cache key is a hash of the module's files, so a changed pin rebuilds and nothing else does.
# Usage: scripts/go-tool.sh NAME   (build output goes to stderr; the path alone to stdout)
set -euo pipefail

name="${1:?usage: scripts/go-tool.sh NAME}"
root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/tools/$name"
[ -f "$module/go.mod" ] || { echo "go-tool: no Go module at tools/$name" >&2; exit 2; }
command -v go > /dev/null || { echo "go-tool: Go is not installed; tools/$name needs it (https://go.dev/dl, or apt-get install golang)" >&2; exit 2; }

key="$(cd "$module" && cat $(ls go.mod go.sum *.go 2> /dev/null) | sha256sum | cut -c1-12)"
cache="${LIFEGUARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lifeguard}/bin"
binary="$cache/$name-$key"
if [ ! -x "$binary" ]; then
  mkdir -p "$cache"
  # The package to build is the module's own (a launcher) or the one its tool directive names.
  package="$(sed -n 's/^tool[[:space:]]\+//p' "$module/go.mod" | head -n 1)"
  echo "go-tool: building $name (${package:-launcher}) into $binary" >&2
  started=$SECONDS
  (cd "$module" && go build -trimpath -o "$binary.partial" "${package:-.}") >&2
  mv "$binary.partial" "$binary"
  echo "go-tool: built $name in $((SECONDS - started))s" >&2
fi
echo "$binary"
