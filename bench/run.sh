#!/usr/bin/env bash
# One command for the whole benchmark: installs what is missing, builds wsgate and
# wsbench, starts its own redis-server, then for each scenario runs wsgate (2 nodes by
# default) and each alternative (nchan, a Node ws+ioredis hub, and the "ideal" reference
# fan-out server) on this machine, one after the other, and prints the results with
# wsgate/alternative ratios.
#
#   bench/run.sh                      full run (about 13 minutes on 2 cores)
#   bench/run.sh --quick              smoke run, small sizes (about 2 min 40 s)
#   bench/run.sh --targets wsgate,nchan --scenarios fanout,saturation
#   bench/run.sh -- --size 1024       everything after -- goes to every wsbench call
#   bench/run.sh --redis single,cluster --rounds 3 --targets wsgate --scenarios fanout,many-channels
#                                     wsgate on one Redis and on a 3-master Redis Cluster
#                                     (redis+cluster://), interleaved, per round (issue 19)
#   bench/run.sh --redis cluster --scenarios many-channels:10,many-channels:10000,cluster-publish,cluster-failover
#   bench/run.sh --scenarios presence  presence steady state, join/leave, reconnect storm (issue 20)
#
# A scenario NAME:N is NAME with --conns N. In cluster mode a watcher samples, per master,
# the wsgate nodes' connections (ss, matched in CLIENT LIST) and the sharded channels (PUBSUB SHARDCHANNELS), and
# each master's INFO cpu before and after (bench/cluster_watch.py).
#
# Environment: BENCH_TARGETS, BENCH_SCENARIOS, BENCH_NODES, BENCH_OUT, BENCH_QUICK=1,
# BENCH_NO_INSTALL=1, BENCH_BUILD_DIR, BENCH_WSGATE_ARGS (extra wsgate flags), BENCH_WSGATE_BIN,
# BENCH_AUTH=hs256|rs256|es256 (wsgate without anonymous rights; every client sends one
# minted JWT as ?token=), BENCH_REDIS_TLS=1 (the wsgate nodes reach Redis over TLS,
# rediss:// with a CA minted by openssl for the run; wsbench publishes in plain). Only processes started here are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL_SCENARIOS=fanout,many-channels,many-channels-sweep,slow-consumers,saturation,idle-memory,connect-storm
# Scenarios that run a script of their own once per run (not per target, mode or round).
SCRIPT_SCENARIOS=cluster-publish,cluster-failover,presence
TARGETS=${BENCH_TARGETS:-wsgate,nchan,node,ideal}
SCENARIOS=${BENCH_SCENARIOS:-$ALL_SCENARIOS}
NODES=${BENCH_NODES:-2}
# Extra wsgate flags for every wsgate run, e.g. "--tcp-nodelay 0" or "--coalesce-ms 10".
read -r -a WSGATE_EXTRA <<<"${BENCH_WSGATE_ARGS:-}"
WSGATE_EXTRA_LABEL=${BENCH_WSGATE_ARGS:+ (${BENCH_WSGATE_ARGS})}
QUICK=${BENCH_QUICK:-0}
NO_INSTALL=${BENCH_NO_INSTALL:-0}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$BUILD/results}
EXTRA=()
REDIS_MODES=${BENCH_REDIS:-single}
ROUNDS=${BENCH_ROUNDS:-1}

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --targets) TARGETS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --nodes) NODES=$2; shift ;;
    --redis) REDIS_MODES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-install) NO_INSTALL=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ "$NODES" =~ ^[1-8]$ ]] || die "--nodes must be 1..8"
AUTH=${BENCH_AUTH:-}
case "$AUTH" in ''|hs256|rs256|es256) ;; *) die "BENCH_AUTH must be hs256, rs256 or es256" ;; esac
for t in ${TARGETS//,/ }; do
  case "$t" in wsgate|nchan|node|ideal) ;; *) die "unknown target '$t' (wsgate, nchan, node, ideal)" ;; esac
done
[[ "$ROUNDS" =~ ^[1-9]$ ]] || die "--rounds must be 1..9"
for m in ${REDIS_MODES//,/ }; do
  case "$m" in single|cluster) ;; *) die "unknown --redis mode '$m' (single, cluster)" ;; esac
done
has_mode() { case ",$REDIS_MODES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for s in ${SCENARIOS//,/ }; do
  base=${s%%:*}
  if [ "$base" != "$s" ]; then [[ "${s#*:}" =~ ^[1-9][0-9]{0,5}$ ]] || die "scenario '$s': N in NAME:N must be a count"; fi
  case ",$ALL_SCENARIOS,$SCRIPT_SCENARIOS," in *",$base,"*) ;; *) die "unknown scenario '$s' ($ALL_SCENARIOS,$SCRIPT_SCENARIOS)" ;; esac
done
has_target() { case ",$TARGETS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---- install ----------------------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }
install_missing() {
  [ "$NO_INSTALL" = 1 ] && return 0
  bash "$ROOT/deploy/install-deps.sh"
  local want=() pkg
  has_target nchan && want+=(nginx libnginx-mod-nchan)
  for pkg in "${want[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  if has_target node; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    say "installing: ${missing[*]}"
    for pkg in "${missing[@]}"; do apt-cache policy "$pkg" | sed -n '1,3p' >&2; done
    DEBIAN_FRONTEND=noninteractive apt-get -q update
    DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${missing[@]}"
  fi
  if has_target node; then
    local hub=$ROOT/bench/alternatives/node-hub
    if [ ! -d "$hub/node_modules/ws" ] || [ ! -d "$hub/node_modules/ioredis" ]; then
      say "npm ci in bench/alternatives/node-hub"
      (cd "$hub" && npm ci --no-audit --no-fund >&2)
    fi
  fi
}
missing=()
install_missing

# ---- build ------------------------------------------------------------------------
say "building (Release) into $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DWSGATE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target wsgate wsbench ideal-fanout >/dev/null
# BENCH_WSGATE_BIN: measure another wsgate binary (for example one built from an older
# commit) with this tree's wsbench and scenarios, for before/after figures in one session.
WSGATE=${BENCH_WSGATE_BIN:-$BUILD/gateway/wsgate}
WSBENCH=$BUILD/bench/wsbench
IDEAL=$BUILD/bench/ideal-fanout

# Servers inherit this: every target gets the same descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)-$$
RUN_DIR=$(mktemp -d /tmp/wsgate-bench.XXXXXX)
chmod 755 "$RUN_DIR"
mkdir -p "$OUT"
JSON=$OUT/results.jsonl

# ---- process bookkeeping: only what this script started, by PID -----------------------
PIDS=()
stop_pids() {
  local pid deadline=$((SECONDS + 15)) alive
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  while [ $SECONDS -lt $deadline ]; do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
REDIS_PID=
CLUSTER_PIDS=()
cleanup() {
  [ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
  [ -n "$REDIS_PID" ] && stop_pids "$REDIS_PID"
  [ ${#CLUSTER_PIDS[@]} -gt 0 ] && stop_pids "${CLUSTER_PIDS[@]}"
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, asked from the kernel (bound and released at once).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_http() { # url timeout_s
  local deadline=$((SECONDS + $2))
  until curl -sf -o /dev/null --max-time 1 "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# ---- redis --------------------------------------------------------------------------
read -r REDIS_PORT REDIS_TLS_PORT <<<"$(free_ports 2)"
REDIS_TLS_ARGS=()
WSGATE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
WSGATE_REDIS_TLS=()
if [ "${BENCH_REDIS_TLS:-0}" = 1 ]; then
  # A CA and a server certificate (127.0.0.1) for this run only.
  tls=$RUN_DIR/tls
  mkdir -p "$tls"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" -subj "/CN=wsgate bench CA" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tls/redis.key" -out "$tls/redis.csr" -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
  openssl x509 -req -in "$tls/redis.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 1 -extfile "$tls/ext" -out "$tls/redis.crt" 2>/dev/null || die "cannot mint the Redis TLS certificate"
  REDIS_TLS_ARGS=(--tls-port "$REDIS_TLS_PORT" --tls-cert-file "$tls/redis.crt" --tls-key-file "$tls/redis.key"
                  --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no)
  WSGATE_REDIS_URL=rediss://127.0.0.1:$REDIS_TLS_PORT
  WSGATE_REDIS_TLS=(--redis-tls-ca-file "$tls/ca.crt")
  WSGATE_EXTRA_LABEL="$WSGATE_EXTRA_LABEL (Redis link over TLS)"
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN_DIR" \
  --logfile "$RUN_DIR/redis.log" --daemonize no "${REDIS_TLS_ARGS[@]}" &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis-server did not start (see $RUN_DIR/redis.log)"

# ---- Redis Cluster (--redis cluster): 3 masters, no replicas (a replica's CPU is not what
# is compared), slots assigned by hand as redis-cli --cluster create would split them, so
# wsbench knows the map; the settings docs/DEPLOYMENT.md recommends ----------------------
CLUSTER_PORTS=()
CLUSTER_MAP=
CLUSTER_URL=
if has_mode cluster; then
  # shellcheck source=bench/cluster_up.sh
  . "$ROOT/bench/cluster_up.sh"
  cluster_up "$RUN_DIR"
  say "Redis Cluster: 3 masters ${CLUSTER_PORTS[*]} (pids ${CLUSTER_PIDS[*]})"
fi

# ---- access: anonymous rights, or a key and one token for every client (BENCH_AUTH) ----
# Debian's python3-jwt mints the token (an independent implementation, as in the tests);
# /usr/bin/python3 because a python3 earlier on PATH may not have it.
WSGATE_ACCESS=(--anonymous-subscribe '*' --anonymous-publish '*')
TOKEN_ARGS=()
if [ -n "$AUTH" ]; then
  /usr/bin/python3 - "$AUTH" "$RUN_DIR" <<'PY' || die "cannot mint a $AUTH key and token (needs python3-jwt, python3-cryptography)"
import os, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

alg, d = sys.argv[1], sys.argv[2]
os.umask(0o077)  # the secret is readable by this user only
claims = {"sub": "bench", "channels": ["*"], "exp": int(time.time()) + 3600}
if alg == "hs256":
    secret = os.urandom(32).hex().encode()
    with open(os.path.join(d, "jwt-secret"), "wb") as f:
        f.write(secret)
    token = jwt.encode(claims, secret, algorithm="HS256")
else:
    key = rsa.generate_private_key(65537, 2048) if alg == "rs256" else ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(d, "jwt-key.pem"), "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    # kid = the key file's base name, as a deployment with rotation would send it
    token = jwt.encode(claims, key, algorithm=alg.upper(), headers={"kid": "jwt-key"})
with open(os.path.join(d, "token"), "w") as f:
    f.write(token)
PY
  if [ "$AUTH" = hs256 ]; then
    WSGATE_ACCESS=(--jwt-hmac-secret-file "$RUN_DIR/jwt-secret")
  else
    WSGATE_ACCESS=(--jwt-public-key-files "$RUN_DIR/jwt-key.pem")
  fi
  TOKEN_ARGS=(--token-file "$RUN_DIR/token")
  say "auth: $AUTH, token of $(wc -c <"$RUN_DIR/token") bytes, no anonymous rights"
fi

# ---- targets: each start_* sets SERVERS (host:port list) and adds to PIDS -------------
SERVERS=
# Each launch_<target> PORT INDEX [flags...] becomes one server process (exec keeps
# its PID the one recorded in PIDS).
launch_wsgate() {
  local p=$1 i=$2
  shift 2
  local url=$WSGATE_REDIS_URL
  [ "$MODE" = cluster ] && url=$CLUSTER_URL
  exec "$WSGATE" --listen "127.0.0.1:$p" --redis-url "$url" "${WSGATE_REDIS_TLS[@]}" \
    --node-id "bench-$i" --log-level warn "${WSGATE_ACCESS[@]}" "$@" "${WSGATE_EXTRA[@]}"
}
launch_node() {
  PORT=$1 REDIS_URL="redis://127.0.0.1:$REDIS_PORT" CHANNEL_PREFIX=gw: \
    exec node "$ROOT/bench/alternatives/node-hub/hub.js"
}
launch_ideal() {
  exec "$IDEAL" --port "$1" --redis-port "$REDIS_PORT" --prefix gw:
}
wait_tcp() { # port: true once something accepts on it (10 s at most)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# Starts $NODES processes of a target on free ports and waits for each: GET ready_path
# answers 200, or (empty path) the port accepts.
start_nodes() { # target ready_path [flags for launch_<target>]...
  local target=$1 ready=$2 ports i p list=()
  shift 2
  read -r -a ports <<<"$(free_ports "$NODES")"
  for i in $(seq 0 $((NODES - 1))); do
    p=${ports[$i]}
    "launch_$target" "$p" "$i" "$@" >"$RUN_DIR/$target-$i.log" 2>&1 &
    PIDS+=($!)
    list+=("127.0.0.1:$p")
  done
  for p in "${ports[@]}"; do
    if [ -n "$ready" ]; then
      wait_http "http://127.0.0.1:$p$ready" 20 || die "$target on port $p not ready (see $RUN_DIR/$target-*.log)"
    else
      wait_tcp "$p" || die "$target on port $p not listening (see $RUN_DIR/$target-*.log)"
    fi
  done
  SERVERS=$(IFS=,; echo "${list[*]}")
}
start_nchan() {
  local p dir=$RUN_DIR/nchan
  read -r p <<<"$(free_ports 1)"
  rm -rf "$dir" && mkdir -p "$dir" && chmod 755 "$dir"
  sed -e "s#@WORKERS@#$NODES#g; s#@NOFILE@#$NOFILE#g; s#@DIR@#$dir#g; s#@REDIS_PORT@#$REDIS_PORT#g" \
      -e "s#@PORT@#$p#g; s#@MODULE@#/usr/lib/nginx/modules/ngx_nchan_module.so#g" \
      "$ROOT/bench/alternatives/nchan/nginx.conf.in" >"$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/healthz" 20 || die "nchan on port $p not ready (see $dir/error.log)"
  SERVERS=127.0.0.1:$p
}

# ---- scenario sizes ----------------------------------------------------------------
scenario_args() { # scenario -> wsbench arguments
  if [ "$QUICK" = 1 ]; then
    case "$1" in
      fanout) echo "--conns 1000 --deliveries 40000 --duration 1.5" ;;
      many-channels) echo "--conns 500 --deliveries 5000 --duration 1.5" ;;
      many-channels-sweep) echo "--sweep 200,1000 --rate 1000,5000 --durations 2,1" ;;
      slow-consumers) echo "--conns 250 --deliveries 40000 --size 4096 --warm 1.5 --duration 7 --slow-share 0.02" ;;
      saturation) echo "--conns 1000 --deliveries 40000 --duration 1.5 --sat-steps 3 --sat-max-s 10" ;;
      idle-memory) echo "--conns 2000 --settle 1" ;;
      connect-storm) echo "--conns 1000" ;;
    esac
  else
    case "$1" in
      fanout) echo "--conns 2000 --deliveries 40000,160000 --duration 10" ;;
      many-channels) echo "--conns 2000 --deliveries 20000 --duration 10" ;;
      # "max": wsbench holds every client socket itself, so it takes its own descriptor
      # limit (raised to ulimit -Hn above) less 256, rounded down to 1000 (19000 at 20000)
      many-channels-sweep) echo "--sweep 500,2000,8000,max --rate 1000,20000 --durations 10,5 --connect-timeout 90" ;;
      slow-consumers) echo "--conns 500 --deliveries 40000 --size 4096 --warm 8 --duration 25 --slow-share 0.01" ;;
      saturation) echo "--conns 2000 --deliveries 40000 --duration 4 --sat-max-s 55" ;;
      idle-memory) echo "--conns 10000" ;;
      connect-storm) echo "--conns 5000" ;;
    esac
  fi
}
# A smaller outbound queue than the default 1024 messages lets the slow clients fill it
# within the phase; the shed rule itself is the same.
wsgate_flags() {
  if [ "$1" = slow-consumers ]; then
    if [ "$QUICK" = 1 ]; then echo "--queue-max-messages 64"; else echo "--queue-max-messages 256"; fi
  fi
}

machine_info() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
       "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "versions: $("$WSGATE" --version 2>&1 | head -1); $(redis-server --version | cut -d' ' -f1-3)"\
       "$(has_target nchan && echo "; nginx $(dpkg-query -W -f='${Version}' nginx 2>/dev/null)" \
          "+ nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)")"\
       "$(has_target node && [ -d "$ROOT/bench/alternatives/node-hub/node_modules/ws" ] && echo "; node $(node --version) ws $(node -p "require('$ROOT/bench/alternatives/node-hub/node_modules/ws/package.json').version")" \
          "ioredis $(node -p "require('$ROOT/bench/alternatives/node-hub/node_modules/ioredis/package.json').version")")"
  echo "run: $RUN_ID, $NODES nodes per target$WSGATE_EXTRA_LABEL, Redis $REDIS_MODES, $ROUNDS round(s), load average $(cut -d' ' -f1-3 /proc/loadavg), auth ${AUTH:-none}, quick=$QUICK, fd limit $NOFILE, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
}

say "results: $JSON (label $RUN_ID)"
machine_info | tee "$OUT/machine-$RUN_ID.txt" >&2
# Script scenarios write their own tables; they start and stop their own Redis and nodes.
run_script_scenario() {
  local out=$OUT/$1-$RUN_ID.txt
  say "== $1 (output: $out)"
  case "$1" in
    cluster-publish) # as wsgate publishes in cluster mode (SPUBLISH), then classic PUBLISH (bus broadcast)
      timeout 600 /usr/bin/python3 "$ROOT/bench/cluster_publish.py" -n 150000 --per-master 1 --rounds "$ROUNDS" &&
        timeout 600 /usr/bin/python3 "$ROOT/bench/cluster_publish.py" -n 150000 --per-master 1 --rounds "$ROUNDS" --classic ;;
    cluster-failover) WSGATE_BIN=$WSGATE timeout 900 /usr/bin/python3 "$ROOT/bench/cluster_failover.py" --timeouts 1000 5000 --rounds "$ROUNDS" ;;
    presence) WSGATE_BIN=$WSGATE timeout 1200 /usr/bin/python3 "$ROOT/bench/presence.py" --rounds "$ROUNDS" ;;
  esac 2>&1 | tee "$out" || say "$1 failed (see $out)"
}

HEADER_DONE=0
for scenario in ${SCENARIOS//,/ }; do
  base=${scenario%%:*}
  if [ "$base" != "$scenario" ]; then conns_arg=(--conns "${scenario#*:}"); else conns_arg=(); fi
  case ",$SCRIPT_SCENARIOS," in *",$base,"*) run_script_scenario "$base"; continue ;; esac
  for round in $(seq "$ROUNDS"); do
  for MODE in ${REDIS_MODES//,/ }; do
  for target in ${TARGETS//,/ }; do
    if [ "$MODE" = cluster ] && [ "$target" != wsgate ]; then
      say "== $scenario: $target has no Redis Cluster mode here, skipped"
      continue
    fi
    say "== $scenario round $round, Redis $MODE: $target"
    before=${#PIDS[@]}
    case "$target" in
      wsgate) # shellcheck disable=SC2046
              start_nodes wsgate /readyz $(wsgate_flags "$base") ;;
      node) start_nodes node /readyz ;;
      nchan) start_nchan ;;
      ideal) start_nodes ideal "" ;;
    esac
    started=("${PIDS[@]:$before}")
    if [ "$MODE" = cluster ]; then
      redis_args=(--redis-cluster "$CLUSTER_MAP" --redis-pid "$(IFS=,; echo "${CLUSTER_PIDS[*]}")" --target-name wsgate-cluster)
    else
      redis_args=(--redis "127.0.0.1:$REDIS_PORT" --redis-pid "$REDIS_PID")
    fi
    args=(--target "$target" --servers "$SERVERS" "${redis_args[@]}" --scenario "$base" --round "$round"
          --server-pids "$(IFS=,; echo "${started[*]}")" --json "$JSON" --label "$RUN_ID")
    [ "$HEADER_DONE" = 1 ] && args+=(--no-header)
    if [ "$target" = wsgate ]; then args+=("${TOKEN_ARGS[@]}"); fi
    HEADER_DONE=1
    watch=()
    if [ "$MODE" = cluster ]; then
      # bounded: it stops when the stop file appears, or after 600 s
      python3 "$ROOT/bench/cluster_watch.py" --ports "$(IFS=,; echo "${CLUSTER_PORTS[*]}")" \
        --node-pids "$(IFS=,; echo "${started[*]}")" --stop-file "$RUN_DIR/watch.stop" --max-s 600 \
        --json "$JSON" --label "$RUN_ID" --scenario "$scenario" --round "$round" &
      watch=($!)
      PIDS+=("${watch[@]}")
    fi
    # shellcheck disable=SC2046
    timeout 300 "$WSBENCH" "${args[@]}" $(scenario_args "$base") "${conns_arg[@]}" "${EXTRA[@]}" ||
      say "wsbench failed for $target/$scenario (exit $?)"
    if [ ${#watch[@]} -gt 0 ]; then
      touch "$RUN_DIR/watch.stop"
      wait "${watch[0]}" || say "cluster_watch.py failed (exit $?)"
      rm -f "$RUN_DIR/watch.stop"
    fi
    stop_pids "${started[@]}"
    PIDS=("${PIDS[@]:0:$before}")
    # nchan keeps messages and channel state in Redis; every target starts from empty
    if [ "$MODE" = cluster ]; then
      for p in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
    else
      redis-cli -p "$REDIS_PORT" flushall >/dev/null
    fi
  done
  done
  done
done

printf '\n'
machine_info
python3 "$ROOT/bench/report.py" "$JSON" --label "$RUN_ID" | tee "$OUT/summary-$RUN_ID.txt"
