#!/usr/bin/env bash
# Build Kubernetes binaries from the Go modules of k8s.io/kubernetes, once per version, into a cache outside the
# repo. Prints the directory holding the binaries.
#   build-k8s.sh [control]  kube-apiserver, kube-controller-manager, kubectl      -> $CACHE/k8s-VERSION
#   build-k8s.sh node       kubelet, kube-scheduler, kube-proxy and the pause     -> $CACHE/k8s-VERSION-node
#                           binary (build/pause/linux/pause.c of the same module, gcc -static), for the real node
# Honours envtest's KUBEBUILDER_ASSETS for the control part: if it already holds the binaries, nothing is built.
set -euo pipefail

PART="${1:-control}"
K8S_VERSION="${K8S_VERSION:-1.36.3}"
CACHE="${SLIMGUARD_CACHE:-$HOME/.cache/slimguard}"
case "$PART" in
  control) BIN="$CACHE/k8s-$K8S_VERSION"; COMPONENTS=(kube-apiserver kube-controller-manager kubectl) ;;
  node) BIN="$CACHE/k8s-$K8S_VERSION-node"; COMPONENTS=(kubelet kube-scheduler kube-proxy) ;;
  *) echo "usage: $0 [control|node]" >&2; exit 2 ;;
esac

all_built() {
  local name
  for name in "${COMPONENTS[@]}"; do [[ -x "$1/$name" ]] || return 1; done
  [[ $PART == control || -x "$1/pause" ]]
}
if [[ $PART == control && -n "${KUBEBUILDER_ASSETS:-}" ]] && all_built "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
if all_built "$BIN"; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build Kubernetes $K8S_VERSION" >&2; exit 1; }
MINOR="${K8S_VERSION#*.}"; MINOR="${MINOR%%.*}"; MAJOR="${K8S_VERSION%%.*}"
WORK="$CACHE/k8s-build-$K8S_VERSION-$PART"
rm -rf "$WORK"; mkdir -p "$WORK" "$BIN"
cd "$WORK"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
go mod init slimguard.dev/k8sbuild >/dev/null 2>&1
go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null
MODFILE="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod"
# k8s.io/kubernetes replaces its staging modules with ./staging/src/..., absent from the module download: the
# published k8s.io/<x> v0.MINOR.PATCH modules are the same code.
{
  echo "require k8s.io/kubernetes v$K8S_VERSION"
  grep '=> ./staging/src/' "$MODFILE" | awk -v v="v0.${MINOR}.${K8S_VERSION##*.}" '{print "replace " $1 " => " $1 " " v}'
} >> go.mod

# The few lines of each k8s.io/kubernetes/cmd/<name>/<name>.go: its package cannot be built by path from outside.
server_main() {  # name import-path command-constructor
  mkdir -p "cmd/$1"
  cat > "cmd/$1/main.go" <<GO
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"$2"
)

var _ = context.Background

func main() { os.Exit(cli.Run($3)) }
GO
}
if [[ $PART == control ]]; then
  server_main kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver/app 'app.NewAPIServerCommand()'
  server_main kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager/app 'app.NewControllerManagerCommand()'
  mkdir -p cmd/kubectl
  cat > cmd/kubectl/main.go <<'GO'
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
GO
else
  server_main kubelet k8s.io/kubernetes/cmd/kubelet/app 'app.NewKubeletCommand(context.Background())'
  server_main kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler/app 'app.NewSchedulerCommand()'
  server_main kube-proxy k8s.io/kubernetes/cmd/kube-proxy/app 'app.NewProxyCommand()'
fi
go mod tidy >&2
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$MAJOR -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/" ./cmd/... >&2
if [[ $PART == node ]]; then
  # The sandbox ("pause") container's one binary, as Kubernetes builds it for its registry.k8s.io/pause image.
  gcc -Os -Wall -Werror -static -DVERSION="v$K8S_VERSION-slimguard" -o "$BIN/pause" \
    "$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c" >&2
  strip "$BIN/pause"
fi
rm -rf "$WORK"
echo "$BIN"
