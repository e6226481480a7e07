#!/usr/bin/env python3
"""How long a Redis Cluster shard's channels stop when its master is SIGKILLed, next to
cluster-node-timeout (issue 19): Redis' share (the kill to the first publish the promoted
replica accepts) and the gateway's (the kill to the first message published after the
kill that a WebSocket client receives).

For each node timeout: a 6-node cluster (3 masters + 3 replicas, the harness of
tests/integration/wsgate_cluster.py) and, when a wsgate binary is given (WSGATE_BIN, or
build-test/gateway/wsgate if present; --no-gateway skips it), one wsgate node in cluster
mode (redis+cluster://, default heartbeat and backoff settings) with one client subscribed
to a channel of the victim master. A publisher sends FCALL wsgate_publish ({"n": i}) on
that channel every 5 ms to the owner it reads from a live node's CLUSTER SLOTS after any
failure; the master is SIGKILLed. Every loop is bounded in count and time; every process
is stopped by PID.

  /usr/bin/python3 bench/cluster_failover.py                 (about 1 minute)
  /usr/bin/python3 bench/cluster_failover.py --timeouts 1000 2000 --rounds 2
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_cluster import RedisCluster  # noqa: E402
from wsgate_harness import RedisClient, RedisError, WSClient  # noqa: E402
from wsgate_pub import fn_keys  # noqa: E402

LIBRARY = os.path.join(ROOT, "deploy", "redis", "wsgate.lua")


def wsgate_bin(no_gateway):
    if no_gateway:
        return None
    b = os.environ.get("WSGATE_BIN") or os.path.join(ROOT, "build-test", "gateway", "wsgate")
    return b if os.access(b, os.X_OK) else None


class Node:
    """One wsgate node in cluster mode on a free port, stopped by PID."""

    def __init__(self, binary, seeds):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = tempfile.NamedTemporaryFile(prefix="wsgate-failover-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % self.port, "--redis-url", seeds,
                                      "--node-id", "failover-bench", "--log-level", "warn",
                                      "--anonymous-subscribe", "*", "--anonymous-publish", "*"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.port, timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("wsgate not ready (see %s)" % self.log.name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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


def publish(port, ch, n):
    """FCALL wsgate_publish of {"n": n} on the master at port, with "shard" (SPUBLISH, as
    in cluster mode: a classic PUBLISH does not reach sharded subscribers); True when
    accepted."""
    try:
        with RedisClient(port, timeout=0.5) as c:
            r = c.command("FCALL", "wsgate_publish", "2", *fn_keys(ch), ch, json.dumps({"n": n}),
                          "", "", "shard", raise_errors=False)
        return not isinstance(r, RedisError)
    except (OSError, TimeoutError):
        return False


def one_round(timeout_ms, binary):
    """(kill to first publish accepted, kill to first post-kill message delivered or None)."""
    cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=timeout_ms)
    node = client = reader = None
    arrivals, stop = [], threading.Event()
    try:
        for m in cluster.masters():
            m.command("FUNCTION", "LOAD", "REPLACE", open(LIBRARY, "rb").read())
        victim = cluster.masters()[1]
        ch = next(x for x in ("gw:fo:%d" % i for i in range(1000))
                  if cluster.master_of_key(x) is victim)
        slot = cluster.keyslot(ch)
        if binary:
            node = Node(binary, "redis+cluster://" + ",".join(m.addr for m in cluster.masters()))
            client = WSClient(node.port, timeout=10)
            assert client.subscribe(ch[len("gw:"):])["type"] == "ack"

            def read():
                deadline = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        m = client.recv_message(timeout=0.5)
                    except TimeoutError:
                        continue
                    except Exception:  # noqa: BLE001 - the node went away: the round says so
                        return
                    if isinstance(m.get("data"), dict):
                        arrivals.append((time.monotonic(), m["data"]["n"]))
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
        n = 0
        for _ in range(20):  # warm: the subscription carries messages before the kill
            n += 1
            assert publish(victim.port, ch, n)
            time.sleep(0.005)
        if binary:
            wait_deadline = time.monotonic() + 10
            while len(arrivals) < n and time.monotonic() < wait_deadline:
                time.sleep(0.01)
            assert len(arrivals) >= n, "the client did not get the warm-up messages"
        n_kill = n
        t_kill = time.monotonic()
        victim.kill()
        deadline = t_kill + 30 + timeout_ms / 100.0
        accepted = delivered = None
        attempts = 0
        while time.monotonic() < deadline and attempts < 20000:
            attempts += 1
            port = owner_port(cluster, slot, victim)
            if port is not None and port != victim.port and publish(port, ch, n + 1):
                n += 1
                if accepted is None:
                    accepted = time.monotonic() - t_kill
            if binary and delivered is None:
                after = [t for t, k in list(arrivals) if k > n_kill]
                if after:
                    delivered = min(after) - t_kill
            if accepted is not None and (not binary or delivered is not None):
                return accepted, delivered
            time.sleep(0.005)
        raise RuntimeError("no publish accepted (and delivered) within the deadline")
    finally:
        stop.set()
        if reader is not None:
            reader.join(5)
        if client is not None:
            client.abort()
        if node is not None:
            node.stop()
        cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeouts", type=int, nargs="+", default=[1000, 2000, 5000],
                    help="cluster-node-timeout values (ms)")
    ap.add_argument("--rounds", type=int, default=2, choices=range(1, 10))
    ap.add_argument("--no-gateway", action="store_true", help="Redis only, no wsgate node")
    args = ap.parse_args()
    binary = wsgate_bin(args.no_gateway)
    print("wsgate: %s" % (binary or "none (Redis only)"))
    print("| cluster-node-timeout (ms) | SIGKILL to first publish accepted by the promoted replica (s) "
          "| SIGKILL to first post-kill message at the client (s) |")
    print("|---|---|---|")
    for t in args.timeouts:
        got = [one_round(t, binary) for _ in range(args.rounds)]
        print("| %d | %s | %s |" % (t, " / ".join("%.2f" % a for a, _ in got),
                                     " / ".join("-" if d is None else "%.2f" % d for _, d in got)), flush=True)


if __name__ == "__main__":
    main()
