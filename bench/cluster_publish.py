#!/usr/bin/env python3
"""The history-publish ceiling of one master against three (issue 19): FCALL
wsgate_publish (deploy/redis/wsgate.lua) through redis-benchmark, everything started and
stopped here, every run bounded in count and time.

Setups, each a Redis Cluster (cluster-enabled redis-server, no replicas, so that only
masters spend CPU):
  1 master   one node holding all 16384 slots (CLUSTER ADDSLOTSRANGE 0 16383)
  3 masters  redis-cli --cluster create, 3 masters, 0 replicas
Load (FCALL wsgate_publish with the 5th argument "shard", as wsgate's cluster mode sends it:
the envelope goes out by SPUBLISH to the slot's shard only; --classic leaves it out, so the
library PUBLISHes, which Redis Cluster broadcasts to every node over the cluster bus):
one redis-benchmark process (-c 50 -P 16, -n N) per channel, all at once. Each
process publishes on one channel; the channels are chosen so that each master owns the
same number of them (CLUSTER KEYSLOT), so the load is spread over the masters' slots.
Reported per setup and process count: the total rate (messages / wall time until the
last process ended), each master's Redis CPU seconds (INFO cpu before/after) and the CPU
the redis-benchmark processes used (RUSAGE_CHILDREN), i.e. who had the machine's cores.

  bench/cluster_publish.py                 (about 1 minute on 2 cores)
  bench/cluster_publish.py -n 150000 --per-master 1 --rounds 3
  bench/cluster_publish.py -n 100000 --per-master 2
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_cluster import ClusterNode, RedisCluster  # noqa: E402

LIBRARY = os.path.join(ROOT, "deploy", "redis", "wsgate.lua")


def redis_cpu(node):
    info = node.command("INFO", "cpu").decode()
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))
    return float(v["used_cpu_sys"]) + float(v["used_cpu_user"])


RUN = [0]


def channels_for(masters, per_master, keyslot, master_of_slot):
    """per_master new channel names for each master, by probing names in order (bounded)."""
    want = {m.port: [] for m in masters}
    RUN[0] += 1
    for i in range(100000):
        if all(len(v) >= per_master for v in want.values()):
            break
        ch = "gw:bench:r%d:c%d" % (RUN[0], i)
        port = master_of_slot(keyslot(ch)).port
        if len(want[port]) < per_master:
            want[port].append(ch)
    return want


SHARD = ["shard"]


def run_load(channels, n, size, bench_bin):
    """One redis-benchmark per (port, channel), concurrently. Returns (wall, client cpu)."""
    payload = json.dumps({"p": "x" * max(0, size - 8)})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    t0 = time.monotonic()
    for port, ch in channels:
        cmd = [bench_bin, "-p", str(port), "-n", str(n), "-c", "50", "-P", "16", "-q",
               "FCALL", "wsgate_publish", "2", "{%s}:meta" % ch, "{%s}:stream" % ch, ch, payload,
               "1000", "86400"] + SHARD
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for p, o in zip(procs, outs):
        if p.returncode != 0 or "ERR" in o or "MOVED" in o:
            raise RuntimeError("redis-benchmark failed: %s" % o[-500:])
    client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, client


def measure(name, masters, keyslot, master_of_slot, per_master, n, size, bench_bin):
    for m in masters:
        if not m.command("FUNCTION", "LIST", "LIBRARYNAME", "wsgate"):
            m.command("FUNCTION", "LOAD", open(LIBRARY, "rb").read())
    chans = channels_for(masters, per_master, keyslot, master_of_slot)
    pairs = [(port, ch) for port, lst in chans.items() for ch in lst]
    cpu0 = [redis_cpu(m) for m in masters]
    wall, client = run_load(pairs, n, size, bench_bin)
    cpu = [redis_cpu(m) - c for m, c in zip(masters, cpu0)]
    total = n * len(pairs)
    # Every message was stored: the offsets add up to what was sent.
    stored = 0
    for port, ch in pairs:
        node = next(m for m in masters if m.port == port)
        stored += int(node.command("HGET", "{%s}:meta" % ch, "offset"))
    if stored != total:
        raise RuntimeError("%s: %d stored of %d sent" % (name, stored, total))
    print("| %s | %d | %d | %.0f | %s | %.1f | %.1f | %.2f | %.1f | %.2f |" % (
        name, len(pairs), total, total / wall, " / ".join("%.1f" % c for c in cpu), sum(cpu),
        sum(cpu) / total * 1e6, sum(cpu) / wall, client, os.getloadavg()[0]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=150000, help="messages per redis-benchmark process")
    ap.add_argument("--size", type=int, default=100, help="payload bytes")
    ap.add_argument("--per-master", type=int, default=1,
                    help="channels (redis-benchmark processes) per master in the 3-master setup")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every setup, interleaved")
    ap.add_argument("--classic", action="store_true",
                    help="no \"shard\" argument: the library PUBLISHes (cluster-bus broadcast)")
    args = ap.parse_args()
    if args.classic:
        SHARD.clear()
    print("publish: %s" % ("PUBLISH (classic)" if args.classic else "SPUBLISH (\"shard\")"))
    bench_bin = os.environ.get("REDIS_BENCHMARK", "redis-benchmark")
    print("| setup | processes | messages | msg/s | Redis CPU s per master | Redis CPU s total "
          "| Redis CPU us/msg | Redis cores busy | redis-benchmark CPU s | load avg 1 min |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    one = ClusterNode(node_timeout_ms=5000)
    try:
        one.start()
        one.command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 30
        while one.info_cluster()["cluster_state"] != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("single-node cluster not ok")
            time.sleep(0.1)
        def key1(k):
            return one.command("CLUSTER", "KEYSLOT", k)
        cluster = RedisCluster(masters=3, replicas=0, node_timeout_ms=5000)
        try:
            # Rounds interleave the setups, so that the other load of a shared machine
            # falls on both alike.
            for _ in range(args.rounds):
                for procs in (1, 3 * args.per_master):
                    measure("1 master", [one], key1, lambda s: one, procs, args.n, args.size,
                            bench_bin)
                measure("3 masters", cluster.masters(), cluster.keyslot, cluster.master_of_slot,
                        args.per_master, args.n, args.size, bench_bin)
        finally:
            cluster.stop()
    finally:
        one.cleanup()


if __name__ == "__main__":
    main()
