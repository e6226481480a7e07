"""Pieces the chaos suite shares (the steady publisher is the harness's Publisher): clients that read
on their own threads and time-stamp every message, a /readyz watcher, the per-case report
and the network namespaces for partitions. Built on tests/integration/wsgate_harness.py.

The publisher and the readers run on threads because a fault is applied from the test's
own thread while traffic keeps flowing; each of them is bounded in count and time.
"""

import os
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from wsgate_harness import (NO_RATE_LIMIT, ConnectionClosed, ConnectionLost,  # noqa: E402,F401
                            Gateway, GatewayTestCase, ProtocolError, Publisher, RedisClient,
                            RedisServer, T, WSClient, fn_keys, http_status, rss_bytes, uniq,
                            wait_until)

# The node's defaults for the Redis link, written out: the harness speeds heartbeats up
# for the other suites, but what the chaos suite measures is what an operator gets.
DEFAULT_LINK_ARGS = ["--redis-heartbeat-interval-ms", "1000", "--redis-heartbeat-timeout-ms", "3000",
                     "--redis-backoff-min-ms", "100", "--redis-backoff-max-ms", "2000"]


class Reader(threading.Thread):
    """One subscribed client reading on its own thread until stopped or dropped. Every
    message is kept as (arrival time, n, offset, epoch)."""

    def __init__(self, client, channel, label):
        super().__init__(daemon=True)
        self.c, self.channel, self.label = client, channel, label
        self.got = []
        self.gaps = []
        self.dropped = None
        self.stop = threading.Event()

    def subscribe(self):
        ack = self.c.request({"type": "subscribe", "channel": self.channel}, timeout=10)
        if ack.get("type") != "ack":
            raise AssertionError("%s: subscribe answered %r" % (self.label, ack))
        return self

    def run(self):
        deadline = time.monotonic() + T(120)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                m = self.c.recv_message(timeout=0.2)
            except TimeoutError:
                continue
            except (ConnectionClosed, ConnectionLost, ProtocolError, OSError, ValueError) as e:
                self.dropped = "%s (close code %r)" % (type(e).__name__, self.c.close_code)
                break
            data = m.get("data")
            n = data.get("n") if isinstance(data, dict) else None
            self.got.append((time.monotonic(), n, m.get("offset"), m.get("epoch")))
            while self.c.inbox:
                o = self.c.inbox.popleft()
                if isinstance(o, dict) and o.get("type") == "gap":
                    self.gaps.append(o)

    def last_n(self):
        return self.got[-1][1] if self.got else 0

    def ns(self):
        return [g[1] for g in self.got]

    def lost(self, total):
        return len(set(range(1, total + 1)) - set(self.ns()))

    def first_after(self, t):
        for g in self.got:
            if g[0] >= t:
                return g[0] - t
        return None

    def caught_up_after(self, t, pub):
        """Seconds from t until this client had a message that was published after t:
        the in-flight ones that arrive right at t do not prove the link works again."""
        first_n = next((a[1] for a in pub.acked if a[0] >= t), None)
        if first_n is None:
            return None
        for g in self.got:
            if g[1] is not None and g[1] >= first_n:
                return max(0.0, g[0] - t)
        return None


class ReadyzWatch(threading.Thread):
    """Polls a node's /readyz every `every` seconds and keeps the transitions as
    (monotonic time, status); status None means no answer (a stopped node)."""

    def __init__(self, node, every=0.05):
        super().__init__(daemon=True)
        self.node, self.every = node, every
        self.changes = []
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + T(120)
        last = object()
        while not self.stop.is_set() and time.monotonic() < deadline:
            s = self.node.readyz(timeout=0.5)
            if s != last:
                self.changes.append((time.monotonic(), s))
                last = s
            time.sleep(self.every)

    def statuses_between(self, t0, t1):
        """Every status the node had at some moment in [t0, t1]."""
        out, cur, have = set(), None, False
        for t, s in self.changes:
            if t <= t0:
                cur, have = s, True
            elif t <= t1:
                out.add(s)
        if have:
            out.add(cur)
        return out

    def status_at_end(self):
        return self.changes[-1][1] if self.changes else None

    def describe(self, t0):
        return " ".join("%+.2fs:%s" % (t - t0, s) for t, s in self.changes)


def report(name, readers, total, fault_start, fault_end, watches, extra="", pub=None):
    """Prints one block per case: lost per client, resume time after the fault, /readyz
    transitions (relative to the fault start) and drops."""
    lines = ["", "[chaos] %s: %d messages; fault %.2fs long" % (name, total, fault_end - fault_start)]
    for r in readers:
        resume = r.first_after(fault_end)
        caught = r.caught_up_after(fault_end, pub) if pub else None
        lines.append("[chaos]   %-10s lost %4d  dup %3d  first delivery %s  caught up %s  dropped %s%s" % (
            r.label, r.lost(total), len(r.ns()) - len(set(r.ns())),
            "%.3fs" % resume if resume is not None else "never",
            "%.3fs" % caught if caught is not None else "-", r.dropped or "no",
            "  gaps %r" % r.gaps if r.gaps else ""))
    for label, w in watches:
        lines.append("[chaos]   /readyz %s: %s" % (label, w.describe(fault_start)))
    if extra:
        lines.append("[chaos]   " + extra)
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# Network namespaces


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (shlex.join(args), r.returncode, r.stderr.strip()))
    return r


def netns_available():
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables"):
        if subprocess.run(["sh", "-c", "command -v %s" % tool], capture_output=True).returncode:
            return "%s not installed" % tool
    return None


class NetTopology:
    """Three 'hosts' in network namespaces on a bridge (redis, gw1, gw2), plus a veth
    from this (root) namespace into the bridge, so the test's clients and publisher
    reach every host while partitions stay inside the namespaces. Names and the subnet
    are derived from our PID, so two runs (or other engineers' namespaces) never meet.
    teardown() removes everything and is safe to call twice or after a failed setup."""

    HOSTS = ("redis", "gw1", "gw2")

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.prefix = "wsgc%s" % tag
        self.sw = self.prefix + "sw"
        self.ns = {h: "%s%s" % (self.prefix, h) for h in self.HOSTS}
        third = 100 + os.getpid() % 150
        self.subnet = "10.231.%d" % third
        self.ip = {"redis": self.subnet + ".10", "gw1": self.subnet + ".11",
                   "gw2": self.subnet + ".12", "host": self.subnet + ".1"}
        self.host_if = self.prefix + "h"
        self.made = []

    def setup(self):
        try:
            sh("ip", "netns", "add", self.sw)
            self.made.append(("ns", self.sw))
            self.nx(self.sw, "ip", "link", "add", "br0", "type", "bridge")
            self.nx(self.sw, "ip", "link", "set", "br0", "up")
            for i, h in enumerate(self.HOSTS):
                ns = self.ns[h]
                sh("ip", "netns", "add", ns)
                self.made.append(("ns", ns))
                sh("ip", "link", "add", "v%d" % i, "netns", ns, "type", "veth", "peer", "name",
                   "p%d" % i, "netns", self.sw)
                self.nx(self.sw, "ip", "link", "set", "p%d" % i, "master", "br0", "up")
                self.nx(ns, "ip", "link", "set", "lo", "up")
                self.nx(ns, "ip", "addr", "add", self.ip[h] + "/24", "dev", "v%d" % i)
                self.nx(ns, "ip", "link", "set", "v%d" % i, "up")
            sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "ph", "netns", self.sw)
            self.made.append(("link", self.host_if))
            self.nx(self.sw, "ip", "link", "set", "ph", "master", "br0", "up")
            sh("ip", "addr", "add", self.ip["host"] + "/24", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
        except Exception:
            self.teardown()
            raise
        return self

    def nx(self, ns, *args, check=True):
        return sh("ip", "netns", "exec", ns, *args, check=check)

    def wrap(self, host):
        return ["ip", "netns", "exec", self.ns[host]]

    def partition(self, host):
        """Silently drops everything between host and the redis host, both ways, inside
        host's namespace (a black hole: no RST, connections just stop)."""
        for chain, flag in (("OUTPUT", "-d"), ("INPUT", "-s")):
            self.nx(self.ns[host], "iptables", "-A", chain, flag, self.ip["redis"], "-j", "DROP")

    def heal(self, host):
        for chain, flag in (("OUTPUT", "-d"), ("INPUT", "-s")):
            self.nx(self.ns[host], "iptables", "-D", chain, flag, self.ip["redis"], "-j", "DROP",
                    check=False)

    def teardown(self):
        # Deleting a namespace removes its veths, addresses and iptables rules with it;
        # the root-side veth goes with its peer in the switch namespace.
        for kind, name in reversed(self.made):
            if kind == "ns":
                sh("ip", "netns", "del", name, check=False)
            else:
                sh("ip", "link", "del", name, check=False)
        self.made = []

    def leftovers(self):
        names = sh("ip", "netns", "list").stdout
        links = sh("ip", "-o", "link").stdout
        return [n for n in list(self.ns.values()) + [self.sw] if n in names] + \
            ([self.host_if] if self.host_if + "@" in links or self.host_if + ":" in links else [])


class NsRedisServer(RedisServer):
    """redis-server inside a namespace, bound to that host's address."""

    def __init__(self, topo, host="redis"):
        self.topo, self.host_name, self.host = topo, host, topo.ip[host]
        super().__init__(port=6379, start=True)

    def _spawn(self):
        cmd = self.topo.wrap(self.host_name) + [
            self.binary, "--port", str(self.port), "--bind", self.host, "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--protected-mode", "no"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ping(self, timeout):
        def pong():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s" % self.proc.returncode)
            with self.client(timeout=1) as c:
                return c.command("PING") == "PONG"
        wait_until(pong, timeout, what="redis in %s answering PING" % self.host_name)

    def client(self, timeout=5.0):
        return RedisClient(self.port, host=self.host, timeout=timeout)


class NsGateway(Gateway):
    """A node inside a namespace: `ip netns exec` execs, so the PID is the node's own and
    signals reach it. It listens on its host's address, where the clients reach it."""

    def __init__(self, topo, host, redis, extra_args=(), name=None):
        self.topo, self.host_name, self.host = topo, host, topo.ip[host]
        self.redis_host = redis.host
        super().__init__(redis.port, extra_args=extra_args, start=False, name=name or host,
                         wrapper="")
        self.wrapper = topo.wrap(host)
        self.scale = 1.0  # the wrapper here costs nothing, unlike valgrind

    def command_line(self):
        cmd = super().command_line()
        cmd[cmd.index("--listen") + 1] = "%s:%d" % (self.host, self.port)
        cmd[cmd.index("--redis-url") + 1] = "redis://%s:%d" % (self.redis_host, self.redis_port)
        return cmd

    def http_get(self, path, timeout=None, headers=None):
        from wsgate_harness import http_get
        return http_get(self.port, path, timeout=self.t(5) if timeout is None else timeout,
                        headers=headers, host=self.host)

    def readyz(self, timeout=None):
        return http_status_host(self.host, self.port, "/readyz", 2.0 if timeout is None else timeout)


def http_status_host(host, port, path, timeout):
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class ChaosCase(GatewayTestCase):
    """Runs one fault against two nodes with two reading clients each while a backend
    publishes at a steady rate, and checks the exact sequence every client ends with."""

    RATE = 200

    def node_args(self):
        return NO_RATE_LIMIT + DEFAULT_LINK_ARGS

    def start_readers(self, gws, ch, per_node=2, host_of=None):
        readers = []
        for gi, g in enumerate(gws):
            for k in range(per_node):
                host = host_of(g) if host_of else "127.0.0.1"
                c = WSClient(g.port, host=host, timeout=10)
                self.addCleanup(c.abort)
                readers.append(Reader(c, ch, "%s/c%d" % (g.name, k)).subscribe())
        for r in readers:
            r.start()
            self.addCleanup(r.stop.set)
        return readers

    def watch(self, gws):
        ws = []
        for g in gws:
            w = ReadyzWatch(g)
            w.start()
            self.addCleanup(w.stop.set)
            ws.append((g.name, w))
        return ws

    def finish(self, pub, readers, total, timeout=20):
        pub.join(T(60))
        self.assertFalse(pub.is_alive(), "the publisher must finish within its bound")
        self.assertEqual(pub.published(), total, "the publisher must publish every n")
        deadline = time.monotonic() + T(timeout)
        while time.monotonic() < deadline and any(
                r.last_n() < total and r.dropped is None for r in readers):
            time.sleep(0.05)
        time.sleep(0.3)  # duplicates after the last one would show here
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(5)

    def assert_sequence(self, r, total):
        ns = r.ns()
        missing = sorted(set(range(1, total + 1)) - set(ns))
        self.assertEqual(ns, list(range(1, total + 1)),
                         "%s: %d messages, %d lost (first %r), %d duplicates, first disorder at %r"
                         % (r.label, len(ns), len(missing), missing[:10], len(ns) - len(set(ns)),
                            next((i for i in range(1, len(ns)) if ns[i] <= ns[i - 1]), None)))

    def assert_offsets_one_epoch(self, r):
        self.assertEqual({g[3] for g in r.got}.__len__(), 1, "%s: one epoch" % r.label)
        self.assertEqual([g[2] for g in r.got], [g[1] for g in r.got],
                         "%s: offset equals n in one epoch" % r.label)

    def assert_resume(self, readers, fault_end, pub, bound=3.0):
        for r in readers:
            resume = r.caught_up_after(fault_end, pub)
            self.assertIsNotNone(resume, "%s: nothing published after the fault reached it" % r.label)
            self.assertLess(resume, bound, "%s: a message published after the fault reached it only "
                            "%.2fs after the fault ended" % (r.label, resume))

    def assert_not_dropped(self, readers):
        for r in readers:
            self.assertIsNone(r.dropped, "%s was dropped" % r.label)

    def assert_readyz(self, label, w, fault_start, fault_end, during=True):
        if during:
            seen = w.statuses_between(fault_start, fault_end + 0.5)
            self.assertIn(503, seen, "/readyz of %s during the fault: %s"
                          % (label, w.describe(fault_start)))
        wait_until(lambda: w.status_at_end() == 200, T(5),
                   what="/readyz of %s back to 200 after the fault" % label)
