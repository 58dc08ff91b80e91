#!/usr/bin/env bash
# Scale benchmark of the operator: 1000 LlmDeployments (2 variants each) reconciled twice
# against an in-memory mock API; prints requests/writes per round, then CPU time and peak RSS.
# Usage: bench/operator-scale.sh [COUNT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo bench -p llamafleet-operator --bench operator-scale --no-run --quiet
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$(ls -t "$target"/release/deps/operator_scale-* | grep -v '\.d$' | head -1)"
/usr/bin/time -v "$bin" "${1:-1000}" 2>&1 | grep -E "^round|User time|System time|Elapsed|Maximum resident"
