"""A Redis Sentinel group started by the test (redis+sentinel://): one master, one replica
and three Sentinels (`redis-server <conf> --sentinel`), all on 127.0.0.1 and free ports,
with short down-after-milliseconds and failover-timeout so a failover takes seconds.
Every process is its own RedisServer (stopped by its PID); the group only starts them in
order and waits until the Sentinels know the replica and each other."""

import os
import socket
import ssl
import subprocess
import threading
import time

from wsgate_base import T, wait_until
from wsgate_proc import RedisServer
from wsgate_redis import RedisClient, RedisError


class ReplicaServer(RedisServer):
    """redis-server started as a replica of 127.0.0.1:master_port."""

    def __init__(self, master_port, **kw):
        self.master_port = master_port
        super().__init__(**kw)

    def _spawn(self):
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", self.dir, "--protected-mode", "no",
               "--replicaof", "127.0.0.1", str(self.master_port)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)


class SentinelServer(RedisServer):
    """One Sentinel monitoring `name` at 127.0.0.1:master_port with quorum 2. Its config
    file lives in its own directory (Sentinel rewrites it)."""

    def __init__(self, master_port, name, down_after_ms, failover_timeout_ms, password=None):
        self.master_port, self.name = master_port, name
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.password = password
        super().__init__()

    def _spawn(self):
        conf = os.path.join(self.dir, "sentinel.conf")
        lines = ["bind 127.0.0.1", "protected-mode no", "dir %s" % self.dir,
                 "sentinel monitor %s 127.0.0.1 %d 2" % (self.name, self.master_port),
                 "sentinel down-after-milliseconds %s %d" % (self.name, self.down_after_ms),
                 "sentinel failover-timeout %s %d" % (self.name, self.failover_timeout_ms),
                 "sentinel parallel-syncs %s 1" % self.name]
        if self.password:
            lines.append("requirepass %s" % self.password)
            lines.append("sentinel sentinel-pass %s" % self.password)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        cmd = [self.binary, conf, "--sentinel", "--port", str(self.port)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def client(self, timeout=5.0):
        c = RedisClient(self.port, timeout=timeout)
        if self.password:
            c.command("AUTH", self.password)
        return c


def _pairs(flat):
    return {flat[i].decode() if isinstance(flat[i], bytes) else flat[i]:
            flat[i + 1].decode() if isinstance(flat[i + 1], bytes) else flat[i + 1]
            for i in range(0, len(flat) - 1, 2)}


class SentinelGroup:
    """1 master + 1 replica + n Sentinels. servers maps a port to its RedisServer, so the
    test can find (and kill) whichever one the Sentinels call the master now."""

    def __init__(self, name="mymaster", down_after_ms=1000, failover_timeout_ms=3000, n=3,
                 sentinel_password=None):
        self.name, self.down_after_ms, self.failover_timeout_ms = name, down_after_ms, failover_timeout_ms
        self.sentinels = []
        self.master = RedisServer()
        self.replica = ReplicaServer(self.master.port)
        self.servers = {self.master.port: self.master, self.replica.port: self.replica}
        try:
            wait_until(lambda: b"master_link_status:up" in self.replica.command("INFO", "replication"),
                       T(10), what="the replica in sync")
            for _ in range(n):
                self.sentinels.append(SentinelServer(self.master.port, name, down_after_ms,
                                                     failover_timeout_ms, sentinel_password))
            wait_until(self.settled, T(30), what="Sentinels that know the replica and each other")
        except Exception:
            self.cleanup()
            raise

    def settled(self):
        for s in self.sentinels:
            with s.client(timeout=2) as c:
                m = _pairs(c.command("SENTINEL", "MASTER", self.name))
            if int(m.get("num-slaves", 0)) < 1 or int(m.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
        return True

    def url(self, scheme="redis+sentinel", userinfo=""):
        return "%s://%s%s/%s" % (scheme, userinfo, ",".join("127.0.0.1:%d" % s.port for s in self.sentinels),
                                 self.name)

    def master_port(self):
        """The master's port as the first Sentinel that answers names it."""
        for s in self.sentinels:
            if not s.running:
                continue
            try:
                with s.client(timeout=2) as c:
                    r = c.command("SENTINEL", "get-master-addr-by-name", self.name)
                return int(r[1])
            except (OSError, RedisError, TimeoutError):
                continue
        raise RuntimeError("no Sentinel answered")

    def current_master(self):
        return self.servers[self.master_port()]

    def client(self, timeout=5.0):
        """A client of the master the Sentinels name now: the backend's view, for
        Publisher (which asks again after every failure)."""
        return RedisClient(self.master_port(), timeout=timeout)

    def wait_switch(self, old_port, timeout):
        """Waits until the Sentinels name another master than old_port; returns the time
        (monotonic) it was first seen."""
        wait_until(lambda: self.master_port() != old_port, timeout, what="the Sentinels switching the master")
        return time.monotonic()

    def cleanup(self):
        for s in self.sentinels:
            s.cleanup()
        self.replica.cleanup()
        self.master.cleanup()


class MasterWatch(threading.Thread):
    """Asks the Sentinels every `every` seconds which master they name, as a backend's
    Sentinel-aware client follows +switch-master; port is the latest answer and
    switches the (monotonic time, old port, new port) of every change."""

    def __init__(self, group, every=0.02, limit=120):
        super().__init__(daemon=True)
        self.group, self.every, self.limit = group, every, limit
        self.port = group.master_port()
        self.switches = []
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + T(self.limit)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                p = self.group.master_port()
            except RuntimeError:
                p = self.port
            if p != self.port:
                self.switches.append((time.monotonic(), self.port, p))
                self.port = p
            time.sleep(self.every)


class _FollowingClient:
    """A RedisClient of one master that refuses further commands once the watch names
    another: the Publisher then retries the same n on a client of the new master."""

    def __init__(self, watch, timeout):
        self.watch, self.port = watch, watch.port
        self.rc = RedisClient(self.port, timeout=timeout)

    def command(self, *args, **kw):
        if self.watch.port != self.port:
            raise ConnectionError("the Sentinels moved the master from port %d" % self.port)
        return self.rc.command(*args, **kw)

    def close(self):
        self.rc.close()


class FollowingBackend:
    """What Publisher needs of `redis` (client()), for a backend that follows the master
    the Sentinels name."""

    def __init__(self, watch):
        self.watch = watch

    def client(self, timeout=5.0):
        return _FollowingClient(self.watch, timeout)


class FakeSentinel(threading.Thread):
    """A scripted Sentinel on a free port: answers SENTINEL get-master-addr-by-name with
    whatever `answer` holds now ((host, port), or None for "no such master"), accepts
    SUBSCRIBE but never pushes (a lost +switch-master), and with `password` refuses
    everything but a matching AUTH; with pki (wsgate_tls.Pki) it speaks TLS with pki's
    "server" certificate. Counts the questions it was asked. Bounded: serves until stop is
    set or `limit` seconds passed."""

    def __init__(self, answer, password=None, limit=120, pki=None):
        super().__init__(daemon=True)
        self.answer, self.password, self.limit = answer, password, limit
        self.tls = None
        if pki is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(pki.path("server.crt"), pki.path("server.key"))
        self.asked = 0
        self.auth_refused = 0
        self.silent = False  # True: the question gets no answer at all (a wedged Sentinel)
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.start()

    @staticmethod
    def _bulk(s):
        b = s.encode() if isinstance(s, str) else s
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _reply(self, argv, state):
        verb = argv[0].upper() if argv else b""
        if verb == b"AUTH":
            if self.password is not None and argv[-1].decode() == self.password:
                state["authed"] = True
                return b"+OK\r\n"
            self.auth_refused += 1
            return b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        if self.password is not None and not state.get("authed"):
            self.auth_refused += 1
            return b"-NOAUTH Authentication required.\r\n"
        if verb == b"SENTINEL" and len(argv) == 3 and argv[1].lower() == b"get-master-addr-by-name":
            self.asked += 1
            if self.silent:
                return b""
            a = self.answer
            if a is None:
                return b"*-1\r\n"
            return b"*2\r\n" + self._bulk(a[0]) + self._bulk(str(a[1]))
        if verb == b"SUBSCRIBE":
            return b"".join(b"*3\r\n" + self._bulk("subscribe") + self._bulk(ch) + b":%d\r\n" % (i + 1)
                            for i, ch in enumerate(argv[1:]))
        if verb == b"PING":
            return b"+PONG\r\n"
        return b"-ERR unknown command\r\n"

    def _serve(self, conn):
        buf, state = b"", {}
        if self.tls is not None:
            conn.settimeout(5)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                return
        conn.settimeout(0.2)
        deadline = time.monotonic() + self.limit
        with conn:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while True:
                    argv, rest = _parse_command(buf)
                    if argv is None:
                        break
                    buf = rest
                    try:
                        conn.sendall(self._reply(argv, state))
                    except OSError:
                        return

    def run(self):
        deadline = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.sock.close()


def _parse_command(buf):
    """One RESP array of bulk strings from buf: (argv, rest), or (None, buf) if incomplete."""
    if not buf.startswith(b"*"):
        return None, buf
    end = buf.find(b"\r\n")
    if end < 0:
        return None, buf
    n, pos, argv = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None, buf
        ln = int(buf[pos + 1:end])
        if len(buf) < end + 2 + ln + 2:
            return None, buf
        argv.append(buf[end + 2:end + 2 + ln])
        pos = end + 2 + ln + 2
    return argv, buf[pos:]
