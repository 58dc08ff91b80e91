#!/usr/bin/env bash
# Constrained decoding's per-token cost (#17): the release agent, one slot, and
# bench/structured-bench.py interleaving free text, `format: "json"` and a JSON schema.
#
#   bench/structured.sh                       # ROUNDS=5 MAX_TOKENS=96
#   ROUNDS=10 bench/structured.sh | tee docs/benchmarks/raw/structured.txt
#
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), ROUNDS (5),
# MAX_TOKENS (96), AGENT (default: target/release/llamafleet-agent).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-5}"
MAX_TOKENS="${MAX_TOKENS:-96}"
AGENT="${AGENT:-${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

RUST_LOG=warn "$AGENT" serve --model "$MODEL" --cache-dir "$CACHE/cache" \
  --listen 127.0.0.1:18481 --ctx 1024 --parallel 1 --threads "$THREADS" >"$CACHE/agent.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
  curl -sf http://127.0.0.1:18481/readyz >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$CACHE/agent.log" >&2; exit 1; }
  sleep 0.5
done
echo "# $(date -u +%FT%TZ) $(nproc) cores, threads $THREADS, rounds $ROUNDS, max_tokens $MAX_TOKENS, $(git rev-parse --short HEAD)"
python3 bench/structured-bench.py --url http://127.0.0.1:18481 --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS"
