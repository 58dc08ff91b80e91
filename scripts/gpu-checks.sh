#!/usr/bin/env bash
# The GPU checks the suite runs (scripts/test.sh, as a background step), on a machine without a
# GPU, one after the other in one cached target dir, so that the build of the agent's Rust
# dependencies is made once for both backends. All in cargo's `test` profile, the suite's own
# (llama.cpp optimised by the workspace's profile override): these are checks, and an optimised
# build of every dependency took most of a cold run's GPU step (docs/benchmarks/raw/ci-times.txt):
#   1. Vulkan: the agent built with `--features vulkan` and its GPU tests run on Mesa's software
#      GPU (lavapipe), which ggml lists only when GGML_VK_VISIBLE_DEVICES names it
#      (LLAMAFLEET_TEST_EXPECT_GPU makes the tests fail rather than pass on the CPU path when
#      ggml lists no Vulkan device);
#   2. its image, from docker/agent-vulkan.Dockerfile (whose smoke step runs the binary in it),
#      made from the binary step 1 built (a second `cargo build` would build every dependency
#      again: the tests' dev-dependencies turn on features of shared crates);
#   3. CUDA: compiled and linked with the agent's GPU tests (they run on a GPU machine, built
#      in release there: bench/gpu.sh). The check is that every kernel and the host code
#      compile and link (LLAMAFLEET_CUDA_CHECK): device code compiled to PTX for compute
#      capability 9.0 (what the driver would compile for the GPU it runs on) at -O0, host code
#      unoptimised: a third of the time of optimised code for sm_90 (SASS, with ptxas), which
#      the release builds compile (docs/benchmarks/raw/ci-times.txt).
# Usage: gpu-checks.sh IMAGES_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

images="$1"
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
target="$CACHE/target-gpu"
# The CUDA build's own cache from before the two shared a dir: most of what it holds is reused.
[[ -d "$target" || ! -d "$CACHE/target-cuda" ]] || mv "$CACHE/target-cuda" "$target"
export LLAMAFLEET_VULKAN_TARGET_DIR="$target" LLAMAFLEET_CUDA_TARGET_DIR="$target"
export LLAMAFLEET_CARGO_PROFILE=test

timed() { # NAME COMMAND...: runs it, and keeps its wall time for the summary line
  local start=$SECONDS
  "${@:2}"
  times+=("$1 $((SECONDS - start)) s")
}
times=()
timed "vulkan build and tests" env GGML_VK_VISIBLE_DEVICES=0 LLAMAFLEET_TEST_EXPECT_GPU=Vulkan \
  bash scripts/vulkan-build.sh test --test gpu_offload -- --test-threads=1
timed "vulkan image" env LLAMAFLEET_IMAGE_PROFILE=debug \
  bash scripts/build-images.sh "$images" agent-vulkan
timed "cuda build" env LLAMAFLEET_CUDA_CHECK=1 LLAMAFLEET_CUDA_ARCHS=90-virtual \
  bash scripts/cuda-build.sh test --no-run --test gpu_offload --test gpu_metrics
echo "gpu-checks: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g'), into $target"
