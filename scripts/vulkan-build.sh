#!/usr/bin/env bash
# Build the agent with Vulkan offload (cargo feature `vulkan`: AMD, Intel and other GPUs), with
# Debian's glslc and SPIR-V tools and Debian 13's Vulkan headers (scripts/vulkan-sdk.sh).
# Extra arguments go to cargo, e.g.
#
#   bash scripts/vulkan-build.sh                                  # the agent binary
#   bash scripts/vulkan-build.sh test --test gpu_offload          # `cargo test` instead
#
# With `test`, the tests run on the machine's Vulkan devices; ggml skips CPU-type devices such
# as Mesa's software GPU (lavapipe) unless GGML_VK_VISIBLE_DEVICES names them, which is how CI
# runs the GPU tests without a GPU. LLAMAFLEET_CARGO_PROFILE: the cargo profile (default
# release; scripts/gpu-checks.sh uses `test`, see scripts/cuda-build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
bash scripts/setup.sh vulkan
VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)"
export VULKAN_SDK
# Its own target dir, like the CUDA build's: another llama.cpp build, and no lock shared with
# the rest of the suite.
export CARGO_TARGET_DIR="${LLAMAFLEET_VULKAN_TARGET_DIR:-$CACHE/target-vulkan}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

command=build
if [[ "${1:-}" == test ]]; then
  command=test
  shift
fi
cargo_profile="${LLAMAFLEET_CARGO_PROFILE:-release}"
echo "vulkan-build: headers $VULKAN_SDK, cargo $command --profile $cargo_profile, into $CARGO_TARGET_DIR" >&2
cargo "$command" --profile "$cargo_profile" --locked -p llamafleet-agent --features vulkan "$@"
