#!/usr/bin/env bash
# Profiles one wsgate node under one wsbench scenario with perf: starts its own
# redis-server and two wsgate nodes (Release build in build-bench/), runs wsbench, records
# node 0 with `perf record -g` for the measured part, and prints the top of the report.
#
#   bench/profile.sh                                   many-channels, 8000 clients, 1000 msg/s
#   bench/profile.sh --scenario fanout --conns 2000 --deliveries 160000
#   PROFILE_SECONDS=15 bench/profile.sh ...             how long perf records (10)
#   PROFILE_REDIS=cluster bench/profile.sh ...          the nodes on a 3-master Redis Cluster
#                                                       (bench/cluster_up.sh; wsbench SPUBLISHes)
#
# Everything after the script name goes to wsbench. Output: build-bench/profile/perf.data
# and report.txt. Only processes started here are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUT=$BUILD/profile
SECONDS_REC=${PROFILE_SECONDS:-10}
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--scenario many-channels --conns 8000 --rate 1000 --duration 14)

command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DWSGATE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target wsgate wsbench >/dev/null
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
die() { echo "profile: $*" >&2; exit 1; }
free_ports() {
  python3 -c 'import socket, sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

read -r RP P0 P1 <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --logfile "$OUT/redis.log" &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$RP" ping >/dev/null || { echo "profile: redis-server did not start ($OUT/redis.log)" >&2; exit 1; }
URL=redis://127.0.0.1:$RP
WSB_REDIS=(--redis "127.0.0.1:$RP")
if [ "${PROFILE_REDIS:-single}" = cluster ]; then
  # shellcheck source=bench/cluster_up.sh
  . "$ROOT/bench/cluster_up.sh"
  cluster_up "$OUT"
  PIDS+=("${CLUSTER_PIDS[@]}")
  URL=$CLUSTER_URL
  WSB_REDIS=(--redis-cluster "$CLUSTER_MAP")
fi
NODE_PIDS=()
for p in "$P0" "$P1"; do
  "$BUILD/gateway/wsgate" --listen "127.0.0.1:$p" --redis-url "$URL" \
    --node-id "prof-$p" --log-level warn --anonymous-subscribe '*' --anonymous-publish '*' \
    >"$OUT/node-$p.log" 2>&1 &
  PIDS+=($!)
  NODE_PIDS+=($!)
done
NODE0=${NODE_PIDS[0]}
for p in "$P0" "$P1"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$p/readyz" || { echo "profile: node on $p not ready ($OUT/node-$p.log)" >&2; exit 1; }
done

"$BUILD/bench/wsbench" --target wsgate --servers "127.0.0.1:$P0,127.0.0.1:$P1" \
  "${WSB_REDIS[@]}" --server-pids "${NODE_PIDS[0]},${NODE_PIDS[1]}" "${ARGS[@]}" &
BENCH=$!
PIDS+=("$BENCH")
# Connecting takes a few seconds; record the steady part.
sleep "${PROFILE_DELAY:-4}"
perf record -g -F 999 -p "$NODE0" -o "$OUT/perf.data" -- sleep "$SECONDS_REC" 2>"$OUT/perf.log" || true
wait "$BENCH" || echo "profile: wsbench exited $?" >&2
perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol --percent-limit 1.5 2>/dev/null \
  | grep -v '^$' | grep -E '^ +[0-9]' | head -40 | tee "$OUT/report.txt"
