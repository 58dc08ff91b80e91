#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU: the agent's GPU tests (CUDA offload, the
# device and memory in /status, NVML metrics), a served snapshot of /status and /metrics, and
# bench/serve.sh with the agent and llama-server side by side on the same GGUF and settings.
# On a machine without an NVIDIA GPU it says so and exits 0: nothing is measured.
#
#   KIT=<folder> LLAMAFLEET_TEST_MODEL=<gguf> bash bench/gpu.sh     # prebuilt (no cargo there)
#   bash bench/gpu.sh                                                 # builds the kit here first
#
# KIT is what bench/build-llama-server.sh prints: llama-server, the agent, the GPU test
# binaries and the shared llama/ggml libraries. The CUDA runtime (libcudart.so.13,
# libcublas.so.13) comes from the machine: CUDA_LIBS, else /usr/local/cuda, else the
# nvidia-* Python wheels. Results (raw logs, JSON lines, a summary) go to GPU_OUT.
# Sized to finish within 8 minutes on one H200 (16 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_OUT="${GPU_OUT:-bench/gpu-results}"
# CUDA 13 runs on driver 580 or newer.
MIN_DRIVER=580
# Benchmark shape: every request streams MAX_TOKENS; more slots than the CPU runs, since a
# GPU is where concurrency pays.
export THREADS="${THREADS:-8}" CTX="${CTX:-1024}" SLOTS="${SLOTS:-16}"
export STREAMS="${STREAMS:-1 4 8 16}" ROUNDS="${ROUNDS:-3}" MAX_TOKENS="${MAX_TOKENS:-128}"

if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu.sh: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing measured"
  exit 0
fi
mkdir -p "$GPU_OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
  | tee "$GPU_OUT/gpu.csv"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
if ((${driver%%.*} < MIN_DRIVER)); then
  echo "gpu.sh: driver $driver is older than $MIN_DRIVER, which CUDA 13 builds need" >&2
  exit 1
fi

if [[ -z "${KIT:-}" ]]; then
  bash scripts/cuda-build.sh --bin llamafleet-agent --test gpu_offload --test gpu_metrics
  KIT="$(bash bench/build-llama-server.sh)"
fi
MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
export LLAMAFLEET_TEST_MODEL="$MODEL"

cuda_libs() {
  [[ -n "${CUDA_LIBS:-}" ]] && { echo "$CUDA_LIBS"; return; }
  local dir
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    "$(python3 -c 'import nvidia.cu13, os; print(os.path.join(list(nvidia.cu13.__path__)[0], "lib"))' 2>/dev/null)"; do
    [[ -n "$dir" && -e "$dir/libcublas.so.13" && -e "$dir/libcudart.so.13" ]] && { echo "$dir"; return; }
  done
}
CUDA_LIBS="$(cuda_libs)"
export LD_LIBRARY_PATH="$KIT${CUDA_LIBS:+:$CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$KIT/libggml-cuda.so" | grep 'not found'; then
  echo "gpu.sh: libraries missing for the CUDA backend (set CUDA_LIBS)" >&2
  exit 1
fi

echo "== GPU tests"
for test in gpu_offload gpu_metrics; do
  LLAMAFLEET_TEST_EXPECT_GPU=CUDA "$KIT/$test" --test-threads 1 --nocapture 2>&1 | tee "$GPU_OUT/test-$test.log"
done

echo "== a served agent: /status and /metrics"
"$KIT/llamafleet-agent" serve --model "$MODEL" --cache-dir "$(mktemp -d)" \
  --listen 127.0.0.1:18490 --ctx "$CTX" --parallel "$SLOTS" --threads "$THREADS" \
  >"$GPU_OUT/agent-snapshot.log" 2>&1 &
agent=$!
trap 'kill "$agent" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf http://127.0.0.1:18490/readyz >/dev/null && break
  kill -0 "$agent" || { tail -20 "$GPU_OUT/agent-snapshot.log"; exit 1; }
  sleep 0.5
done
curl -sf http://127.0.0.1:18490/v1/completions -H 'content-type: application/json' \
  -d '{"prompt":"The capital of France is","max_tokens":16,"temperature":0}' >"$GPU_OUT/completion.json"
curl -sf http://127.0.0.1:18490/status | tee "$GPU_OUT/status.json"
echo
curl -sf http://127.0.0.1:18490/metrics >"$GPU_OUT/metrics.txt"
grep '^llamafleet_agent_gpu_' "$GPU_OUT/metrics.txt"
python3 - "$GPU_OUT/status.json" "$GPU_OUT/metrics.txt" <<'EOF'
import json, sys
status = json.load(open(sys.argv[1]))
metrics = open(sys.argv[2]).read()
assert status["device"] != "cpu", status
assert status["layers_offloaded"] == status["layers_total"] > 0, status
assert status["gpu_memory_bytes"] > 0, status
for family in ("utilization_ratio", "memory_used_bytes", "memory_total_bytes", "temperature_celsius"):
    assert f"llamafleet_agent_gpu_{family}{{" in metrics, family
print(f"status: {status['device']}, {status['layers_offloaded']}/{status['layers_total']} layers, "
      f"{status['gpu_memory_bytes'] / 2**20:.0f} MiB of GPU memory")
EOF
kill "$agent"
wait "$agent" 2>/dev/null || true
trap - EXIT

echo "== agent vs llama-server"
rm -f "$GPU_OUT/serve.jsonl"
AGENT="$KIT/llamafleet-agent" LLAMA_SERVER="$KIT/llama-server" JSON="$GPU_OUT/serve.jsonl" \
  LOGDIR="$GPU_OUT/logs" bash bench/serve.sh 2>&1 | tee "$GPU_OUT/serve.txt"
python3 bench/report.py serve-table "$GPU_OUT/serve.jsonl" | tee "$GPU_OUT/summary.md"
