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

# The Kubernetes binaries report their version as a release build sets it (`kubectl version`,
# a node's kubeletVersion, the API server's /version), not `v0.0.0-master`.
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
K8S_LDFLAGS="-s"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done
# Binaries built with other flags (an older recipe) are built again.
if [ "$(cat "$bin/.k8s-ldflags" 2>/dev/null)" != "$K8S_LDFLAGS" ]; then
  rm -f "$bin"/kube-apiserver "$bin"/kube-controller-manager "$bin"/kube-scheduler \
    "$bin"/kubelet "$bin"/kube-proxy
fi

build() { # name, module dir, package, [ldflags]
  [ -x "$bin/$1" ] && return 0
  echo "building $1 (once; cached in $bin)" >&2
  (cd "$2" && go build -trimpath -ldflags="${4:--s}" -o "$bin/$1.tmp" "$3") >&2
  mv "$bin/$1.tmp" "$bin/$1"
}

build kube-apiserver "$here/k8s" k8s.io/kubernetes/cmd/kube-apiserver "$K8S_LDFLAGS"
build kube-controller-manager "$here/k8s" k8s.io/kubernetes/cmd/kube-controller-manager "$K8S_LDFLAGS"
build kube-scheduler "$here/k8s" k8s.io/kubernetes/cmd/kube-scheduler "$K8S_LDFLAGS"
build kubelet "$here/k8s" k8s.io/kubernetes/cmd/kubelet "$K8S_LDFLAGS"
build kube-proxy "$here/k8s" k8s.io/kubernetes/cmd/kube-proxy "$K8S_LDFLAGS"
echo "$K8S_LDFLAGS" >"$bin/.k8s-ldflags"
build etcd "$here/etcd" go.etcd.io/etcd/server/v3
build coredns "$here/coredns" .
if [ ! -x "$bin/kwok" ]; then
  echo "building kwok (once; cached in $bin)" >&2
  GOBIN="$bin" go install -trimpath -ldflags=-s "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
fi
echo "$bin"
