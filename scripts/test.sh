#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this): what the suite needs on this
# machine (scripts/setup.sh test), formatting, lints, then every test in the workspace: unit
# and mock-API tests, tests against the real test model, and the real-cluster suite against a
# control plane built from upstream Kubernetes sources, with a real node that runs the images
# scripts/build-images.sh builds; beside them, the CUDA build of the agent and the Vulkan build
# with its GPU tests on a software GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

# Apt packages, Python tools, rustfmt and clippy: installed when missing (apt as root), or a
# stop with the command to run; a fraction of a second when all are present.
bash scripts/setup.sh test

# The target dir outlives the clone (CI caches it): old test executables go before the build,
# and a disk too full for the build and the images stops here with the figure, not half-way.
bash scripts/prune-target.sh
# A cold target dir (no test build in it yet) grows by about 16 GB in a run (CI run 70: 12 GB
# of debug test binaries and their dependencies, 3.4 GB for the GPU step's build beside it;
# with full debug info it was 32 + 8 GB, and CI run 65 ran out of disk half-way); a warm one
# by a few.
need_gb=8
[[ -d "${CARGO_TARGET_DIR:-target}/debug/deps" ]] || need_gb=20
disk="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
while [[ ! -d "$disk" ]]; do disk="$(dirname "$disk")"; done # the dir, or where it will be
free_mb=$(df -Pm "$disk" 2>/dev/null | awk 'NR == 2 { print $4 }') || true
if [[ -n "${free_mb:-}" && "$free_mb" -lt $((need_gb * 1024)) ]]; then
  echo "test: only ${free_mb} MB free where the build goes; the suite needs about $need_gb GB here" >&2
  exit 1
fi

# Stopped on the way out: the background steps still running when the suite fails first, the
# control plane.
declare -A step_pid=() step_log=() step_started=()
e2e_state=""
# No `set -e` in here: a failing step (say, killing a build that already ended) must not end the
# handler before the cluster is down.
on_exit() {
  set +e
  for pid in "${step_pid[@]}"; do
    kill -- "-$pid" 2>/dev/null
  done
  if [[ -n "$e2e_state" ]]; then
    bash tests/cluster/down.sh "$e2e_state" || echo "e2e: tests/cluster/down.sh $e2e_state failed"
  fi
  return 0
}
trap on_exit EXIT

# The GPU builds run as a step of their own, in the background, with their own target dir (so
# cargo's lock on a target dir never blocks the suite): started now at the lowest priority, it
# uses the CPU the suite leaves idle (waits on servers, the cluster, the model); in its own
# process group (setsid), so a failing suite stops cargo, cmake and nvcc with it. Its log is
# printed if it fails. `LLAMAFLEET_SKIP_GPU_BUILDS=1` skips them locally; CI never does.
start_step() {
  local name="$1"
  shift
  if [[ "${LLAMAFLEET_SKIP_GPU_BUILDS:-}" == 1 && -z "${CI:-}" ]]; then
    echo "$name: SKIPPED (LLAMAFLEET_SKIP_GPU_BUILDS=1; CI never skips it)"
    return
  fi
  step_log[$name]="$(mktemp)"
  step_started[$name]=$SECONDS
  # The step's own time is in its log: the suite waits for it only at the end. `setsid` makes
  # a new session, and with the kernel's autogroup scheduling (on here) each session is a CPU
  # group of its own that gets an equal share whatever its nice value: the group itself is
  # niced too (/proc/self/autogroup), or the suite gets a third of the CPU beside two steps.
  setsid nice -n 19 bash -c '{ echo 19 >/proc/self/autogroup; } 2>/dev/null || true
    "$@"; status=$?; echo "step took $SECONDS s"; exit $status' \
    "$name" "$@" >"${step_log[$name]}" 2>&1 &
  step_pid[$name]=$!
}
finish_step() {
  local name="$1" status=0
  [[ -n "${step_pid[$name]:-}" ]] || return 0
  wait "${step_pid[$name]}" || status=$?
  unset "step_pid[$name]"
  if [[ "$status" != 0 ]]; then
    tail -n 60 "${step_log[$name]}"
    echo "$name: FAILED (log above)"
    exit 1
  fi
  echo "$name: ok, $(grep -m1 '^step took' "${step_log[$name]}"), waited for $((SECONDS - step_started[$name])) s ($(grep -m1 "^$name:" "${step_log[$name]}"))"
}

# The real GGUF the agent tests load; fetched once into a cache outside the clone.
LLAMAFLEET_TEST_MODEL="$(bash scripts/fetch-test-model.sh)"
export LLAMAFLEET_TEST_MODEL

# The GPU builds (scripts/gpu-checks.sh): Vulkan compiled and its GPU tests run on Mesa's
# software GPU, its image built, CUDA compiled (no GPU here; its GPU tests run by bench/gpu.sh
# on a GPU machine). Cold it is the longest step; warm, a minute or two.
start_step gpu-checks bash scripts/gpu-checks.sh "${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/images/vulkan"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

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

# Measurements the tests make (time to a Ready real pod, wake times, ...) are printed at the end
# (tests/e2e/support.rs `figure`): cargo hides the output of passing tests.
LLAMAFLEET_FIGURES="$(mktemp)"
export LLAMAFLEET_FIGURES
cargo test --workspace --locked
if [[ -s "$LLAMAFLEET_FIGURES" ]]; then
  echo "figures:"
  sed 's/^/  /' "$LLAMAFLEET_FIGURES"
fi

finish_step gpu-checks
