#!/usr/bin/env bash
# Build the Grafana dashboard validator (scripts/dashboard-validator: our few lines over the Go module
# github.com/grafana/grafana-foundation-sdk/go) once, into the cache outside the repo; prints the binary's path.
# Keyed by the SDK version and the program's own files, so an edit to main.go rebuilds it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/scripts/dashboard-validator"
SDK_VERSION="$(awk '$1 == "require" && $2 ~ /grafana-foundation-sdk/ {print $3}' "$SRC/go.mod")"
KEY="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-12)"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
BIN="$CACHE/dashboard-validator-$SDK_VERSION-$KEY/validate-dashboard"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
mkdir -p "$(dirname "$BIN")"
# go.sum pins the module's hash: the module proxy's copy is checked against it.
(cd "$SRC" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" . >&2)
mv "$BIN.tmp" "$BIN"
echo "$BIN"
