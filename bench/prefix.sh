#!/usr/bin/env bash
# Side-by-side benchmark of prefix sharing: the agent with it (the default) and with
# `--no-prefix-sharing`, each started fresh on the same GGUF, threads, context and slots, and
# measured by bench/prefix-bench.py (USERS requests at once with one preset's system prompt,
# then one request for N choices). ROUNDS > 1 alternates them again.
#
#   bench/prefix.sh
#   ROUNDS=2 JSON=prefix.jsonl bench/prefix.sh
#
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), CTX (1024,
# per slot), SLOTS (8), USERS (8), N (4), MAX_TOKENS (32), ROUNDS (1), AGENT (default:
# target/release/llamafleet-agent), JSON (file to append to).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
CTX="${CTX:-1024}"
SLOTS="${SLOTS:-8}"
USERS="${USERS:-8}"
N="${N:-4}"
MAX_TOKENS="${MAX_TOKENS:-32}"
ROUNDS="${ROUNDS:-1}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

# shellcheck source=bench/agent.sh
source bench/agent.sh

measure() {
  local label="$1"; shift
  start_agent "$AGENT" 18482 "$@"
  python3 bench/prefix-bench.py --url http://127.0.0.1:18482 --label "$label" \
    --users "$USERS" --n "$N" --max-tokens "$MAX_TOKENS" ${JSON:+--json "$JSON"}
  stop_agent
}

for _ in $(seq 1 "$ROUNDS"); do
  measure sharing
  measure no-sharing --no-prefix-sharing
done
