#!/usr/bin/env bash
# Build one Go program from its module once, into the cache outside the repo, keyed by name and version;
# prints the binary's path. Usage: build-go-tool.sh NAME PACKAGE VERSION
#   e.g. build-go-tool.sh dive github.com/wagoodman/dive v0.13.1
#        build-go-tool.sh syft github.com/anchore/syft/cmd/syft v1.57.1
# The binary appears only when the build has finished (built beside it, then renamed), so a build cut short
# is never mistaken for a cached one; a lock keeps two sessions from building the same tool at once.
set -euo pipefail
NAME="$1" PACKAGE="$2" VERSION="$3"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
BIN="$CACHE/$NAME-$VERSION"
if [[ -x "$BIN/$NAME" ]]; then
  echo "$BIN/$NAME"
  exit 0
fi
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
mkdir -p "$BIN"
exec 9>"$BIN/.build.lock"
flock 9
if [[ ! -x "$BIN/$NAME" ]]; then
  WORK="$(mktemp -d "$BIN/.build.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  GOBIN="$WORK" GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "$PACKAGE@$VERSION" >&2
  mv "$WORK/$NAME" "$BIN/$NAME"
fi
echo "$BIN/$NAME"
