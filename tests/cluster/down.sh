#!/usr/bin/env bash
# Stops what up.sh started (reverse order) and removes its state directory. The real node goes
# first: its kubelet stops restarting containers, then node.sh stop removes the containers,
# mounts, network namespaces, bridge and rules while containerd still answers.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${1:?usage: down.sh STATE_DIR}"
[ -f "$state/pids" ] || exit 0

# Whether any of the pids still runs (a zombie does not: up.sh's processes outlive the shell
# that started them, and nothing may reap them here).
alive() {
  local pid
  for pid in "$@"; do
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == [^Z]* ]] && return 0
  done
  return 1
}

stop_pids() { # pid file lines on stdin
  local pids=() pid
  while read -r pid _; do [ "$pid" != 0 ] && pids+=("$pid"); done
  [ "${#pids[@]}" = 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 1 40); do
    alive "${pids[@]}" || break
    sleep 0.25
  done
  kill -9 "${pids[@]}" 2>/dev/null
  return 0
}

if grep -q ' real-node$' "$state/pids"; then
  grep -E ' (kubelet|kube-proxy|coredns)$' "$state/pids" | stop_pids
  bash "$here/node.sh" stop "$state"
fi
tac "$state/pids" | stop_pids
rm -rf "$state"
