#!/usr/bin/env bash
# Stall benchmark: inter-token latency of running streams while a 256-input embedding request
# and a ~3,000-token prompt arrive (bench/stall-bench.py), for each agent binary given, one
# after the other, ROUNDS times alternating.
#
#   bench/stall.sh                                  # target/release/llamafleet-agent
#   AGENTS="before=/tmp/old after=target/release/llamafleet-agent" ROUNDS=2 bench/stall.sh
#
# Env: LLAMAFLEET_TEST_MODEL (default: scripts/fetch-test-model.sh), THREADS (2), CTX (4096,
# per slot), SLOTS (5: 4 streams and the long prompt), ROUNDS (1), AGENTS (label=path ...),
# JSON (file to append to).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
THREADS="${THREADS:-2}"
CTX="${CTX:-4096}"
SLOTS="${SLOTS:-5}"
ROUNDS="${ROUNDS:-1}"
AGENTS="${AGENTS:-agent=${CARGO_TARGET_DIR:-target}/release/llamafleet-agent}"
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT

# shellcheck source=bench/agent.sh
source bench/agent.sh

for _ in $(seq 1 "$ROUNDS"); do
  for entry in $AGENTS; do
    label="${entry%%=*}" agent="${entry#*=}"
    start_agent "$agent" 18483
    python3 bench/stall-bench.py --url http://127.0.0.1:18483 --label "$label" \
      ${JSON:+--json "$JSON"}
    stop_agent
  done
done
