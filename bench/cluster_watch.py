#!/usr/bin/env python3
"""Watches a Redis Cluster's masters while bench/run.sh runs one wsbench scenario on it
(issue 19): each master's Redis CPU (INFO cpu) at the start and at the end, and every
--every seconds the established TCP connections of each wsgate node (by PID, from
`ss -tnp`) to each master, and the sharded channels each master holds (PUBSUB
SHARDCHANNELS). Writes one JSON line (kind "cluster-watch") with the maxima per node and
master, the channel counts at the sample where they were largest, and the CPU per master.

Bounded: it stops when --stop-file appears or after --max-s seconds, whichever is first.

  python3 bench/cluster_watch.py --ports 7000,7001,7002 --node-pids 11,12 \\
      --stop-file /tmp/x.stop --json results.jsonl --label RUN --scenario many-channels
"""

import argparse
import json
import os
import re
import subprocess
import time


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                          text=True, timeout=30).stdout


def redis_cpu(port):
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", cli(port, "INFO", "cpu")))
    return float(v.get("used_cpu_sys", 0)) + float(v.get("used_cpu_user", 0))


def conns_by_pid(port):
    """{pid: set of local ports of its established connections to 127.0.0.1:port}, from ss'
    process column."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dport = :%d" % port],
                         capture_output=True, text=True, timeout=30).stdout
    n = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 4:
            continue
        local = int(cols[2].rsplit(":", 1)[1])
        for pid in set(re.findall(r"pid=(\d+)", line)):
            n.setdefault(int(pid), set()).add(local)
    return n


def client_list_ports(port):
    """The client ports Redis itself lists (CLIENT LIST addr=127.0.0.1:<port>)."""
    return {int(m) for m in re.findall(r"addr=[0-9.]+:(\d+)", cli(port, "CLIENT", "LIST"))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ports", required=True)
    ap.add_argument("--node-pids", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--max-s", type=float, default=600)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--json", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--scenario", default="")
    ap.add_argument("--round", type=int, default=0)
    a = ap.parse_args()
    ports = [int(p) for p in a.ports.split(",")]
    pids = [int(p) for p in a.node_pids.split(",")]
    cpu0 = [redis_cpu(p) for p in ports]
    t0 = time.monotonic()
    conns = {pid: {p: 0 for p in ports} for pid in pids}
    listed = {pid: {p: 0 for p in ports} for pid in pids}  # the same, as Redis' CLIENT LIST sees it
    best_chans, samples = [0] * len(ports), 0
    deadline = t0 + a.max_s
    while time.monotonic() < deadline and samples < 100000:
        samples += 1
        # the nodes' own channels (heartbeats __wsgate:hb:{tag}:<node>, the control channel
        # __wsgate:ctl:{wsgate} and its per-node replies) are not the load's
        chans = [len([x for x in cli(p, "PUBSUB", "SHARDCHANNELS").splitlines()
                      if x and not x.startswith("__wsgate:")]) for p in ports]
        if sum(chans) > sum(best_chans):
            best_chans = chans
        for p in ports:
            got = conns_by_pid(p)
            seen = client_list_ports(p)
            for pid in pids:
                conns[pid][p] = max(conns[pid][p], len(got.get(pid, ())))
                listed[pid][p] = max(listed[pid][p], len(got.get(pid, set()) & seen))
        if os.path.exists(a.stop_file):
            break
        time.sleep(a.every)
    cpu1 = [redis_cpu(p) for p in ports]
    cpu = [round(b - c, 3) for b, c in zip(cpu1, cpu0)]
    mean = sum(cpu) / len(cpu)
    row = {"v": 1, "kind": "cluster-watch", "label": a.label, "scenario": a.scenario,
           "round": a.round, "seconds": round(time.monotonic() - t0, 1), "samples": samples,
           "masters": ports, "redis_cpu_s": cpu,
           "busiest_over_mean_cpu": round(max(cpu) / mean, 3) if mean > 0 else None,
           "shard_channels_at_peak": best_chans,
           "busiest_over_mean_channels": round(max(best_chans) * len(ports) / sum(best_chans), 3)
           if sum(best_chans) else None,
           "node_conns_max": {str(pid): [conns[pid][p] for p in ports] for pid in pids},
           "node_conns_client_list_max": {str(pid): [listed[pid][p] for p in ports] for pid in pids}}
    with open(a.json, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("cluster-watch %s round %d: Redis CPU s per master %s (busiest/mean %s), sharded channels "
          "at peak %s, connections per node per master %s (in CLIENT LIST %s)"
          % (a.scenario, a.round, cpu, row["busiest_over_mean_cpu"], best_chans,
             row["node_conns_max"], row["node_conns_client_list_max"]), flush=True)


if __name__ == "__main__":
    main()
