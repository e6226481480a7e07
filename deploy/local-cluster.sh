#!/usr/bin/env bash
# Builds wsgate (Release, into build/) and runs a local cluster in the foreground:
# one redis-server and two wsgate nodes, all on 127.0.0.1. Ctrl-C (or SIGTERM) stops the
# nodes with SIGTERM, so they drain and exit, then redis. Only processes started here are
# signalled, by PID. State and logs live in .cluster/.
#
#   deploy/local-cluster.sh [extra wsgate flags...]      e.g. --log-level debug
#
# Ports: REDIS_PORT (6390), NODE_A_PORT (8080), NODE_B_PORT (8081).
# READY_TIMEOUT: seconds to wait for each node's /readyz (30).
# Access: anonymous clients may use the demo* channels (the demo page uses "demo");
# pass --jwt-hmac-secret-file etc. to add tokens, or --anonymous-subscribe to change it.
set -euo pipefail

DEV_ACCESS=(--anonymous-subscribe 'demo*' --anonymous-publish 'demo*')

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

HOST=127.0.0.1
REDIS_PORT=${REDIS_PORT:-6390}
NODE_A_PORT=${NODE_A_PORT:-8080}
NODE_B_PORT=${NODE_B_PORT:-8081}
READY_TIMEOUT=${READY_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-30} # seconds to wait for the nodes to drain; above --drain-timeout (10)
STATE=$ROOT/.cluster
WSGATE=$ROOT/build/gateway/wsgate

say() { printf '[local-cluster] %s\n' "$*"; }
die() { printf '[local-cluster] error: %s\n' "$*" >&2; exit 1; }

for p in "$REDIS_PORT" "$NODE_A_PORT" "$NODE_B_PORT"; do
  if ! [[ "$p" =~ ^[0-9]{1,5}$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then
    die "bad port: '$p'"
  fi
done
if [ "$(printf '%s\n' "$REDIS_PORT" "$NODE_A_PORT" "$NODE_B_PORT" | sort -u | wc -l)" -ne 3 ]; then
  die "REDIS_PORT, NODE_A_PORT and NODE_B_PORT must differ"
fi

bash "$ROOT/deploy/install-deps.sh"

# A port is busy when something already listens on it: binding it fails even with
# SO_REUSEADDR (which only lets us past sockets in TIME_WAIT).
port_busy() {
  python3 - "$HOST" "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}
for p in "$REDIS_PORT" "$NODE_A_PORT" "$NODE_B_PORT"; do
  if port_busy "$p"; then
    die "port $HOST:$p is already in use (another local cluster? see: ss -ltnp 'sport = :$p').
  Stop that process, or choose other ports: REDIS_PORT=... NODE_A_PORT=... NODE_B_PORT=... $0"
  fi
done

say "building (Release) into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DWSGATE_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)"
[ -x "$WSGATE" ] || die "build finished but $WSGATE is missing"

mkdir -p "$STATE"
names=() pids=()

# Sends SIGTERM to the given processes (indexes into pids), waits up to STOP_TIMEOUT for
# all of them, SIGKILLs what is left, and reports each exit status. Returns 1 if any
# process had to be killed or exited non-zero.
stop_group() {
  local i bad=0 deadline=$((SECONDS + STOP_TIMEOUT)) status alive
  for i in "$@"; do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  while [ "$SECONDS" -lt "$deadline" ]; do
    alive=0
    for i in "$@"; do kill -0 "${pids[i]}" 2>/dev/null && alive=1; done
    [ "$alive" -eq 1 ] || break
    sleep 0.1
  done
  for i in "$@"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      say "${names[i]} (pid ${pids[i]}) did not exit within ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
    status=0
    wait "${pids[i]}" 2>/dev/null || status=$?
    say "${names[i]} (pid ${pids[i]}) exited with status $status"
    [ "$status" -eq 0 ] || bad=1
  done
  return "$bad"
}

# Stops every process started here: first the nodes (they drain and exit 0), then redis.
# Runs once, on any exit of this script.
stopped=0
stop_all() {
  local rc=$? i nodes=()
  [ "$stopped" -eq 1 ] && return
  stopped=1
  trap '' INT TERM
  [ ${#pids[@]} -gt 0 ] || exit "$rc"
  say "stopping..."
  for ((i = 1; i < ${#pids[@]}; i++)); do nodes+=("$i"); done
  if [ ${#nodes[@]} -gt 0 ]; then stop_group "${nodes[@]}" || rc=1; fi
  stop_group 0 || rc=1
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# Starts "$@" in the background in its own session, so a Ctrl-C in the terminal reaches
# only this script, which then stops the process in order.
start() {
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  names+=("$name")
  pids+=("$!")
  say "started $name (pid $!), log: ${log#"$ROOT"/}"
}

# Fails with the end of the process's log when it is gone or not ready in time.
wait_until() {
  local name=$1 pid=$2 log=$3 deadline=$((SECONDS + READY_TIMEOUT))
  shift 3
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited during startup; last lines of ${log#"$ROOT"/}:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$name was not ready within ${READY_TIMEOUT}s; last lines of ${log#"$ROOT"/}:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}
redis_up() { [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
node_ready() {
  [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$1/readyz")" = "200" ]
}

start redis "$STATE/redis.log" redis-server --bind "$HOST" --port "$REDIS_PORT" \
  --save '' --appendonly no --dir "$STATE" --daemonize no
wait_until redis "${pids[-1]}" "$STATE/redis.log" redis_up

# A fresh key for the admin view and the HTTP publish API, readable only here.
API_KEY=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
( umask 077; printf '%s\n' "$API_KEY" >"$STATE/api-keys" )

REDIS_URL=redis://$HOST:$REDIS_PORT
for node in a b; do
  port=$NODE_A_PORT
  [ "$node" = b ] && port=$NODE_B_PORT
  start "node-$node" "$STATE/node-$node.log" "$WSGATE" --listen "$HOST:$port" \
    --redis-url "$REDIS_URL" --node-id "node-$node" --api-key-file "$STATE/api-keys" "${DEV_ACCESS[@]}" "$@"
done
wait_until node-a "${pids[1]}" "$STATE/node-a.log" node_ready "$NODE_A_PORT"
wait_until node-b "${pids[2]}" "$STATE/node-b.log" node_ready "$NODE_B_PORT"

cat <<TXT

wsgate local cluster is up (redis $REDIS_URL, nodes node-a and node-b).

  Demo page      http://$HOST:$NODE_A_PORT/      http://$HOST:$NODE_B_PORT/
  WebSocket      ws://$HOST:$NODE_A_PORT/ws      ws://$HOST:$NODE_B_PORT/ws
  Metrics        http://$HOST:$NODE_A_PORT/metrics   http://$HOST:$NODE_B_PORT/metrics
  Readiness      http://$HOST:$NODE_A_PORT/readyz    http://$HOST:$NODE_B_PORT/readyz
  Admin view     http://$HOST:$NODE_A_PORT/admin     (API key: $API_KEY, also in .cluster/api-keys)
  Logs           .cluster/redis.log  .cluster/node-a.log  .cluster/node-b.log

Open both demo pages, join channel "demo" in each, and publish from either; or
publish as a backend would:

  redis-cli -p $REDIS_PORT FCALL wsgate_publish 2 '{gw:demo}:meta' '{gw:demo}:stream' gw:demo '{"text":"hi"}' '' ''
  redis-cli -p $REDIS_PORT PUBLISH gw:demo '{"text":"without history"}'

Press Ctrl-C to stop the cluster.
TXT

# Stay in the foreground until a signal arrives or a process dies on its own.
while true; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      say "${names[i]} (pid ${pids[i]}) stopped unexpectedly; last lines of its log:" >&2
      tail -n 20 "$STATE/${names[i]}.log" >&2
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
