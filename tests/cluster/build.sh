#!/usr/bin/env bash
# Builds the upstream Kubernetes binaries the e2e suite runs, once, into a cache outside the
# clone: kube-apiserver, kube-controller-manager, kube-scheduler, and for the real node kubelet
# and kube-proxy (k8s.io/kubernetes through the wrapper module in k8s/), etcd (wrapper in
# etcd/), CoreDNS (coredns/: only the plugins the cluster uses) and kwok. Prints the bin
# directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="v1.34.4"   # keep in step with k8s/go.mod
KWOK_VERSION="v0.7.0"   # supports Kubernetes 1.34 clusters
cache="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
bin="$cache/k8s-$K8S_VERSION/bin"
mkdir -p "$bin"

build() { # name, module dir, package
  [ -x "$bin/$1" ] && return 0
  echo "building $1 (once; cached in $bin)" >&2
  (cd "$2" && go build -trimpath -ldflags=-s -o "$bin/$1.tmp" "$3") >&2
  mv "$bin/$1.tmp" "$bin/$1"
}

build kube-apiserver "$here/k8s" k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager "$here/k8s" k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler "$here/k8s" k8s.io/kubernetes/cmd/kube-scheduler
build kubelet "$here/k8s" k8s.io/kubernetes/cmd/kubelet
build kube-proxy "$here/k8s" k8s.io/kubernetes/cmd/kube-proxy
build etcd "$here/etcd" go.etcd.io/etcd/server/v3
build coredns "$here/coredns" .
if [ ! -x "$bin/kwok" ]; then
  echo "building kwok (once; cached in $bin)" >&2
  GOBIN="$bin" go install -trimpath -ldflags=-s "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
fi
echo "$bin"
