#!/usr/bin/env bash
# Profiles one wsgate node under one wsbench scenario with perf: starts its own
# redis-server and two wsgate nodes (Release build in build-bench/), runs wsbench, records
# node 0 with `perf record -g` for the measured part, and prints the top of the report.
#
#   bench/profile.sh                                   many-channels, 8000 clients, 1000 msg/s
#   bench/profile.sh --scenario fanout --conns 2000 --deliveries 160000
#   PROFILE_SECONDS=15 bench/profile.sh ...             how long perf records (10)
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
for p in "$P0" "$P1"; do
  "$BUILD/gateway/wsgate" --listen "127.0.0.1:$p" --redis-url "redis://127.0.0.1:$RP" \
    --node-id "prof-$p" --log-level warn --anonymous-subscribe '*' --anonymous-publish '*' \
    >"$OUT/node-$p.log" 2>&1 &
  PIDS+=($!)
done
NODE0=${PIDS[1]}
for p in "$P0" "$P1"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$p/readyz" || { echo "profile: node on $p not ready ($OUT/node-$p.log)" >&2; exit 1; }
done

"$BUILD/bench/wsbench" --target wsgate --servers "127.0.0.1:$P0,127.0.0.1:$P1" \
  --redis "127.0.0.1:$RP" --server-pids "${PIDS[1]},${PIDS[2]}" "${ARGS[@]}" &
BENCH=$!
PIDS+=("$BENCH")
# Connecting takes a few seconds; record the steady part.
sleep "${PROFILE_DELAY:-4}"
perf record -g -F 999 -p "$NODE0" -o "$OUT/perf.data" -- sleep "$SECONDS_REC" 2>"$OUT/perf.log" || true
wait "$BENCH" || echo "profile: wsbench exited $?" >&2
perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol --percent-limit 1.5 2>/dev/null \
  | grep -v '^$' | grep -E '^ +[0-9]' | head -40 | tee "$OUT/report.txt"
