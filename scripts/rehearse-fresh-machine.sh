#!/usr/bin/env bash
# Rehearse the first `make test` of a fresh machine on any machine (issue 21): clone the repository into a
# temporary directory and run .ci/run there with SLIMGUARD_CACHE and every other cache the setup and the tests
# fill (Go's build and module caches, pip's cache, the Docker engine's data root, which lives under
# SLIMGUARD_CACHE) pointing into an empty directory. Debian packages are the machine's own: apt is not rehearsed.
# Takes about an hour on 2 cores; prints where the time went, then removes everything it made.
#
#   scripts/rehearse-fresh-machine.sh [--ref REF] [--keep] [--print-env]
#     --ref REF     what to clone (default: main)
#     --keep        keep the clone, the caches and the log (their directory is printed)
#     --print-env   print the environment the run would use, and exit without running anything
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REF=main
KEEP=""
PRINT_ENV=""
while (($#)); do
  case "$1" in
    --ref) REF="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --print-env) PRINT_ENV=1; shift ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

WORK="$(mktemp -d /tmp/slimguard-rehearsal.XXXXXX)"
# mktemp makes it 0700; a checkout is normally where other users may enter, and the arbitrary-UID tests
# (test_operator_processes.py) run the clone's code as another user.
chmod 755 "$WORK"
CLONE="$WORK/slimguard"
LOG="$WORK/run.log"
# Every cache under one empty directory. Go and pip fall back to ~/.cache and ~/go without these.
export SLIMGUARD_CACHE="$WORK/cache"
export GOCACHE="$SLIMGUARD_CACHE/go-build"
export GOPATH="$SLIMGUARD_CACHE/go"
export GOMODCACHE="$SLIMGUARD_CACHE/go/pkg/mod"
export PIP_CACHE_DIR="$SLIMGUARD_CACHE/pip"
export XDG_CACHE_HOME="$SLIMGUARD_CACHE/xdg"
# Prebuilt Kubernetes binaries would skip the slowest cold step.
unset KUBEBUILDER_ASSETS

cleanup() {
  # The test bed stops what it starts; a dockerd left on this cache's data root (an interrupted run) goes too.
  local pidfile="$SLIMGUARD_CACHE/docker/docker.pid" pid
  if [[ -f $pidfile ]] && pid="$(cat "$pidfile")" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # dockerd leaves its network namespace bind-mounted under its exec root (exec/netns/default) after it stops:
  # whatever is still mounted below $WORK is unmounted, deepest first, or rm cannot remove it.
  local mounted
  while read -r mounted; do
    umount "$mounted" 2>/dev/null || umount --lazy "$mounted" || true
  done < <(awk -v work="$WORK/" 'index($2, work) == 1 { print $2 }' /proc/mounts | sort -r)
  if [[ -n $KEEP ]]; then
    echo "kept: $WORK (clone, caches, run.log)" >&2
  else
    chmod -R u+w "$WORK" 2>/dev/null || true  # Go's module cache is read-only
    rm -rf "$WORK"
  fi
}

if [[ -n $PRINT_ENV ]]; then
  printf 'would clone %s (%s) into %s and run .ci/run with:\n' "$ROOT" "$REF" "$CLONE"
  for name in SLIMGUARD_CACHE GOCACHE GOPATH GOMODCACHE PIP_CACHE_DIR XDG_CACHE_HOME; do
    printf '  %s=%s\n' "$name" "${!name}"
  done
  printf '  KUBEBUILDER_ASSETS unset\n'
  if command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]]; then
    printf 'go env as the run sees it:\n'
    PATH="$PATH:/usr/local/go/bin" go env GOCACHE GOMODCACHE GOPATH | sed 's/^/  /'
  fi
  rmdir "$WORK"
  exit 0
fi
trap cleanup EXIT

git clone --quiet --branch "$REF" "$ROOT" "$CLONE"
echo "rehearsing a fresh machine: $CLONE ($(git -C "$CLONE" rev-parse --short HEAD)), caches in $SLIMGUARD_CACHE" >&2

# Each line of output with the time it was seen, so the summary can say where the time went.
set +e
(cd "$CLONE" && ./.ci/run) 2>&1 | while IFS= read -r line; do
  printf '%s\n' "$line"
  printf '%s\t%s\n' "$EPOCHREALTIME" "$line" >>"$LOG"
done
status=${PIPESTATUS[0]}
set -e

# Setup is bootstrap (everything before `make lint`'s first command); pytest starts at its session header,
# and its collection-time warm-up ends with the last "warming:" line.
awk -F'\t' -v status="$status" '
  NR == 1 { start = $1 }
  !lint && /ruff check/ { lint = $1 }
  !pytest && /test session starts/ { pytest = $1 }
  /warming: .* (ready in|FAILED after)/ { warmed = $1 }
  $2 ~ /^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s/ { summary = $2 }
  { end = $1 }
  function span(from, to) { return (from && to) ? sprintf("%6.1f min", (to - from) / 60) : "     n/a" }
  END {
    print ""
    print "==> fresh-machine rehearsal summary (.ci/run exit status " status ")"
    print "    total wall time      " span(start, end)
    print "    setup (bootstrap)    " span(start, lint)
    print "    lint                 " span(lint, pytest)
    print "    pytest               " span(pytest, end)
    print "      of which warm-up   " span(pytest, warmed)
    print "    " (summary ? summary : "no pytest summary line (see the output above)")
  }' "$LOG"
exit "$status"
