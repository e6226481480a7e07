"""The processes a test starts and stops, each by its own PID: RedisServer (the real
redis-server binary on a free port), Gateway (one wsgate node: binary from $WSGATE_BIN, optional
$WSGATE_WRAPPER prefix), run_wsgate for one-shot runs, the HTTP probes and /metrics parsing,
and GatewayTestCase, the unittest.TestCase that stops them and prints their log tails when a
test fails. $WSGATE_BIN is read only when a Gateway is created."""

import http.client
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from wsgate_base import SCALE, T, free_port, wait_until  # noqa: F401
from wsgate_redis import RedisClient, RedisError  # noqa: F401
from wsgate_ws import WSClient  # noqa: F401


def wsgate_bin():
    path = os.environ.get("WSGATE_BIN")
    if not path:
        raise unittest.SkipTest("WSGATE_BIN is not set")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError("WSGATE_BIN=%r is not an executable file" % path)
    return path
# Flags that lift the per-client rate limit, for tests that send bursts on purpose.
NO_RATE_LIMIT = ["--client-rate", "100000", "--client-burst", "100000"]
def _tail(path, nbytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
def _stop_process(proc, sig, timeout):
    """Sends sig to proc (by PID) and waits up to timeout; SIGKILLs on timeout.
    Returns (exit_code, timed_out)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(timeout=30), True
class RedisServer:
    """redis-server as a child process on 127.0.0.1, no persistence, own temp dir."""

    def __init__(self, port=None, start=True):
        self.binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
        if not self.binary:
            raise unittest.SkipTest("redis-server not found")
        self.fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.dir = tempfile.mkdtemp(prefix="wsgate-redis-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        if start:
            self.start()

    def start(self, timeout=None):
        timeout = T(10) if timeout is None else timeout
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_ping(timeout)
                return self
            except Exception:
                code = self.proc.poll()
                if code is not None and not self.fixed_port and attempt < 2:
                    self.port = free_port()  # lost a race for the port; try another
                    continue
                self.kill()
                raise
        return self

    def _spawn(self):
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", self.dir, "--protected-mode", "no"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ping(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s:\n%s"
                                   % (self.proc.returncode, _tail(self.log_path)))
            try:
                with RedisClient(self.port, timeout=1) as c:
                    if c.command("PING") == "PONG":
                        return
            except (OSError, RedisError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING on port %d" % self.port)
            time.sleep(0.02)

    def client(self, timeout=5.0):
        return RedisClient(self.port, timeout=timeout)

    def command(self, *args, **kw):
        with self.client() as c:
            return c.command(*args, **kw)

    def publish(self, channel, payload):
        return self.command("PUBLISH", channel, payload)

    def numsub(self, channel):
        with self.client() as c:
            return c.numsub(channel)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, timeout)
            self._log.close()

    def kill(self):
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGKILL, 10)
            self._log.close()

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, timeout=None):
        """Stops (if running) and starts again on the same port."""
        if self.running:
            self.stop()
        self.fixed_port = True
        deadline = time.monotonic() + T(10)
        while True:  # the port may linger briefly after a kill
            try:
                return self.start(timeout)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
# --------------------------------------------------------------------------------------
# Gateway


def http_get(port, path, timeout=5.0, headers=None, host="127.0.0.1"):
    """GET http://host:port/path -> (status, headers {lower-case name: value}, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()
def http_status(port, path, timeout=2.0):
    """Status of GET path, or None when the connection fails."""
    try:
        return http_get(port, path, timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return None
# What the development setting grants: every channel, to anyone.
DEV_ACCESS_ARGS = ["--anonymous-subscribe", "*", "--anonymous-publish", "*"]
def run_wsgate(args, env=None, timeout=10, listen=False, dev_access=False):
    """Runs wsgate to completion, for what happens at startup (--help, refused
    configurations). listen: on a free loopback port; dev_access: with the harness's
    development access, so that only the given flags can stop the node. Returns the
    CompletedProcess (bytes output); fails the test when the node does not exit."""
    cmd = [wsgate_bin()]
    if listen:
        cmd += ["--listen", "127.0.0.1:%d" % free_port()]
    if dev_access:
        cmd += DEV_ACCESS_ARGS
    e = dict(os.environ)
    e.update(env or {})
    try:
        return subprocess.run(cmd + list(args), capture_output=True, env=e, timeout=T(timeout),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("%r did not exit within %ss" % (args, timeout))
AUTH_FLAG_PREFIXES = ("--jwt-", "--anonymous-")
AUTH_ENV_PREFIXES = ("WSGATE_JWT_", "WSGATE_ANONYMOUS_")
class Gateway:
    """One wsgate node on a free port. stderr+stdout are captured to a log file."""

    def __init__(self, redis_port=None, extra_args=(), env=None, wrapper=None, start=True,
                 name="gw", dev_access=None):
        self.binary = wsgate_bin()
        self.redis_port = redis_port
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        # A node refuses to start without keys or anonymous rights. Tests that are
        # not about access control get the explicit development setting; a test
        # that passes any auth flag (or dev_access=False) gets exactly what it asked.
        if dev_access is None:
            dev_access = not any(a.startswith(AUTH_FLAG_PREFIXES) for a in self.extra_args) and \
                not any(k.startswith(AUTH_ENV_PREFIXES) for k in self.env)
        self.dev_access = dev_access
        if wrapper is None:
            wrapper = os.environ.get("WSGATE_WRAPPER", "")
        self.wrapper = shlex.split(wrapper) if isinstance(wrapper, str) else list(wrapper)
        self.scale = 10.0 if self.wrapper else 1.0
        self.scale = max(self.scale, SCALE)
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="wsgate-gw-")
        self.log_path = os.path.join(self.dir, "%s.log" % name)
        self.proc = None
        self.port = None
        self.returncode = None
        if start:
            self.start()

    def t(self, seconds):
        return seconds * self.scale

    def command_line(self):
        hb_timeout = str(int(1000 * (10 if self.wrapper else 1)))
        speed = ["--redis-heartbeat-interval-ms", "200",
                 "--redis-heartbeat-timeout-ms", hb_timeout,
                 "--redis-backoff-max-ms", "500"]
        cmd = list(self.wrapper) + [self.binary, "--listen", "127.0.0.1:%d" % self.port,
                                    "--log-level", "debug"]
        if self.redis_port is not None:
            cmd += redis_url_args(self.redis_port)
        if self.dev_access:
            cmd += DEV_ACCESS_ARGS
        return cmd + speed + self.extra_args

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            env = dict(os.environ)
            env.update(self.env)
            if getattr(self, "_log", None) is not None:
                self._log.close()
            self._log = open(self.log_path, "ab")
            self._log.write(("=== start: %s\n" % shlex.join(self.command_line())).encode())
            self._log.flush()
            self.proc = subprocess.Popen(self.command_line(), stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
            # Wait until it listens (or exits); retry on a lost port race.
            deadline = time.monotonic() + self.t(10)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    self.http_get("/healthz", timeout=2)  # any HTTP answer means it listens
                    return self
                except (OSError, http.client.HTTPException):
                    time.sleep(0.05)
            code = self.proc.poll()
            if code is None:
                self.kill()
                raise RuntimeError("gateway did not listen on port %d within %.0fs:\n%s"
                                   % (self.port, self.t(10), self.log_tail()))
            log = self.log_tail().lower()
            if attempt < 2 and any(w in log for w in ("in use", "bind", "cannot listen")):
                continue
            self.returncode = code
            raise RuntimeError("gateway exited with code %s at startup:\n%s"
                               % (code, self.log_tail()))
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, nbytes=6000):
        return _tail(self.log_path, nbytes)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- HTTP

    def http_get(self, path, timeout=None, headers=None):
        """Returns (status, headers {lower-case name: value}, body bytes)."""
        return http_get(self.port, path, timeout=self.t(5) if timeout is None else timeout,
                        headers=headers)

    def readyz(self, timeout=None):
        """Status of GET /readyz, or None when the connection fails."""
        return http_status(self.port, "/readyz", timeout=self.t(2) if timeout is None else timeout)

    def wait_ready(self, timeout=None):
        timeout = self.t(10) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise AssertionError("gateway exited (%s) before /readyz was 200:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            if self.readyz(timeout=max(0.2, min(2.0, deadline - time.monotonic()))) == 200:
                return self
            if time.monotonic() > deadline:
                raise AssertionError("gateway /readyz not 200 within %.1fs:\n%s"
                                     % (timeout, self.log_tail(3000)))
            time.sleep(0.05)

    def wait_readyz(self, want, timeout):
        """Polls /readyz until its status is in want (a status or a tuple; None=refused)."""
        if not isinstance(want, (tuple, list, set)):
            want = (want,)
        last = []

        def check():
            s = self.readyz(timeout=1.0)
            last[:] = [s]
            return s in want
        try:
            wait_until(check, timeout, what="/readyz in %r" % (want,))
        except AssertionError as e:
            raise AssertionError("%s; last status %r" % (e, last[0] if last else None)) from None

    def metrics_text(self):
        status, headers, body = self.http_get("/metrics")
        if status != 200:
            raise AssertionError("/metrics returned %d" % status)
        return body.decode("utf-8")

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def metric(self, key, default=None):
        return self.metrics().get(key, default)

    # -- process

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def terminate(self, timeout=None, sig=signal.SIGTERM):
        """Sends sig (SIGTERM) and returns the exit code. SIGKILLs and raises on timeout."""
        timeout = self.t(20) if timeout is None else timeout
        code, timed_out = _stop_process(self.proc, sig, timeout)
        self.returncode = code
        if timed_out:
            raise AssertionError("gateway did not exit within %.1fs after signal %d" % (timeout, sig))
        return code

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            raise AssertionError("gateway did not exit within %.1fs" % timeout) from None

    def kill(self):
        if self.proc is not None:
            self.returncode = _stop_process(self.proc, signal.SIGKILL, 10)[0]

    def check_clean_exit(self):
        """For cleanups: a node that died on its own is an error; a running one must
        exit 0 on SIGTERM (with a wrapper such as valgrind, that includes its checks)."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is not None:
            if self.returncode is None:
                self.returncode = code
                raise AssertionError("%s (port %s) died unexpectedly with exit code %s:\n%s"
                                     % (self.name, self.port, code, self.log_tail(3000)))
            return
        code = self.terminate()
        if code != 0:
            raise AssertionError("%s (port %s) exited with code %s after SIGTERM:\n%s"
                                 % (self.name, self.port, code, self.log_tail(3000)))

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            _stop_process(self.proc, signal.SIGKILL, 10)
        try:
            self._log.close()
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
_METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\S+)?$')
def parse_metrics(text):
    """Prometheus text format -> {"name{labels}": float}; labels kept as written."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            raise AssertionError("unparseable metrics line: %r" % line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        out[name + labels] = float(value)
    return out
def metric_meta(text):
    """Returns ({name: help text}, {name: type}) from # HELP / # TYPE lines."""
    helps, types = {}, {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "#" and parts[1] == "HELP":
            helps[parts[2]] = parts[3] if len(parts) > 3 else ""
        elif len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            types[parts[2]] = parts[3]
    return helps, types
def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)
# --------------------------------------------------------------------------------------
# unittest base


def new_redis(**kw):
    """The Redis of start_redis/start_class_redis: with WSGATE_TEST_REDIS_TLS=1 one that
    also listens with TLS, which the gateways then reach by rediss:// (integration_*_tls:
    a suite run again over a TLS link)."""
    if os.environ.get("WSGATE_TEST_REDIS_CLUSTER") == "1":
        from wsgate_cluster import ClusterRedis  # imported here: it imports this module
        return ClusterRedis(**kw)
    if os.environ.get("WSGATE_TEST_REDIS_TLS") == "1":
        from wsgate_tls import TlsRedisServer, shared_pki  # imported here: it imports this module
        return TlsRedisServer(shared_pki(), **kw)
    return RedisServer(**kw)


def redis_url_args(port):
    """--redis-url (and the CA) for the Redis whose plain port is port."""
    cluster = sys.modules.get("wsgate_cluster")
    if cluster and port in cluster.CLUSTER_URLS:
        return ["--redis-url", cluster.CLUSTER_URLS[port]]
    tls = sys.modules.get("wsgate_tls")
    if tls and port in tls.TLS_PORTS:
        tls_port, ca = tls.TLS_PORTS[port]
        return ["--redis-url", "rediss://127.0.0.1:%d" % tls_port, "--redis-tls-ca-file", ca]
    return ["--redis-url", "redis://127.0.0.1:%d" % port]


class GatewayTestCase(unittest.TestCase):
    """Tracks processes so they are always stopped, and prints each gateway's log tail
    (and redis's) when a test fails."""

    _class_gateways = []

    @classmethod
    def start_class_redis(cls, **kw):
        r = new_redis(**kw)
        cls.addClassCleanup(r.cleanup)
        return r

    @classmethod
    def start_class_gateway(cls, redis_port, extra_args=(), **kw):
        g = Gateway(redis_port, extra_args=extra_args, start=False, **kw)
        cls.addClassCleanup(g.cleanup)
        cls.addClassCleanup(g.check_clean_exit)  # runs first (LIFO)
        if "_class_gateways" not in cls.__dict__:
            cls._class_gateways = []
        cls._class_gateways.append(g)
        g.start()
        return g

    def start_redis(self, **kw):
        r = new_redis(**kw)
        self.addCleanup(r.cleanup)
        return r

    def start_gateway(self, redis_port, extra_args=(), ready=True, **kw):
        g = Gateway(redis_port, extra_args=extra_args, start=False, **kw)
        self.addCleanup(g.cleanup)
        self.addCleanup(self._save_log, g)  # runs before g.cleanup (LIFO)
        self.addCleanup(g.check_clean_exit)  # runs before both: proves a clean shutdown
        self._gateways.append(g)
        g.start()
        if ready:
            g.wait_ready()
        return g

    def client(self, port, **kw):
        c = WSClient(port, **kw)
        self.addCleanup(c.abort)
        return c

    def _save_log(self, g):
        try:
            self._saved_logs.append((g.name, g.port, g.log_tail(8000)))
        except Exception:  # noqa: BLE001
            pass

    def run(self, result=None):
        self._gateways = []
        self._saved_logs = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                logs = list(self._saved_logs)
                for g in getattr(type(self), "_class_gateways", []):
                    logs.append((g.name, g.port, g.log_tail(8000)))
                for name, port, text in logs:
                    sys.stderr.write("\n----- log tail of %s (port %s) for %s -----\n%s\n"
                                     "----- end of log tail -----\n" % (name, port, self.id(), text))
