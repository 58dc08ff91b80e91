#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this): formatting, lints, then
# every test in the workspace: unit and mock-API tests, tests against the real test model, and
# the real-cluster suite against a control plane built from upstream Kubernetes sources.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The real GGUF the agent tests load; fetched once into a cache outside the clone.
LLAMAFLEET_TEST_MODEL="$(bash scripts/fetch-test-model.sh)"
export LLAMAFLEET_TEST_MODEL

# The real-cluster suite: a cluster KUBECONFIG already names, else our own control plane
# (etcd, kube-apiserver, controller-manager, scheduler, kwok) when Go can build it.
if [ -n "${KUBECONFIG:-}" ]; then
  echo "e2e: using the cluster in KUBECONFIG=$KUBECONFIG"
  export LLAMAFLEET_E2E=required
elif command -v go >/dev/null 2>&1; then
  e2e_state="$(mktemp -d)"
  trap 'bash tests/cluster/down.sh "$e2e_state"' EXIT
  KUBECONFIG="$(bash tests/cluster/up.sh "$e2e_state")"
  export KUBECONFIG LLAMAFLEET_E2E=required
else
  echo "e2e: SKIPPED — no KUBECONFIG and no Go toolchain to build the control plane"
fi

cargo test --workspace --locked
