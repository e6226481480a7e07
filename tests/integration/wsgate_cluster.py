"""A real Redis Cluster for the integration tests (issue 19): six redis-server processes
(3 masters + 3 replicas by default) on free loopback ports, joined by
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`.

- ClusterNode: one cluster-enabled redis-server (own temp dir, nodes.conf there), which can
  be SIGKILLed and restarted on the same ports (it rejoins from its nodes.conf).
- RedisCluster: the whole cluster; waits for cluster_state:ok, maps slots to masters, routes
  a command by key (following MOVED), SIGKILLs a master and waits for its replica to take
  over, runs CLUSTER FAILOVER on a replica, migrates one slot by hand (SETSLOT IMPORTING /
  MIGRATING, MIGRATE, SETSLOT NODE) and stops every process it started, by PID.
- ClusterPublisher: a backend thread publishing through FCALL wsgate_publish with a
  cluster-aware client (MOVED and ASK followed), recording each acked offset.

A node's cluster bus listens on its port + 10000, so both ports are picked free. Settings for
tests: a short cluster-node-timeout, cluster-require-full-coverage no and
cluster-allow-pubsubshard-when-down yes (the settings docs/DEPLOYMENT.md recommends), and
cluster-replica-validity-factor 0 so that a replica may always be promoted (with a short
node timeout, a replica that merely lagged would otherwise refuse to stand).
The same over TLS (rediss+cluster://) is in wsgate_cluster_tls.py. Every wait has a deadline; standard library only.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from wsgate_harness import RedisClient, RedisError, T, wait_until

SLOTS = 16384


def free_cluster_port():
    """A port p on 127.0.0.1 such that p and p + 10000 (its cluster bus) were both free a
    moment ago."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair (p, p+10000) found")


def _binary(env, name):
    b = os.environ.get(env)
    if b:
        return b
    server = os.environ.get("REDIS_SERVER")
    if server and name != "redis-server":
        sibling = os.path.join(os.path.dirname(server), name)
        if os.access(sibling, os.X_OK):
            return sibling
    found = shutil.which(name)
    if not found:
        raise unittest.SkipTest("%s not found" % name)
    return found


def parse_info(text):
    out = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


class ClusterNode:
    """One cluster-enabled redis-server on 127.0.0.1, no persistence, own temp dir."""

    # Where it listens and what it runs under: the chaos suite's partition case runs the
    # nodes inside a network namespace (a host address and an `ip netns exec` wrapper).
    host = "127.0.0.1"
    wrapper = ()

    def __init__(self, node_timeout_ms=1000, extra_args=(), password=None):
        self.binary = _binary("REDIS_SERVER", "redis-server")
        self.port = free_cluster_port()
        self.password = password  # requirepass: every client() AUTHs with it
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="wsgate-cluster-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self._log = None

    def __repr__(self):
        return "ClusterNode(%d)" % self.port

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self, timeout=None):
        cmd = list(self.wrapper) + [self.binary, "--port", str(self.port), "--bind", self.host,
               "--protected-mode", "no", "--daemonize", "no", "--dir", self.dir,
               "--save", "", "--appendonly", "no",
               "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(self.node_timeout_ms),
               "--cluster-require-full-coverage", "no",
               "--cluster-allow-pubsubshard-when-down", "yes",
               "--cluster-replica-validity-factor", "0"] + self.extra_args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + (T(10) if timeout is None else timeout)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("cluster node %d exited with %s:\n%s"
                                   % (self.port, self.proc.returncode, self.log_tail()))
            try:
                if self.command("PING", timeout=1) == "PONG":
                    return self
            except (OSError, RedisError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("cluster node did not answer PING on port %d" % self.port)
            time.sleep(0.02)

    def log_tail(self, nbytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return "<%s>" % e

    def client(self, timeout=5.0):
        c = RedisClient(self.port, host=self.host, timeout=timeout)
        if self.password:
            try:
                c.command("AUTH", self.password)
            except BaseException:
                c.close()
                raise
        return c

    def command(self, *args, timeout=5.0, raise_errors=True):
        with self.client(timeout=timeout) as c:
            return c.command(*args, raise_errors=raise_errors)

    def info(self, section):
        return parse_info(self.command("INFO", section))

    def info_cluster(self):
        return parse_info(self.command("CLUSTER", "INFO"))

    def node_id(self):
        return self.command("CLUSTER", "MYID").decode()

    def role(self):
        return self.command("ROLE")[0].decode()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _end(self, sig, timeout):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def kill(self):
        """SIGKILL, by PID."""
        self._end(signal.SIGKILL, 10)

    def stop(self):
        self._end(signal.SIGTERM, 10)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """`masters` masters with `replicas` replicas each, created with redis-cli --cluster."""

    def __init__(self, masters=3, replicas=1, node_timeout_ms=1000, start=True, node_class=None):
        self.n_masters, self.n_replicas = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        self.node_class = node_class or ClusterNode
        self.cli = _binary("REDIS_CLI", "redis-cli")
        self.nodes = []
        if start:
            self.start()

    # ---- life cycle

    def start(self, timeout=None):
        try:
            for _ in range(self.n_masters * (1 + self.n_replicas)):
                n = self.new_node()
                self.nodes.append(n)
                n.start()
            r = subprocess.run(self.create_command(), capture_output=True, timeout=T(60), stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed (%d):\n%s%s"
                                   % (r.returncode, r.stdout.decode(), r.stderr.decode()))
            self.wait_ok(T(30) if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def new_node(self):
        """One more (not yet started) node: of node_class (ClusterNode unless given);
        TlsRedisCluster gives TLS ones."""
        return self.node_class(self.node_timeout_ms)

    def create_command(self):
        """The redis-cli --cluster create command line that joins self.nodes."""
        cmd = [self.cli, "--cluster", "create"] + [n.addr for n in self.nodes]
        return cmd + ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"]

    def stop(self):
        """Stops every node this cluster started, by PID, and removes their dirs."""
        for n in self.nodes:
            n.cleanup()

    def running_nodes(self):
        return [n for n in self.nodes if n.running]

    def wait_ok(self, timeout):
        """Until every running node says cluster_state:ok, all of them agree on which node
        serves each slot, every slot is served, and each replica's link is up."""
        def agreed():
            views = set()
            for n in self.running_nodes():
                if n.info_cluster()["cluster_state"] != "ok":
                    return False
                views.add(tuple(sorted(self._slot_view(n))))
                if n.role() == "slave" and n.info("replication").get("master_link_status") != "up":
                    return False
            if len(views) != 1:
                return False
            covered = sum(hi - lo + 1 for lo, hi, _ in next(iter(views)))
            return covered == SLOTS
        wait_until(agreed, timeout, interval=0.1, what="cluster_state:ok on every node")

    @staticmethod
    def _slot_view(node):
        """[(first, last, "host:port" of the master)] as node sees it (CLUSTER SLOTS)."""
        out = []
        for row in node.command("CLUSTER", "SLOTS"):
            out.append((row[0], row[1], "%s:%d" % (row[2][0].decode(), row[2][1])))
        return out

    # ---- topology

    def node_by_port(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(port)

    def _any(self):
        for n in self.running_nodes():
            try:
                n.command("PING", timeout=1)
                return n
            except (OSError, RedisError, TimeoutError):
                continue
        raise RuntimeError("no cluster node answers")

    def masters(self):
        """The running nodes that serve at least one slot, ordered by their first slot."""
        ports = []
        for lo, hi, addr in sorted(self._slot_view(self._any())):
            p = int(addr.rsplit(":", 1)[1])
            if p not in ports:
                ports.append(p)
        return [self.node_by_port(p) for p in ports]

    def replicas_of(self, master):
        # A TLS replica (tls-replication) names its master's TLS port.
        ports = {str(master.port), str(getattr(master, "tls_port", master.port))}
        return [n for n in self.running_nodes()
                if n.role() == "slave" and n.info("replication").get("master_port") in ports]

    def keyslot(self, key):
        return self._any().command("CLUSTER", "KEYSLOT", key)

    def master_of_slot(self, slot):
        for lo, hi, addr in self._slot_view(self._any()):
            if lo <= slot <= hi:
                return self.node_by_port(int(addr.rsplit(":", 1)[1]))
        raise KeyError(slot)

    def master_of_key(self, key):
        return self.master_of_slot(self.keyslot(key))

    def command_for_key(self, key, *args, timeout=5.0, redirects=5):
        """Sends args to key's master, following MOVED (and ASK, with ASKING) like a
        cluster-aware client. Returns the reply; raises the last RedisError."""
        node = self.master_of_key(key)
        asking = False
        for _ in range(redirects + 1):
            with node.client(timeout=timeout) as c:
                if asking:
                    c.command("ASKING")
                r = c.command(*args, raise_errors=False)
            if not isinstance(r, RedisError):
                return r
            words = str(r).split()
            if words and words[0] in ("MOVED", "ASK"):
                node = self.node_by_port(int(words[2].rsplit(":", 1)[1]))
                asking = words[0] == "ASK"
                continue
            raise r
        raise RedisError("too many redirects for key %r" % key)

    # ---- faults and changes

    def kill_master(self, master, timeout=None, during=None, after_kill=None):
        """SIGKILLs master and waits until one of its replicas serves its slots and the
        cluster is ok again; after_kill(replicas), when given, is called right after the
        kill (before any promotion: it can read what the replicas kept), during() at each
        poll of that wait. Returns the promoted node; self.promotion_seen is the monotonic
        time at which the poll (every 50 ms) that first saw it in CLUSTER SLOTS began."""
        replicas = self.replicas_of(master)
        if not replicas:
            raise RuntimeError("%r has no replica to promote" % master)
        first_slot = next(lo for lo, hi, a in self._slot_view(master) if a == master.addr)
        master.kill()
        if after_kill is not None:
            after_kill(replicas)
        timeout = T(30) if timeout is None else timeout

        def promoted():
            if during is not None:
                during()
            t = time.monotonic()
            m = self.master_of_slot(first_slot)
            if m in replicas and m.role() == "master":
                self.promotion_seen = t
                return m
            return None
        node = wait_until(promoted, timeout, interval=0.05, what="a replica of %r promoted" % master)
        self.wait_ok(timeout)
        return node

    def failover(self, replica, timeout=None, mode=None):
        """CLUSTER FAILOVER on replica (a coordinated, lossless switch; mode "TAKEOVER" or
        "FORCE" when its master is gone); waits until it is a master seen by every node."""
        replica.command("CLUSTER", "FAILOVER", *([mode] if mode else []))
        timeout = T(30) if timeout is None else timeout
        wait_until(lambda: replica.role() == "master", timeout, interval=0.05,
                   what="%r to become master" % replica)
        self.wait_ok(timeout)

    def migrate_slot(self, slot, dst, batch=100, timeout=None):
        """Moves one slot to master dst by hand, the way redis-cli --cluster reshard does:
        begin_migration, move_keys, finish_migration. Returns the number of keys moved."""
        src = self.master_of_slot(slot)
        if src is dst:
            return 0
        self.begin_migration(slot, src, dst)
        moved = self.move_keys(slot, src, dst, batch=batch, timeout=timeout)
        self.finish_migration(slot, src, dst, timeout=timeout)
        return moved

    def begin_migration(self, slot, src, dst):
        """SETSLOT IMPORTING on dst, then MIGRATING on src: from here on src answers ASK for
        the slot's keys it no longer has."""
        dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.node_id())
        src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id())

    def move_keys(self, slot, src, dst, batch=100, limit=None, timeout=None):
        """MIGRATEs the slot's keys from src to dst in batches (at most `limit` keys when
        given); returns how many moved."""
        moved = 0
        deadline = time.monotonic() + (T(30) if timeout is None else timeout)
        while time.monotonic() < deadline:
            n = batch if limit is None else min(batch, limit - moved)
            keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, n) if n > 0 else []
            if not keys:
                return moved
            src.command("MIGRATE", dst.host, dst.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        raise AssertionError("slot %d: keys still left to migrate at the deadline" % slot)

    def finish_migration(self, slot, src, dst, timeout=None):
        """SETSLOT NODE dst on dst, src and every other master; waits until all agree."""
        dst_id = dst.node_id()
        for n in [dst, src] + [m for m in self.masters() if m not in (src, dst)]:
            n.command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.wait_ok(T(30) if timeout is None else timeout)


def read_meta(node, key):
    """(offset, epoch) in key's {C}:meta as node holds it, a replica too (READONLY):
    what that node would serve if it were promoted now. (0, "") without meta."""
    with node.client(timeout=5) as c:
        c.command("READONLY")
        r = c.command("HMGET", "{%s}:meta" % key, "offset", "epoch")
    return int(r[0] or 0), (r[1] or b"").decode()


# ---- a backend publishing through a cluster-aware client


class ClusterPublisher(threading.Thread):
    """A backend publishing {"n": i} for i in 1..count on `key` through FCALL
    wsgate_publish ... shard at `rate` messages/s, as a cluster-aware client: one
    connection per master, the slot's master from CLUSTER SLOTS, MOVED followed (the map
    asked again), ASK followed once (ASKING, then the call on the importing master),
    TRYAGAIN/CLUSTERDOWN/a lost connection retried with the same n after 20 ms. Records
    (send time, n, offset, epoch) per acked call and how many answers were ASK / MOVED.
    Bounded by count and by `limit` seconds."""

    def __init__(self, cluster, key, count, rate, limit=60):
        super().__init__(daemon=True)
        self.cluster, self.key, self.count, self.rate, self.limit = cluster, key, count, rate, limit
        self.acked = []  # (monotonic send time, n, offset, epoch)
        self.errors = []  # (monotonic time, n, repr of the error)
        self.asks = self.moves = 0
        self.stop = threading.Event()
        self._conns = {}

    def _conn(self, port):
        if port not in self._conns:
            self._conns[port] = RedisClient(port, timeout=5)
        return self._conns[port]

    def _drop(self, port):
        c = self._conns.pop(port, None)
        if c is not None:
            c.close()

    def _call(self, payload):
        """One publish, redirections followed; returns the reply or raises."""
        from wsgate_pub import fn_keys
        args = ("FCALL", "wsgate_publish", "2", *fn_keys(self.key), self.key, payload, "", "", "shard")
        port, asking = self.port, False
        for _ in range(6):
            try:
                c = self._conn(port)
                if asking:
                    c.command("ASKING")
                r = c.command(*args, raise_errors=False)
            except (OSError, ConnectionError, TimeoutError):
                self._drop(port)
                raise
            if not isinstance(r, RedisError):
                return r
            words = str(r).split()
            if words and words[0] == "ASK":
                self.asks += 1
                port, asking = int(words[2].rsplit(":", 1)[1]), True
                continue
            if words and words[0] == "MOVED":
                self.moves += 1
                self.port = port = int(words[2].rsplit(":", 1)[1])
                asking = False
                continue
            raise r
        raise RedisError("too many redirects for %r" % self.key)

    def run(self):
        self.port = self.cluster.master_of_key(self.key).port
        i = 1
        start = time.monotonic()
        deadline = start + T(self.limit)
        try:
            while i <= self.count and not self.stop.is_set() and time.monotonic() < deadline:
                due = start + (i - 1) / self.rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                sent = time.monotonic()
                try:
                    r = self._call('{"n": %d}' % i)
                    self.acked.append((sent, i, r[0], r[1].decode()))
                    i += 1
                except (OSError, ConnectionError, TimeoutError, RedisError) as e:
                    self.errors.append((time.monotonic(), i, repr(e)[:120]))
                    time.sleep(0.02)
                    try:
                        self.port = self.cluster.master_of_key(self.key).port
                    except (OSError, RedisError, RuntimeError, TimeoutError, KeyError):
                        pass
        finally:
            for port in list(self._conns):
                self._drop(port)


# ---- the protocol suite against a cluster (WSGATE_TEST_REDIS_CLUSTER=1)

# The port a ClusterRedis answers to (its first master's) -> the gateway's --redis-url.
CLUSTER_URLS = {}


class ClusterRedis:
    """What the suites use of a RedisServer (port, publish, numsub, command, cleanup),
    backed by a 3-master cluster: start_redis gives one when WSGATE_TEST_REDIS_CLUSTER=1,
    and a Gateway given its port connects with redis+cluster:// (integration_protocol_cluster:
    the protocol suite again, unchanged, with every gateway in cluster mode). A backend's
    publish is an SPUBLISH on the channel's master, as docs/PROTOCOL.md says for this mode."""

    def __init__(self, port=None, start=True, replicas=None):
        # WSGATE_TEST_CLUSTER_REPLICAS=1: a 6-node cluster (replicas receive every SPUBLISH
        # too, so a receiver count that included them would be wrong). replicas given
        # (test_presence's class cluster) overrides it.
        if replicas is None:
            replicas = int(os.environ.get("WSGATE_TEST_CLUSTER_REPLICAS", "0"))
        self.cluster = RedisCluster(masters=3, replicas=replicas, start=start)
        masters = self.cluster.masters()
        self.port = masters[0].port
        CLUSTER_URLS[self.port] = "redis+cluster://" + ",".join(m.addr for m in masters)

    def command(self, *args, **kw):
        return self.cluster.command_for_key(str(args[1]), *args, **kw)

    def publish(self, channel, payload):
        return self.cluster.command_for_key(channel, "SPUBLISH", channel, payload)

    def numsub(self, channel):
        return int(self.cluster.command_for_key(channel, "PUBSUB", "SHARDNUMSUB", channel)[1])

    def flushall(self):
        """FLUSHALL on every master (the replicas follow; the function library stays): a
        class that shares one cluster starts each test on empty data."""
        for m in self.cluster.masters():
            m.command("FLUSHALL", "SYNC")

    def stop(self):
        """Stops every node (the whole Redis side is gone), by PID."""
        for n in self.cluster.nodes:
            n.stop()

    def cleanup(self):
        CLUSTER_URLS.pop(self.port, None)
        self.cluster.stop()
