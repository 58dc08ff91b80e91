#!/usr/bin/env bash
# The README's first command: serves the test model (Gemma 3 270M) with the agent on
# http://127.0.0.1:8080, from a fresh machine. It sets up what the build needs
# (scripts/setup.sh serve), fetches the model once (scripts/fetch-test-model.sh), builds the
# agent (release) and runs `llamafleet-agent serve`.
#
#   bash scripts/serve-local.sh                          # as in the README
#   bash scripts/serve-local.sh --listen 127.0.0.1:9000  # any `serve` flag, in place of its default
#   LLAMAFLEET_AGENT_BIN=path/to/llamafleet-agent bash scripts/serve-local.sh
#
# LLAMAFLEET_AGENT_BIN runs that binary instead of `cargo run --release`: the docs' test
# (agent/tests/readme_snippets.rs) runs this script with its own build of the agent.
set -euo pipefail
cd "$(dirname "$0")/.."

# The address the README's examples call.
LISTEN=127.0.0.1:8080
# The cache the README's `cache gc --dry-run --cache-dir ~/.cache/llamafleet/agent` lists.
CACHE_DIR="$HOME/.cache/llamafleet/agent"
# Two slots, so the chat page and a curl example answer at the same time.
PARALLEL=2

# Whether the flag $1 is among the arguments after it (`--flag value` or `--flag=value`):
# a default is passed only when the caller gave no value, since clap refuses a flag twice.
given() {
  local flag="$1" arg
  shift
  for arg in "$@"; do
    [[ "$arg" == "$flag" || "$arg" == "$flag="* ]] && return 0
  done
  return 1
}

bash scripts/setup.sh serve

defaults=()
given --model "$@" || defaults+=(--model "$(bash scripts/fetch-test-model.sh)")
# LLAMAFLEET_CACHE_DIR is `serve`'s own variable for the cache; a flag would override it.
given --cache-dir "$@" || [[ -n "${LLAMAFLEET_CACHE_DIR:-}" ]] \
  || defaults+=(--cache-dir "$CACHE_DIR")
given --listen "$@" || defaults+=(--listen "$LISTEN")
given --parallel "$@" || defaults+=(--parallel "$PARALLEL")

if [[ -n "${LLAMAFLEET_AGENT_BIN:-}" ]]; then
  exec "$LLAMAFLEET_AGENT_BIN" serve "${defaults[@]}" "$@"
fi
echo "serve-local: building the agent (the first build compiles llama.cpp: several minutes)" >&2
exec cargo run --release -p llamafleet-agent -- serve "${defaults[@]}" "$@"
