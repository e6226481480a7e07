# Sourced by bench/run.sh and bench/profile.sh: starts a 3-master Redis Cluster without
# replicas (a replica's CPU is not what is compared) on free loopback ports, with the slots
# assigned by hand as `redis-cli --cluster create` would split them, so that wsbench knows
# the map, and the settings docs/DEPLOYMENT.md recommends. Needs free_ports and die from
# the caller. Sets CLUSTER_PIDS (append to the caller's stop list), CLUSTER_PORTS,
# CLUSTER_URL (redis+cluster:// with every master as a seed) and CLUSTER_MAP (wsbench
# --redis-cluster). Bounded: 5 s per node to answer, 30 s for cluster_state:ok.
cluster_up() { # run_dir
  local dir=$1 cports i p bp ok info urls=() map=() ranges=(0-5460 5461-10922 10923-16383)
  CLUSTER_PIDS=() CLUSTER_PORTS=()
  read -r -a cports <<<"$(free_ports 6)"
  for i in 0 1 2; do
    p=${cports[$i]} bp=${cports[$((i + 3))]}
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bp" \
      --cluster-config-file "$dir/nodes-$p.conf" --cluster-node-timeout 5000 \
      --cluster-require-full-coverage no --cluster-allow-pubsubshard-when-down yes \
      --save "" --appendonly no --dir "$dir" --logfile "$dir/cluster-$p.log" --daemonize no &
    CLUSTER_PIDS+=($!)
    CLUSTER_PORTS+=("$p")
  done
  for p in "${CLUSTER_PORTS[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$p" ping >/dev/null || die "cluster node $p did not start (see $dir/cluster-$p.log)"
  done
  for i in 1 2; do
    redis-cli -p "${CLUSTER_PORTS[0]}" cluster meet 127.0.0.1 "${CLUSTER_PORTS[$i]}" "${cports[$((i + 3))]}" >/dev/null
  done
  for i in 0 1 2; do
    redis-cli -p "${CLUSTER_PORTS[$i]}" cluster addslotsrange ${ranges[$i]/-/ } >/dev/null
    urls+=("127.0.0.1:${CLUSTER_PORTS[$i]}")
    map+=("${ranges[$i]}@127.0.0.1:${CLUSTER_PORTS[$i]}")
  done
  ok=0
  for _ in $(seq 300); do
    ok=1
    for p in "${CLUSTER_PORTS[@]}"; do
      info=$(redis-cli -p "$p" cluster info)
      grep -q 'cluster_state:ok' <<<"$info" && grep -q 'cluster_known_nodes:3' <<<"$info" || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  [ $ok = 1 ] || die "the 3-master cluster did not reach cluster_state:ok in 30 s"
  CLUSTER_URL="redis+cluster://$(IFS=,; echo "${urls[*]}")"
  CLUSTER_MAP=$(IFS=,; echo "${map[*]}")
}
