#!/usr/bin/env bash
# Download + verify throughput over loopback: `llamafleet-agent pull` (streaming sha256,
# write, fsync, GGUF check, atomic rename) against `curl -s URL | sha256sum` (hash only, no
# disk), side by side against the same `python3 -m http.server`. `curl -o /dev/null` (no
# hashing) is printed as a reference for what the server and loopback allow.
#
#   bench/download.sh            # uses $LLAMAFLEET_TEST_MODEL (253 MB GGUF) if set,
#                                # else a 250 MB random file (pulled with --skip-gguf-check)
#   RUNS=5 bench/download.sh
#
# Prints each run and the ratio of best throughputs (agent / curl); the target is >= 0.9.
set -euo pipefail

RUNS="${RUNS:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --quiet --release -p llamafleet-agent --manifest-path "$ROOT/Cargo.toml"
AGENT="$CARGO_TARGET_DIR/release/llamafleet-agent"

mkdir -p "$WORK/www"
EXTRA_FLAGS=()
if [[ -n "${LLAMAFLEET_TEST_MODEL:-}" && -f "$LLAMAFLEET_TEST_MODEL" ]]; then
  ln -s "$(readlink -f "$LLAMAFLEET_TEST_MODEL")" "$WORK/www/model.gguf"
  KIND="real GGUF ($LLAMAFLEET_TEST_MODEL)"
else
  head -c $((250 * 1024 * 1024)) /dev/urandom > "$WORK/www/model.gguf"
  EXTRA_FLAGS+=(--skip-gguf-check)
  KIND="random bytes (not GGUF: --skip-gguf-check)"
fi
SIZE="$(stat -L -c %s "$WORK/www/model.gguf")"
SHA="$(sha256sum "$WORK/www/model.gguf" | cut -d' ' -f1)"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
SERVER_PID=$!
URL="http://127.0.0.1:$PORT/model.gguf"
for _ in $(seq 50); do curl -sf -o /dev/null -I "$URL" && break; sleep 0.1; done

now() { date +%s.%N; }
mbps() { python3 -c "print(f'{$SIZE / ($2 - $1) / 1e6:.1f}')"; }

echo "file: $KIND, $SIZE bytes, sha256 $SHA"
echo "server: python3 -m http.server on 127.0.0.1:$PORT; runs: $RUNS (alternating)"
best_agent=0; best_curl=0
for i in $(seq "$RUNS"); do
  cat "$WORK/www/model.gguf" > /dev/null # same page-cache state for both
  t0="$(now)"
  got="$(curl -s "$URL" | sha256sum | cut -d' ' -f1)"
  t1="$(now)"
  [[ "$got" == "$SHA" ]] || { echo "curl hash mismatch"; exit 1; }
  c="$(mbps "$t0" "$t1")"

  t0="$(now)"
  curl -s -o /dev/null "$URL"
  t1="$(now)"
  raw="$(mbps "$t0" "$t1")"

  rm -rf "$WORK/cache"
  t0="$(now)"
  "$AGENT" pull "$URL" --allow-http --sha256 "$SHA" --cache-dir "$WORK/cache" --min-free-bytes 0 \
    "${EXTRA_FLAGS[@]}" >/dev/null 2>"$WORK/agent.log" || { cat "$WORK/agent.log"; exit 1; }
  t1="$(now)"
  a="$(mbps "$t0" "$t1")"
  echo "run $i: curl|sha256sum ${c} MB/s   llamafleet-agent pull ${a} MB/s   (reference: curl >/dev/null ${raw} MB/s)"
  best_curl="$(python3 -c "print(max($best_curl, $c))")"
  best_agent="$(python3 -c "print(max($best_agent, $a))")"
done
echo "best: curl|sha256sum ${best_curl} MB/s, llamafleet-agent pull ${best_agent} MB/s, ratio $(python3 -c "print(f'{$best_agent / $best_curl:.2f}')")x"
