#!/usr/bin/env bash
# Build helm from its Go module once, into the cache outside the repo; prints the binary's path.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
BIN="$CACHE/helm-$HELM_VERSION"
if [[ -x "$BIN/helm" ]]; then
  echo "$BIN/helm"
  exit 0
fi
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
mkdir -p "$BIN"
GOBIN="$BIN" GOFLAGS=-mod=mod GOTOOLCHAIN=local go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$BIN/helm"
