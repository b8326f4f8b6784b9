#!/usr/bin/env bash
# Builds the Kubernetes control plane the Kubernetes tests run against (issue 11), from the Go module proxy through
# this wrapper module (go.mod + go.sum: kube-apiserver and kube-controller-manager v1.34.4 with k/k's staging
# modules pinned to v0.34.4, etcd v3.6.4 as k8s 1.34.4 pins it). Recipe and timings:
# ../shared/docs/k8s-control-plane-verified.md (a cold build takes about 6 minutes on 2 cores).
#
#   build.sh [OUT_DIR]     default: $PHASEKIT_K8S_BIN or ~/.cache/phasekit/k8s-testbin/v1.34.4
#
# For the real node (issue 16, ../shared/docs/k8s-real-node-verified.md) it builds kubelet, kube-scheduler, kubectl
# and etcdctl from the same module (no version changes), and the sandbox image's pause program (pause/). It also
# builds helm (helm.sh/helm/v4, about 3 minutes). All of it cold: 10 to 15 minutes on 2 cores. Binaries are cached
# outside the repository, keyed by version, and built only when missing.
set -euo pipefail
cd "$(dirname "$0")"
KV=v1.34.4
OUT="${1:-${PHASEKIT_K8S_BIN:-$HOME/.cache/phasekit/k8s-testbin/$KV}}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
command -v go >/dev/null || { echo "build.sh: Go is needed to build the Kubernetes test binaries (go 1.24+)" >&2; exit 1; }
mkdir -p "$OUT"
V=k8s.io/component-base/version
LDFLAGS="-s -w -X $V.gitVersion=$KV -X $V.gitMajor=1 -X $V.gitMinor=34 -X $V.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  if [[ ! -x "$OUT/$cmd" ]]; then
    echo "building $cmd $KV into $OUT" >&2
    go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$OUT/$cmd.tmp" "$OUT/$cmd"
  fi
done
# helm, to lint, template and install the operator's chart: no replace directives, so a plain `go install`.
HELM=v4.3.2
if [[ ! -x "$OUT/helm" ]]; then
  echo "building helm $HELM into $OUT" >&2
  (cd / && GOFLAGS= GOBIN="$OUT/.helm-tmp" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM")
  mv "$OUT/.helm-tmp/helm" "$OUT/helm"
  rmdir "$OUT/.helm-tmp"
fi
build() { # NAME PACKAGE
  if [[ ! -x "$OUT/$1" ]]; then
    echo "building $1 into $OUT" >&2
    go build -trimpath -ldflags "-s -w" -o "$OUT/$1.tmp" "$2"
    mv "$OUT/$1.tmp" "$OUT/$1"
  fi
}
build etcd go.etcd.io/etcd/server/v3
build etcdctl go.etcd.io/etcd/etcdctl/v3
build pause ./pause
"$OUT/kube-apiserver" --version >&2
"$OUT/etcd" --version | sed -n 1p >&2  # sed reads to the end: head would close the pipe early and, with pipefail, fail the script on SIGPIPE
echo "$OUT"
