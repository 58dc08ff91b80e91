#!/usr/bin/env bash
# Side-by-side benchmark of one preset's users (bench/preset-waves-bench.py): the agent, with
# the ~1,500-token system prompt as a preset (kept warm from startup), and llama-server, with
# the same text as each request's system message and its default prompt cache; same GGUF,
# threads, slots and context per slot; each started fresh for 8 clients, then again for 16
# clients on the 8 slots. ROUNDS > 1 alternates them again.
#
#   LLAMA_SERVER=/path/to/llama-server bench/preset-waves.sh
#
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), CTX (2048
# per slot), SLOTS (8), WAVES (4, at least 2), MAX_TOKENS (64), ROUNDS (1), AGENT (default:
# target/release/llamafleet-agent), LLAMA_SERVER (without it, the agent alone), JSON (file to
# append to).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
CTX="${CTX:-2048}"
SLOTS="${SLOTS:-8}"
WAVES="${WAVES:-4}"
MAX_TOKENS="${MAX_TOKENS:-64}"
ROUNDS="${ROUNDS:-1}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

# shellcheck source=bench/agent.sh
source bench/agent.sh
python3 bench/preset-waves-bench.py --print-preset >"$CACHE/presets.yaml"

bench() {
  python3 bench/preset-waves-bench.py --waves "$WAVES" --max-tokens "$MAX_TOKENS" \
    ${JSON:+--json "$JSON"} "$@"
}

for _ in $(seq 1 "$ROUNDS"); do
  for clients in 8 16; do
    start_agent "$AGENT" 18482 --preset "$CACHE/presets.yaml"
    bench --url http://127.0.0.1:18482 --label agent --preset archivist --clients "$clients"
    stop_agent
    if [[ -n "${LLAMA_SERVER:-}" ]]; then
      # llama-server's -c is the total KV size, split across -np slots.
      "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port 18483 -t "$THREADS" \
        -c "$((CTX * SLOTS))" -np "$SLOTS" >"$CACHE/llama-server.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 1 600); do
        curl -sf http://127.0.0.1:18483/health >/dev/null && break
        sleep 0.5
      done
      bench --url http://127.0.0.1:18483 --label llama-server --clients "$clients"
      stop_agent
    fi
  done
done
