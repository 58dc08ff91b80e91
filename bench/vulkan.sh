#!/usr/bin/env bash
# The agent's Vulkan build on Mesa's software GPU (lavapipe) and the same binary on the CPU
# (`--gpu-layers 0`), side by side: bench/serve.sh with one stream, alternating, ROUNDS times.
# lavapipe runs the GPU's shaders on the CPU cores, so the figures record what the Vulkan path
# costs on this machine (and that it runs), not what a GPU would do.
#
#   bash bench/vulkan.sh            # ROUNDS (3), MAX_TOKENS (32), THREADS (2), JSON (file)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
bash scripts/vulkan-build.sh --bin llamafleet-agent >&2
AGENT="${LLAMAFLEET_VULKAN_TARGET_DIR:-$CACHE/target-vulkan}/release/llamafleet-agent"
# ggml lists CPU-type Vulkan devices such as lavapipe only when named.
export GGML_VK_VISIBLE_DEVICES=0
for round in $(seq 1 "${ROUNDS:-3}"); do
  for layers in auto 0; do
    echo "== round $round, --gpu-layers $layers"
    AGENT="$AGENT" AGENT_ARGS="--gpu-layers $layers" LABEL="vulkan-gpu-layers-$layers" \
      STREAMS=1 SLOTS=1 MAX_TOKENS="${MAX_TOKENS:-32}" ROUNDS=1 bash bench/serve.sh
  done
done
