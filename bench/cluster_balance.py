#!/usr/bin/env python3
"""How evenly 10,000 channels load 3 Redis Cluster masters (issue 19's target: the busiest
master's Redis CPU at most 1.2x the mean), at the Redis level: the gateway's cluster mode
is not built yet, so this measures what the slot spread alone gives.

A 3-master cluster without replicas (tests/integration/wsgate_cluster.py); channel names
gw:room:<i> for i < --channels; each channel's owner from CLUSTER KEYSLOT and the cluster's
slot ranges; then --messages FCALL wsgate_publish per channel, sent to its owner in
pipelined batches of 500 (one connection per master, the masters taken in turn, so they
work concurrently). Reported per master: channels, messages, Redis CPU seconds (INFO cpu
before/after); and the busiest master against the mean for both. Bounded by the counts and
by a 300 s deadline.

  /usr/bin/python3 bench/cluster_balance.py                      (about 30 s)
  /usr/bin/python3 bench/cluster_balance.py --channels 10000 --messages 10
"""

import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_cluster import RedisCluster  # noqa: E402

LIBRARY = os.path.join(ROOT, "deploy", "redis", "wsgate.lua")


def redis_cpu(node):
    info = node.command("INFO", "cpu").decode()
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))
    return float(v["used_cpu_sys"]) + float(v["used_cpu_user"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=10, help="per channel")
    ap.add_argument("--size", type=int, default=100, help="payload bytes")
    args = ap.parse_args()
    payload = json.dumps({"p": "x" * max(0, args.size - 8)})
    cluster = RedisCluster(masters=3, replicas=0, node_timeout_ms=5000)
    try:
        masters = cluster.masters()
        for m in masters:
            m.command("FUNCTION", "LOAD", open(LIBRARY, "rb").read())
        view = cluster._slot_view(masters[0])
        owner_of = {}
        for lo, hi, addr in view:
            for s in range(lo, hi + 1):
                owner_of[s] = int(addr.rsplit(":", 1)[1])
        names = ["gw:room:%d" % i for i in range(args.channels)]
        with masters[0].client(timeout=60) as c:
            slots = c.pipeline([("CLUSTER", "KEYSLOT", "{%s}:meta" % n) for n in names], timeout=60)
        per = {m.port: [] for m in masters}
        for n, s in zip(names, slots):
            per[owner_of[s]].append(n)
        cmds = {p: [("FCALL", "wsgate_publish", "2", "{%s}:meta" % n, "{%s}:stream" % n, n,
                     payload, "100", "600") for _ in range(args.messages) for n in chans]
                for p, chans in per.items()}
        clients = {m.port: m.client(timeout=60) for m in masters}
        cpu0 = {m.port: redis_cpu(m) for m in masters}
        t0 = time.monotonic()
        deadline = t0 + 300
        pos = {p: 0 for p in cmds}
        batch = 500
        while any(pos[p] < len(cmds[p]) for p in cmds):
            if time.monotonic() > deadline:
                raise RuntimeError("deadline reached")
            for p, c in clients.items():  # send to every master, then read every reply
                part = cmds[p][pos[p]:pos[p] + batch]
                if part:
                    c.sock.sendall(b"".join(c.encode(*x) for x in part))
            for p, c in clients.items():
                part = cmds[p][pos[p]:pos[p] + batch]
                for _ in part:
                    r = c.read_reply(timeout=60)
                    if not isinstance(r, list):
                        raise RuntimeError("FCALL failed on %d: %r" % (p, r))
                pos[p] += len(part)
        wall = time.monotonic() - t0
        cpu = {m.port: redis_cpu(m) - cpu0[m.port] for m in masters}
        for c in clients.values():
            c.close()
        total = sum(len(v) for v in cmds.values())
        print("%d channels x %d messages = %d FCALL wsgate_publish in %.1f s (%.0f/s)"
              % (args.channels, args.messages, total, wall, total / wall))
        print("| master | slots | channels | messages | Redis CPU s |")
        print("|---|---|---|---|---|")
        for m in masters:
            nslots = sum(1 for s in owner_of.values() if s == m.port)
            print("| %d | %d | %d | %d | %.2f |" % (m.port, nslots, len(per[m.port]),
                                                   len(cmds[m.port]), cpu[m.port]))
        counts = [len(per[m.port]) for m in masters]
        cpus = [cpu[m.port] for m in masters]
        print("busiest / mean: channels %.3f, Redis CPU %.3f"
              % (max(counts) / (sum(counts) / 3), max(cpus) / (sum(cpus) / 3)))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
