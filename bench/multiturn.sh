#!/usr/bin/env bash
# Side-by-side benchmark of the router's replica choice: REPLICAS release agents (fresh for
# each run) behind `llamafleet-agent route`, once with prefix-aware choice (the default) and
# once with `--replica-choice random` (what a Service does), each measured by
# bench/multiturn-bench.py (CONVERSATIONS chats at once, TURNS turns each). ROUNDS > 1
# alternates them again.
#
#   bench/multiturn.sh
#   ROUNDS=2 JSON=multiturn.jsonl bench/multiturn.sh
#
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), REPLICAS (2), THREADS (1
# per replica), CTX (1024 per slot), SLOTS (8 per replica), CONVERSATIONS (16), TURNS (6),
# MAX_TOKENS (24), ROUNDS (1), AGENT (default: target/release/llamafleet-agent), JSON (file to
# append to).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
REPLICAS="${REPLICAS:-2}"
THREADS="${THREADS:-1}"
CTX="${CTX:-1024}"
SLOTS="${SLOTS:-8}"
CONVERSATIONS="${CONVERSATIONS:-16}"
TURNS="${TURNS:-6}"
MAX_TOKENS="${MAX_TOKENS:-24}"
ROUNDS="${ROUNDS:-1}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
WORK="$(mktemp -d)"
PIDS=()
stop_all() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT

wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1/readyz" >/dev/null && return 0
    sleep 0.5
  done
  echo "$1 never became ready; logs in $WORK" >&2
  exit 1
}

measure() {
  local label="$1"; shift
  local urls=() args=()
  for i in $(seq 1 "$REPLICAS"); do
    local port=$((18490 + i))
    RUST_LOG=warn "$AGENT" serve --model "$MODEL" --cache-dir "$WORK/cache" --model-name m \
      --listen "127.0.0.1:$port" --ctx "$CTX" --parallel "$SLOTS" --threads "$THREADS" \
      >"$WORK/replica-$i.log" 2>&1 &
    PIDS+=($!)
    urls+=("http://127.0.0.1:$port")
    args+=(--replica "http://127.0.0.1:$port")
  done
  {
    echo "variants:"
    echo "- {name: main, url: '${urls[0]}', weight: 100, model: m, replicas: {urls: [$(IFS=,; echo "${urls[*]}")]}}"
    echo "tiers: []"
    echo "routerReplicas: 1"
  } >"$WORK/routing.yaml"
  RUST_LOG=warn "$AGENT" route --config "$WORK/routing.yaml" --listen 127.0.0.1:18490 "$@" \
    >"$WORK/router-$label.log" 2>&1 &
  PIDS+=($!)
  for url in "${urls[@]}" http://127.0.0.1:18490; do wait_ready "$url"; done
  python3 bench/multiturn-bench.py --router http://127.0.0.1:18490 "${args[@]}" \
    --label "$label" --conversations "$CONVERSATIONS" --turns "$TURNS" \
    --max-tokens "$MAX_TOKENS" ${JSON:+--json "$JSON"}
  stop_all
}

for _ in $(seq 1 "$ROUNDS"); do
  measure prefix --replica-choice prefix
  measure random --replica-choice random
done
