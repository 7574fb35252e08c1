#!/usr/bin/env bash
# Prepare a machine (Debian 12, as root) for slimguard's tests and demo. Idempotent, and fast when warm:
#   1. Debian packages the test bed runs (apt-get update only when something is missing);
#   2. .venv with Python 3.11 and `pip install -e '.[dev]'` (skipped while pyproject.toml is unchanged);
#   3. Kubernetes binaries via scripts/build-k8s.sh (cached in ~/.cache/slimguard; ~10 min cold), the control
#      plane's and the real node's (kubelet, kube-scheduler, kube-proxy, pause; ~1 min more);
#   4.-5. helm and the Grafana dashboard validator, built from their Go modules into the same cache;
#   6. dive and syft, the anchors the layer-content numbers are checked against (same cache, by version);
#   7.-8. Prometheus with Kubernetes service discovery, and actionlint, which checks .github/workflows/.
# `bootstrap.sh release` prepares only what `make release` runs: the venv, helm and syft (no Debian packages,
# no Kubernetes), as the release workflow's runner needs.
set -euo pipefail
MODE="${1:-all}"
case "$MODE" in
  all | release) ;;
  *) echo "usage: $0 [all|release]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
# containerd, runc, the CNI plugins, nftables and iptables: the real node's runtime and network (tests/e2e/node),
# shellcheck, which actionlint runs over the workflows' run: scripts, and tinyproxy, the egress proxy registries are
# reached through in tests/e2e/test_registry_proxy.py.
PACKAGES=(etcd-server docker.io docker-registry debootstrap skopeo busybox-static apache2-utils prometheus iproute2 nginx-light
          containerd runc containernetworking-plugins nftables iptables gcc libc6-dev shellcheck tinyproxy)

log() { printf '==> %s\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

apt_install() {
  # The servers these packages ship must not start as system services: the test bed starts its own,
  # on 127.0.0.1 and free ports. A policy-rc.d that says "no" (if the machine has none) sees to that.
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get install -y -qq "$@" >/dev/null
  if [[ -n $added ]]; then as_root rm -f "$policy"; fi
}

# -- 1. Debian packages --------------------------------------------------------------------------------
missing=()
if [[ $MODE == all ]]; then
  for package in "${PACKAGES[@]}"; do installed "$package" || missing+=("$package"); done
fi

# -- Python 3.11 (pyenv's if present, else Debian's, which needs python3.11-venv for `python -m venv`) --
find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 "$HOME"/.pyenv/versions/3.11*/bin/python3.11 /usr/bin/python3.11; do
    [[ -n $candidate ]] || continue
    if "$candidate" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
if [[ ! -x .venv/bin/python ]] && ! find_python >/dev/null; then
  missing+=(python3.11 python3.11-venv)
fi

if ((${#missing[@]})); then
  apt_install "${missing[@]}"
else
  log "Debian packages: all present"
fi

# -- 2. The virtualenv ---------------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  PYTHON_BIN="$(find_python)" || { echo "no Python 3.11 with venv support found" >&2; exit 1; }
  log "creating .venv with $PYTHON_BIN"
  "$PYTHON_BIN" -m venv .venv
fi
STAMP=.venv/.slimguard-pyproject.sha256
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]] || ! .venv/bin/python -c 'import slimguard' 2>/dev/null; then
  log "pip install -e '.[dev]'"
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$STAMP"
else
  log ".venv: up to date with pyproject.toml"
fi

# -- 3. Kubernetes binaries ----------------------------------------------------------------------------
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
mkdir -p "$CACHE"
# Go and pip keep caches of their own (~/.cache/go-build, ~/go/pkg/mod, ~/.cache/pip) unless GOCACHE, GOMODCACHE
# and PIP_CACHE_DIR say otherwise; scripts/rehearse-fresh-machine.sh points them all under SLIMGUARD_CACHE.
if command -v go >/dev/null; then
  log "caches: $CACHE; Go $(go env GOCACHE) and $(go env GOMODCACHE); pip ${PIP_CACHE_DIR:-its default}"
fi
if [[ $MODE == all ]]; then
  # The same lock the test bed takes (slimguard_testbed.cache): build-k8s.sh wipes its work directory first.
  K8S_BIN="$(flock "$CACHE/k8s-build.lock" bash scripts/build-k8s.sh control)"
  log "Kubernetes binaries: $K8S_BIN"
  NODE_BIN="$(flock "$CACHE/k8s-build.lock" bash scripts/build-k8s.sh node)"
  log "Kubernetes node binaries: $NODE_BIN"
fi

# -- 4. helm, for the chart's tests (built from its Go module once; ~4 min cold) ---------------------------
HELM="$(bash scripts/build-helm.sh)"
log "helm: $HELM"

if [[ $MODE == all ]]; then
  # -- 5. the Grafana dashboard validator (grafana-foundation-sdk's Go module; seconds once it is fetched) --
  VALIDATOR="$(bash scripts/build-dashboard-validator.sh)"
  log "dashboard validator: $VALIDATOR"

  # -- 6. distribution v3's registry, whose tag lists paginate (2.8's do not), for the tag-list tests -----
  REGISTRY_V3="$(bash scripts/build-registry-v3.sh)"
  log "registry v3: $REGISTRY_V3"
fi

# -- 7. dive and syft: what slimguard's efficiency, wasted bytes and package counts are checked against ----
# (Go modules, ~3 and ~6 min cold; scripts/build-go-tool.sh returns at once when the version is cached).
# syft also writes a release's SBOM (scripts/release.py).
if [[ $MODE == all ]]; then
  DIVE="$(bash scripts/build-go-tool.sh dive github.com/wagoodman/dive "${DIVE_VERSION:-v0.13.1}")"
  log "dive: $DIVE"
fi
SYFT="$(bash scripts/build-go-tool.sh syft github.com/anchore/syft/cmd/syft "${SYFT_VERSION:-v1.57.1}")"
log "syft: $SYFT"

if [[ $MODE == all ]]; then
  # -- 8. Prometheus with Kubernetes service discovery (Debian's has none), for the real node's scrape (~17 min cold)
  PROMETHEUS="$(bash scripts/build-go-tool.sh prometheus github.com/prometheus/prometheus/cmd/prometheus v0.316.0)"
  log "prometheus (kubernetes_sd): $PROMETHEUS"
fi

# -- 9. actionlint, for `make lint` and the release workflow's test (tests/e2e/test_release.py; ~1 min cold);
#       its version is the Makefile's ACTIONLINT_VERSION, which `make` passes down ------------------------------
if [[ $MODE == all ]]; then
  ACTIONLINT="$(bash scripts/build-go-tool.sh actionlint github.com/rhysd/actionlint/cmd/actionlint "${ACTIONLINT_VERSION:-v1.7.12}")"
  log "actionlint: $ACTIONLINT"
fi
