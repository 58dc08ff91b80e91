#!/usr/bin/env bash
# The operator at scale on a real API server (the test cluster's control plane, kwok nodes):
# COUNT LlmDeployments of 2 variants each (`replicas: 0`, so no serving pods; their routers fill
# the two kwok nodes and the rest stay Pending) are created first, then one release operator
# starts. Prints the time until every LlmDeployment has a status, then, over IDLE seconds of
# rest: reconciles, API requests by verb (the operator's own count), CPU time and RSS.
#
#   bash bench/operator-cluster.sh [COUNT] [IDLE_SECONDS]      # defaults: 1000, 300
# The model is made Ready first; rest begins once the cluster's own writes settle (<= 10 min;
# SETTLE_MAX=seconds for another cap).
#   OPERATOR=path/to/llamafleet-operator bash bench/operator-cluster.sh   # another build
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
count="${1:-1000}"
idle="${2:-300}"
ns=bench-scale

if [[ -z "${OPERATOR:-}" ]]; then
  # The profile of the operator's image (docker/operator.Dockerfile).
  cargo build --profile operator-release -p llamafleet-operator --quiet
  OPERATOR="${CARGO_TARGET_DIR:-$root/target}/operator-release/llamafleet-operator"
fi
state="$(mktemp -d /tmp/llamafleet-bench-cluster.XXXXXX)"
operator_pid=
cleanup() {
  [[ -n "$operator_pid" ]] && kill "$operator_pid" 2>/dev/null || true
  bash tests/cluster/down.sh "$state" >/dev/null 2>&1 || true
}
trap cleanup EXIT
LLAMAFLEET_E2E_REAL_NODE=0 bash tests/cluster/up.sh "$state" >/dev/null
export KUBECONFIG="$state/kubeconfig"
kubectl apply --server-side -f crds/ >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl apply -n "$ns" -f - >/dev/null <<'EOF'
apiVersion: llamafleet.dev/v1alpha1
kind: LlmModel
metadata:
  name: gemma3-270m
spec:
  source:
    url: https://huggingface.co/ggml-org/gemma-3-270m-GGUF/resolve/main/gemma-3-270m-Q4_K_M.gguf
    sha256: a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
EOF
# The model is Ready before the sweep, as in a running cluster: the same operator marks it
# (without resolving its source) and stops before the deployments exist.
"$OPERATOR" --no-leader-election --no-agent-status --no-resolve --listen 127.0.0.1:0 \
  > "$state/operator-model.log" 2>&1 &
model_pid=$!
until [[ "$(kubectl get llm gemma3-270m -n "$ns" -o jsonpath='{.status.phase}')" == Ready ]]; do
  kill -0 "$model_pid" 2>/dev/null || { tail -20 "$state/operator-model.log"; exit 1; }
  sleep 0.5
done
kill "$model_pid"; wait "$model_pid" 2>/dev/null || true
python3 - "$count" "$ns" > "$state/deployments.yaml" <<'EOF'
import sys
count, ns = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    print(f"""---
apiVersion: llamafleet.dev/v1alpha1
kind: LlmDeployment
metadata: {{name: scale-{i}, namespace: {ns}}}
spec:
  variants:
    - {{name: blue, model: gemma3-270m, weight: 90}}
    - {{name: green, model: gemma3-270m, weight: 10}}
  replicas: 0""")
EOF
kubectl create -f "$state/deployments.yaml" >/dev/null
echo "created $count LlmDeployments (2 variants, replicas: 0) in $ns"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# CPU ticks of each control-plane process (up.sh's pids file), to say who the sweep waits on.
plane_ticks() {
  while read -r pid name; do
    if [[ -r "/proc/$pid/stat" ]]; then awk -v n="$name" '{ print n, $14 + $15 }' "/proc/$pid/stat"; fi
  done < "$state/pids"
}
plane_before="$(plane_ticks)"
started="$(date +%s.%N)"
RUST_LOG=warn "$OPERATOR" --no-leader-election --no-agent-status --no-resolve \
  --listen "127.0.0.1:$port" > "$state/operator.log" 2>&1 &
operator_pid=$!

# One watch, not a listing a second: listing a thousand custom resources every second took a
# large share of the API server's CPU, which the sweep then waited on (one session's runs of
# one build: 86 s with the listing, 54 and 75 s with the watch).
python3 - "$count" "$ns" "$operator_pid" <<'EOF' || { tail -20 "$state/operator.log"; exit 1; }
import os, subprocess, sys, threading, time
count, ns, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
watch = subprocess.Popen(
    ["kubectl", "get", "llmd", "-n", ns, "--watch", "--no-headers",
     "-o", "custom-columns=N:.metadata.name,G:.status.observedGeneration"],
    stdout=subprocess.PIPE, text=True)
def operator_alive():
    while watch.poll() is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            watch.kill()
            return
        time.sleep(1)
threading.Thread(target=operator_alive, daemon=True).start()
with_status = set()
for line in watch.stdout:
    name, generation = line.split()
    if generation != "<none>":
        with_status.add(name)
    if len(with_status) >= count:
        break
watch.kill()
sys.exit(0 if len(with_status) >= count else 1)
EOF
took="$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")"
echo "every LlmDeployment has a status ${took} s after the operator started"
hz="$(getconf CLK_TCK)"
sweep_cpu="$(awk -v hz="$hz" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$operator_pid/stat")"
echo "operator CPU time until then: ${sweep_cpu} s ($(python3 -c "print(f'{100 * $sweep_cpu / $took:.0f}')") % of a core)"
# RssFile: the binary's pages in memory (shared, dropped under pressure); RssAnon: its heap.
memory() {
  grep -E '^(VmRSS|VmHWM|RssAnon|RssFile)' "/proc/$operator_pid/status" | tr -s ' \t' ' ' | tr '\n' ' '
}
echo "operator memory then: $(memory)"
plane_after="$(plane_ticks)"
# The sweep's CPU work divided by the cores is as fast as it can go on this machine.
python3 - "$took" "$hz" "$(nproc)" "$sweep_cpu" <<EOF
import sys
took, hz, cores, operator = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
b = dict(l.split() for l in """$plane_before""".splitlines())
a = dict(l.split() for l in """$plane_after""".splitlines())
seconds = {n: (float(a[n]) - float(b.get(n, 0))) / hz for n in a}
print(f"control plane CPU during the sweep ({cores} cores), % of a core: "
      + ", ".join(f"{n} {100 * v / took:.0f}" for n, v in sorted(seconds.items(), key=lambda kv: -kv[1])))
plane = sum(seconds.values())
print(f"CPU work of the sweep: control plane {plane:.1f} s + operator {operator:.1f} s = "
      f"{plane + operator:.1f} s, at least {(plane + operator) / cores:.1f} s on {cores} cores "
      f"({plane / cores:.1f} s for the control plane's part alone)")
EOF

# What the operator has done so far, and its CPU time (ticks of utime + stime).
metric() { # name filter → value (0 when absent)
  curl -fsS "http://127.0.0.1:$port/metrics" | awk -v n="$1" -v f="$2" \
    'index($0, n) == 1 && index($0, f) { v = $NF } END { print v + 0 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$operator_pid/stat"; }
verbs="get list watch create update apply patch delete"
# The API server's count of requests for the kinds the operator reads and writes, watches
# aside, by verb: the same figure for an operator build without its own request metric.
server_requests() {
  kubectl get --raw /metrics | python3 -c '
import re, sys
kinds = {"llmdeployments", "llmmodels", "deployments", "services", "configmaps",
         "poddisruptionbudgets", "horizontalpodautoscalers"}
sums = {}
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line.split("}")[0]))
    if labels.get("resource") in kinds and labels.get("verb") != "WATCH":
        verb = "server_" + labels["verb"].lower()
        sums[verb] = sums.get(verb, 0) + float(line.split()[-1])
        # Writes broken down by what they write (who writes them is not in this metric).
        if labels["verb"] in ("PUT", "PATCH", "POST"):
            what = labels["resource"] + ("/" + labels["subresource"] if labels.get("subresource") else "")
            key = "server_" + labels["verb"].lower() + ":" + what
            sums[key] = sums.get(key, 0) + float(line.split()[-1])
for verb, n in sorted(sums.items()):
    print(verb, int(n))
'
}
snapshot() {
  echo "reconciles $(metric llamafleet_operator_reconciles_total 'controller="llmdeployment"')"
  for v in $verbs; do echo "$v $(metric llamafleet_operator_api_requests_total "verb=\"$v\"")"; done
  server_requests
  echo "cpu $(cpu_ticks)"
}
echo "requests until then: $(snapshot | grep -v '^cpu' | tr '\n' ' ')"
# At rest means the cluster's own controllers are done too: after a mass creation the
# controller-manager writes the children's status for minutes (at its client's rate). Wait
# until the API server has seen no write of the operator's kinds for 30 s (10 minutes at most).
writes() { server_requests | awk '$1 ~ /^server_(put|patch|apply|post)$/ { n += $2 } END { print n + 0 }'; }
settle_start="$(date +%s)"
settle_reconciles="$(metric llamafleet_operator_reconciles_total 'controller="llmdeployment"')"
last="$(writes)"; quiet=0
while (( quiet < 30 && $(date +%s) - settle_start < ${SETTLE_MAX:-600} )); do
  sleep 5
  now="$(writes)"
  if [[ "$now" == "$last" ]]; then quiet=$((quiet + 5)); else quiet=0; last="$now"; fi
done
settled_reconciles="$(metric llamafleet_operator_reconciles_total 'controller="llmdeployment"')"
if (( quiet >= 30 )); then settled="the cluster's writes settled"; else
  settled="SETTLE_MAX reached, the cluster still writing,"; fi
echo "$settled $(( $(date +%s) - settle_start )) s after the sweep;" \
  "reconciles meanwhile: $(( ${settled_reconciles%.*} - ${settle_reconciles%.*} ))"
before="$(snapshot)"
sleep "$idle"
after="$(snapshot)"
python3 - "$idle" "$hz" <<EOF
import sys
idle, hz = float(sys.argv[1]), float(sys.argv[2])
b = dict(l.split() for l in """$before""".splitlines())
a = dict(l.split() for l in """$after""".splitlines())
d = {k: float(a[k]) - float(b.get(k, 0)) for k in a}
reconciles = d.pop("reconciles")
cpu = d.pop("cpu") / hz
server = {k[len("server_"):]: int(v) for k, v in d.items() if k.startswith("server_") and v}
requests = {k: int(v) for k, v in d.items() if v and not k.startswith("server_")}
non_watch = sum(v for k, v in requests.items() if k != "watch")
per = f"{non_watch / reconciles:.2f}" if reconciles else "n/a"
print(f"idle {idle:.0f} s: {int(reconciles)} reconciles, API requests {requests or 'none'}, "
      f"{per} non-watch requests per reconcile; CPU {cpu:.2f} s = {100 * cpu / idle:.2f} % of a core")
print(f"  the API server's count for the operator's kinds, watches aside: {server or 'none'}")
EOF
echo "operator memory at the end: $(memory)"
