#!/usr/bin/env python3
"""How long a Redis Cluster shard stops taking sharded publishes when its master is
SIGKILLed, next to cluster-node-timeout (issue 19). Redis' own share of the gateway's
"SIGKILL to delivery resumed" figure: the gateway will add its own detection and refresh
on top of this.

For each node timeout: a 6-node cluster (3 masters + 3 replicas, the harness of
tests/integration/wsgate_cluster.py); a publisher sends SPUBLISH on a channel of one master
every 5 ms, asking CLUSTER SLOTS of a live node for the owner after any failure; the master
is SIGKILLed; reported is the time from the kill to the first SPUBLISH the promoted replica
accepted. Every loop is bounded in count and time; every process is stopped by PID.

  /usr/bin/python3 bench/cluster_failover.py                 (about 1 minute)
  /usr/bin/python3 bench/cluster_failover.py --timeouts 1000 2000 --rounds 2
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_cluster import RedisCluster  # noqa: E402
from wsgate_harness import RedisClient, RedisError  # noqa: E402


def owner_port(cluster, slot, skip):
    for n in cluster.running_nodes():
        if n is skip:
            continue
        try:
            for lo, hi, addr in cluster._slot_view(n):
                if lo <= slot <= hi:
                    return int(addr.rsplit(":", 1)[1])
        except (OSError, RedisError, TimeoutError):
            continue
    return None


def one_round(timeout_ms):
    cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=timeout_ms)
    try:
        victim = cluster.masters()[1]
        ch = next(x for x in ("gw:fo:%d" % i for i in range(1000))
                  if cluster.master_of_key(x) is victim)
        slot = cluster.keyslot(ch)
        ok = victim.command("SPUBLISH", ch, "before")
        assert ok == 0, ok
        t_kill = time.monotonic()
        victim.kill()
        deadline = t_kill + 30 + timeout_ms / 100.0
        attempts = 0
        while time.monotonic() < deadline and attempts < 20000:
            attempts += 1
            port = owner_port(cluster, slot, victim)
            if port is not None and port != victim.port:
                try:
                    with RedisClient(port, timeout=0.5) as c:
                        r = c.command("SPUBLISH", ch, "after", raise_errors=False)
                    if not isinstance(r, RedisError):
                        return time.monotonic() - t_kill
                except (OSError, TimeoutError):
                    pass
            time.sleep(0.005)
        raise RuntimeError("no SPUBLISH accepted within the deadline")
    finally:
        cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeouts", type=int, nargs="+", default=[1000, 2000, 5000],
                    help="cluster-node-timeout values (ms)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print("| cluster-node-timeout (ms) | SIGKILL to first SPUBLISH accepted by the promoted "
          "replica (s), per round |")
    print("|---|---|")
    for t in args.timeouts:
        got = [one_round(t) for _ in range(args.rounds)]
        print("| %d | %s |" % (t, " / ".join("%.2f" % g for g in got)), flush=True)


if __name__ == "__main__":
    main()
