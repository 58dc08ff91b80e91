# Sourced by the bench scripts: start the agent on a port and wait until it is ready, stop it.
# Needs MODEL, THREADS, CTX, SLOTS and CACHE set; sets SERVER_PID.

# start_agent BINARY PORT [more serve flags...]
start_agent() {
  local agent="$1" port="$2"
  shift 2
  RUST_LOG=warn "$agent" serve --model "$MODEL" --cache-dir "$CACHE/agent-cache" \
    --listen "127.0.0.1:$port" --ctx "$CTX" --parallel "$SLOTS" --threads "$THREADS" "$@" \
    >"$CACHE/agent.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$CACHE/agent.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "the agent never became ready; log: $CACHE/agent.log" >&2
  exit 1
}

stop_agent() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }
