#!/usr/bin/env bash
# Runs the benches and writes machine-readable results plus plots (docs/benchmarks.md shows
# them):
#
#   LLAMA_SERVER=/path/to/llama-server bench/report.sh     # everything
#   PARTS="route download" bench/report.sh                 # a subset
#
# Parts (PARTS, default all): serve (bench/serve.sh: agent vs llama-server at 1/4/8 streams;
# the agent alone when LLAMA_SERVER is unset), route (bench/route.sh), download
# (bench/download.sh), operator (bench/operator-scale.sh), prefix (bench/prefix.sh: prefix
# sharing on and off), stall (bench/stall.sh), multiturn (bench/multiturn.sh: the router's
# prefix-aware replica choice against random), preset-waves (bench/preset-waves.sh: one
# preset's users in waves, the agent against LLAMA_SERVER when set).
# Writes OUT/results.json (default OUT=docs/benchmarks) with the machine, build, load average
# and every figure, the raw text of each bench next to it (OUT/raw/), and OUT/*.svg. A run of
# some PARTS keeps the other parts of an existing results.json (meta.kept_from_earlier_runs
# names the run each came from).
# Plots need matplotlib: PYTHON (default .venv/bin/python when present, else python3).
# Other env passes through to the benches: ROUNDS, STREAMS, THREADS, CTX, SLOTS, MAX_TOKENS
# (serve), RATE/SECONDS_ROUTE (route, 200/10), RUNS (download), COUNT (operator, 1000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-docs/benchmarks}"
PARTS="${PARTS:-serve route download operator prefix stall multiturn preset-waves}"
PYTHON="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export LLAMAFLEET_TEST_MODEL="${LLAMAFLEET_TEST_MODEL:-$(bash scripts/fetch-test-model.sh)}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT/raw"
has() { [[ " $PARTS " == *" $1 "* ]]; }

cargo build --quiet --release --locked -p llamafleet-agent --bins --example route-bench

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START="$(load)"
STARTED="$(date -u +%FT%TZ)"

if has serve; then
  echo "== serve (agent vs ${LLAMA_SERVER:-no llama-server})"
  JSON="$WORK/serve.jsonl" bash bench/serve.sh | tee "$OUT/raw/serve.txt"
fi
if has route; then
  echo "== route"
  bash bench/route.sh "${RATE:-200}" "${SECONDS_ROUTE:-10}" | tee "$OUT/raw/route.txt"
  "$PYTHON" bench/report.py route "$OUT/raw/route.txt" >"$WORK/route.json"
fi
for part in prefix stall multiturn preset-waves; do
  if has "$part"; then
    echo "== $part"
    JSON="$WORK/$part.jsonl" bash "bench/$part.sh" | tee "$OUT/raw/$part.txt"
  fi
done
if has download; then
  echo "== download"
  bash bench/download.sh | tee "$OUT/raw/download.txt"
  "$PYTHON" bench/report.py download "$OUT/raw/download.txt" >"$WORK/download.json"
fi
if has operator; then
  echo "== operator"
  bash bench/operator-scale.sh "${COUNT:-1000}" | tee "$OUT/raw/operator.txt"
  "$PYTHON" bench/report.py operator "$OUT/raw/operator.txt" >"$WORK/operator.json"
fi

LLAMA_SERVER_VERSION=""
[[ -n "${LLAMA_SERVER:-}" ]] && LLAMA_SERVER_VERSION="$("$LLAMA_SERVER" --version 2>&1 | grep -m1 version || true)"
export WORK STARTED LOAD_START LLAMA_SERVER_VERSION
LOAD_END="$(load)" "$PYTHON" - "$OUT/results.json" <<'EOF'
import json, os, platform, subprocess, sys

def part(name):
    path = os.path.join(os.environ["WORK"], name)
    return json.load(open(path)) if os.path.exists(path) else None

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
serve_path = os.path.join(os.environ["WORK"], "serve.jsonl")
results = {
    "meta": {
        "started": os.environ["STARTED"],
        "git_rev": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip(),
        "profile": "release",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu}",
        "loadavg_start": os.environ["LOAD_START"],
        "loadavg_end": os.environ["LOAD_END"],
        "model": os.path.basename(os.environ["LLAMAFLEET_TEST_MODEL"]),
        "llama_server": os.environ.get("LLAMA_SERVER_VERSION") or None,
    },
    "serve": [json.loads(l) for l in open(serve_path)] if os.path.exists(serve_path) else None,
    "route": part("route.json"),
    "download": part("download.json"),
    "operator": part("operator.json"),
}
# The JSON-lines benches: one object per measured run.
for name in ("prefix", "stall", "multiturn", "preset-waves"):
    path = os.path.join(os.environ["WORK"], f"{name}.jsonl")
    results[name] = [json.loads(l) for l in open(path)] if os.path.exists(path) else None
# A subset run (PARTS) keeps the other parts of an earlier results.json, saying from when.
if os.path.exists(sys.argv[1]):
    earlier = json.load(open(sys.argv[1]))
    kept = results["meta"]["kept_from_earlier_runs"] = {}
    for name in ("serve", "route", "download", "operator", "prefix", "stall", "multiturn",
                 "preset-waves"):
        if results[name] is None and earlier.get(name) is not None:
            results[name] = earlier[name]
            kept[name] = (earlier["meta"].get("kept_from_earlier_runs", {}).get(name)
                          or earlier["meta"])
json.dump(results, open(sys.argv[1], "w"), indent=2)
print(f"wrote {sys.argv[1]}")
EOF
"$PYTHON" bench/report.py plot "$OUT/results.json" "$OUT"
