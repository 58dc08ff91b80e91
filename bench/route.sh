#!/usr/bin/env bash
# Router overhead at a fixed rate: the same load of small chat requests straight to an
# instant in-process upstream and through `route`, side by side; prints p50/p99 of each and
# the difference (target: added p99 < 2 ms at 200 requests/s).
# Usage: bench/route.sh [RATE (200)] [SECONDS (10)]    PROFILE=debug for a debug build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${PROFILE:-release}"
flag=()
[[ "$profile" == release ]] && flag=(--release)
cargo build --quiet "${flag[@]}" -p llamafleet-agent --example route-bench
target="${CARGO_TARGET_DIR:-$root/target}"
echo "profile: $profile"
"$target/$profile/examples/route-bench" "${1:-200}" "${2:-10}"
