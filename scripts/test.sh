#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this): what the suite needs on this
# machine (scripts/setup.sh test), formatting, lints, then every test in the workspace: unit
# and mock-API tests, tests against the real test model, and the real-cluster suite against a
# control plane built from upstream Kubernetes sources, with a real node that runs the images
# scripts/build-images.sh builds; beside them, the CUDA build of the agent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Apt packages, Python tools, rustfmt and clippy: installed when missing (apt as root), or a
# stop with the command to run; a fraction of a second when all are present.
bash scripts/setup.sh test

# The target dir outlives the clone (CI caches it): old test executables go before the build,
# and a disk too full for the build and the images stops here with the figure, not half-way.
bash scripts/prune-target.sh
free_mb=$(df -Pm "${CARGO_TARGET_DIR:-target}" 2>/dev/null | awk 'NR == 2 { print $4 }') || true
if [[ -n "${free_mb:-}" && "$free_mb" -lt 8192 ]]; then
  echo "test: only ${free_mb} MB free where the build goes; the suite needs about 8 GB" >&2
  exit 1
fi

# Stopped on the way out: the CUDA build when the suite fails first, the control plane.
cuda_pid=""
e2e_state=""
# No `set -e` in here: a failing step (say, killing a CUDA build that already ended) must not
# end the handler before the cluster is down.
on_exit() {
  set +e
  if [[ -n "$cuda_pid" ]]; then
    kill -- "-$cuda_pid" 2>/dev/null
  fi
  if [[ -n "$e2e_state" ]]; then
    bash tests/cluster/down.sh "$e2e_state" || echo "e2e: tests/cluster/down.sh $e2e_state failed"
  fi
  return 0
}
trap on_exit EXIT

# The CUDA build (no GPU here: compiled, its GPU tests run by bench/gpu.sh on a GPU machine) is
# a step of its own with its own cached target dir. Cold it takes about 35 minutes on 2 cores,
# so it starts now at the lowest priority and uses the CPU the suite leaves idle (waits on
# servers, the cluster, the model); warm it takes seconds. Its log is printed if it fails.
cuda_log="$(mktemp)"
if [[ "${LLAMAFLEET_SKIP_CUDA_BUILD:-}" == 1 && -z "${CI:-}" ]]; then
  echo "cuda build: SKIPPED (LLAMAFLEET_SKIP_CUDA_BUILD=1; CI never skips it)"
else
  cuda_started=$SECONDS
  # Its own process group (setsid), so a failing suite stops cargo and nvcc with it.
  setsid nice -n 19 bash scripts/cuda-build.sh --bin llamafleet-agent --test gpu_offload \
    --test gpu_metrics >"$cuda_log" 2>&1 &
  cuda_pid=$!
fi

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
  # The images the real node runs are built from the binaries the tests use (debug profile,
  # llama.cpp optimised): the test build comes first, then the images (seconds when their
  # inputs have not changed), then the cluster, which imports them.
  cargo test --workspace --locked --no-run
  LLAMAFLEET_E2E_IMAGES="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/images/e2e"
  LLAMAFLEET_IMAGE_PROFILE=debug bash scripts/build-images.sh "$LLAMAFLEET_E2E_IMAGES" \
    agent operator pause e2e-client
  export LLAMAFLEET_E2E_IMAGES LLAMAFLEET_IMAGES_DIR="$LLAMAFLEET_E2E_IMAGES"

  e2e_state="$(mktemp -d)"
  KUBECONFIG="$(bash tests/cluster/up.sh "$e2e_state")"
  export KUBECONFIG LLAMAFLEET_E2E=required
else
  echo "e2e: SKIPPED — no KUBECONFIG and no Go toolchain to build the control plane"
fi

cargo test --workspace --locked

if [[ -n "$cuda_pid" ]]; then
  cuda_status=0
  wait "$cuda_pid" || cuda_status=$?
  cuda_pid=""
  if [[ "$cuda_status" != 0 ]]; then
    tail -n 60 "$cuda_log"
    echo "cuda build: FAILED (log above)"
    exit 1
  fi
  echo "cuda build: ok, $((SECONDS - cuda_started)) s after it started ($(grep -m1 '^cuda-build:' "$cuda_log"))"
fi
