#!/usr/bin/env bash
# Stops what up.sh started (reverse order) and removes its state directory.
set -uo pipefail
state="${1:?usage: down.sh STATE_DIR}"
[ -f "$state/pids" ] || exit 0
tac "$state/pids" | while read -r pid _; do kill "$pid" 2>/dev/null; done
for _ in $(seq 1 40); do
  alive=0
  while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$state/pids"
  [ "$alive" = 0 ] && break
  sleep 0.25
done
while read -r pid _; do kill -9 "$pid" 2>/dev/null; done < "$state/pids"
rm -rf "$state"
