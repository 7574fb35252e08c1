#!/usr/bin/env bash
# Build distribution v3's registry from its Go module once, into the cache outside the repo; prints its path.
# Debian's docker-registry (distribution 2.8) returns a repository's whole tag list in one response; v3
# paginates it with `n`/`last` and a `Link` header, as Docker Hub, GHCR and Harbor do. Tests of tag-list
# pagination run against this one.
set -euo pipefail
VERSION="${DISTRIBUTION_VERSION:-v3.0.0}"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
BIN="$CACHE/distribution-$VERSION"
if [[ -x "$BIN/registry" ]]; then
  echo "$BIN/registry"
  exit 0
fi
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
mkdir -p "$BIN"
GOBIN="$BIN" GOFLAGS=-mod=mod GOTOOLCHAIN=local go install -trimpath -ldflags "-s -w" \
  "github.com/distribution/distribution/v3/cmd/registry@$VERSION" >&2
echo "$BIN/registry"
