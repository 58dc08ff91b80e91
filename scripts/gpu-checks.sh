#!/usr/bin/env bash
# The GPU checks the suite runs (scripts/test.sh, as a background step), on a machine without a
# GPU, one after the other in one cached target dir, so that the release build of the agent's
# Rust dependencies is made once for both backends:
#   1. Vulkan: the agent built with `--features vulkan` and its GPU tests run on Mesa's software
#      GPU (lavapipe), which ggml lists only when GGML_VK_VISIBLE_DEVICES names it
#      (LLAMAFLEET_TEST_EXPECT_GPU makes the tests fail rather than pass on the CPU path when
#      ggml lists no Vulkan device);
#   2. its image, from docker/agent-vulkan.Dockerfile (whose smoke step runs the binary in it),
#      made from the binary step 1 built (a second `cargo build` would build every dependency
#      again: the tests' dev-dependencies turn on features of shared crates);
#   3. CUDA: compiled and linked with the agent's GPU tests (they run on a GPU machine:
#      bench/gpu.sh). Device code is compiled without optimisation (LLAMAFLEET_CUDA_DEVICE_O0):
#      the check is that every kernel compiles and links, and cicc and ptxas at -O0 take a
#      quarter less time (docs/benchmarks/raw/ci-times.txt).
# Usage: gpu-checks.sh IMAGES_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

images="$1"
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
target="$CACHE/target-gpu"
# The CUDA build's own cache from before the two shared a dir: most of what it holds is reused.
[[ -d "$target" || ! -d "$CACHE/target-cuda" ]] || mv "$CACHE/target-cuda" "$target"
export LLAMAFLEET_VULKAN_TARGET_DIR="$target" LLAMAFLEET_CUDA_TARGET_DIR="$target"

timed() { # NAME COMMAND...: runs it, and keeps its wall time for the summary line
  local start=$SECONDS
  "${@:2}"
  times+=("$1 $((SECONDS - start)) s")
}
times=()
timed "vulkan build and tests" env GGML_VK_VISIBLE_DEVICES=0 LLAMAFLEET_TEST_EXPECT_GPU=Vulkan \
  bash scripts/vulkan-build.sh test --test gpu_offload -- --test-threads=1
timed "vulkan image" env LLAMAFLEET_IMAGE_PROFILE=release LLAMAFLEET_IMAGE_PREBUILT=1 \
  bash scripts/build-images.sh "$images" agent-vulkan
timed "cuda build" env LLAMAFLEET_CUDA_DEVICE_O0=1 \
  bash scripts/cuda-build.sh --bin llamafleet-agent --test gpu_offload --test gpu_metrics
echo "gpu-checks: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g'), into $target"
