#!/usr/bin/env bash
# Renders manifests/install.yaml from the chart (default values, release `llamafleet` in
# namespace `llamafleet-system`, CRDs included), for `kubectl apply --server-side -f`.
# Regenerate with:  bash charts/render-install.sh > manifests/install.yaml
# tests/e2e/chart.rs fails when the committed file differs from this output.
set -euo pipefail
cd "$(dirname "$0")/.."
helm="${HELM:-$(bash charts/fetch-helm.sh)}"
namespace=llamafleet-system

cat <<HEADER
# Generated from charts/llamafleet by charts/render-install.sh — do not edit by hand.
# Install: kubectl apply --server-side -f manifests/install.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    app.kubernetes.io/name: llamafleet
    # The node-cache DaemonSet mounts the node's cache directory (hostPath) and prepares it as
    # root; application namespaces can enforce restricted (docs/install.md, "Pod Security").
    pod-security.kubernetes.io/enforce: privileged
HEADER
"$helm" template llamafleet charts/llamafleet --namespace "$namespace" --include-crds
