"""Reusable pieces for the wsgate integration tests (Python 3.11, standard library only).

- free_port(): a TCP port on 127.0.0.1 that was free a moment ago.
- RedisServer: the real redis-server binary as a child process on a free port.
- RedisClient: a tiny blocking RESP client over a raw socket.
- Gateway: one wsgate node (binary from $WSGATE_BIN, optional $WSGATE_WRAPPER prefix).
- WSClient: an RFC 6455 client written from scratch over a blocking socket.
- GatewayTestCase: unittest.TestCase that prints the gateways' log tails when a test fails.

Every wait has a deadline, so no test can hang; every process is stopped by its own PID.
Timeouts are multiplied by SCALE (10 when $WSGATE_WRAPPER is set, e.g. valgrind).
The deployment tests (tests/deploy) use WSClient too, so importing this module must stay
free of side effects: $WSGATE_BIN is read only when a Gateway is created.
"""

import base64
import collections
import hashlib
import http.client
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def _env_scale():
    if os.environ.get("WSGATE_TIMEOUT_SCALE"):
        return float(os.environ["WSGATE_TIMEOUT_SCALE"])
    return 10.0 if os.environ.get("WSGATE_WRAPPER") else 1.0


SCALE = _env_scale()


def T(seconds):
    """A timeout scaled for slow runs (valgrind wrapper)."""
    return seconds * SCALE


def wsgate_bin():
    path = os.environ.get("WSGATE_BIN")
    if not path:
        raise unittest.SkipTest("WSGATE_BIN is not set")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError("WSGATE_BIN=%r is not an executable file" % path)
    return path


# Flags that lift the per-client rate limit, for tests that send bursts on purpose.
NO_RATE_LIMIT = ["--client-rate", "100000", "--client-burst", "100000"]


def uniq(prefix="c"):
    """A channel name no other test (or earlier run) uses."""
    return "%s:%s" % (prefix, uuid.uuid4().hex[:12])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; returns that value.
    Raises AssertionError with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last_exc = None
        except Exception as e:  # noqa: BLE001 - polled conditions may fail transiently
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


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


# --------------------------------------------------------------------------------------
# Redis


class RedisError(Exception):
    pass


class RedisClient:
    """Minimal blocking RESP2 client. command() sends one command and returns its reply:
    str for simple strings, int, bytes for bulk strings (None for nil), list for arrays.
    A -ERR reply is returned as a RedisError instance (not raised) unless raise_errors."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode("utf-8")
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("redis reply timed out")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("redis reply timed out") from None
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[: n + 2]
        return data

    def read_reply(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._read(deadline)

    def _read(self, deadline):
        line = self._line(deadline)
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n, deadline)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(deadline) for _ in range(n)]
        raise RedisError("bad RESP line %r" % line)

    def command(self, *args, timeout=None, raise_errors=True):
        self.sock.sendall(self.encode(*args))
        r = self.read_reply(timeout)
        if raise_errors and isinstance(r, RedisError):
            raise r
        return r

    def pipeline(self, commands, timeout=None):
        """Sends many commands at once, then reads all replies (in order)."""
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self._read(deadline) for _ in commands]

    def numsub(self, channel):
        r = self.command("PUBSUB", "NUMSUB", channel)
        return int(r[1])


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
            cmd += ["--redis-url", "redis://127.0.0.1:%d" % self.redis_port]
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


# --------------------------------------------------------------------------------------
# WebSocket client


# -- raw upgrades, for admission races

def upgrade_request(host_header, origin=None, path="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host_header, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append("Origin: %s" % origin)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def burst_upgrades(port, sources, per_source, senders, timeout, settle=0.0):
    """Connects per_source sockets from each source address, then writes every upgrade
    request at once from `senders` threads. Returns ({source: upgraded sockets},
    {source: refused count}, undecided count). settle: seconds to wait after connecting,
    so the workers have accepted every connection before the burst."""
    socks = []
    try:
        for src in sources:
            for _ in range(per_source):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(timeout)
                s.bind((src, 0))
                s.connect(("127.0.0.1", port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                socks.append((src, s))
    except OSError:
        for _, s in socks:
            s.close()
        raise
    if settle:
        time.sleep(settle)
    requests = [upgrade_request("127.0.0.1:%d" % port) for _ in socks]
    barrier = threading.Barrier(senders, timeout=timeout)
    errors = []

    def send(part):
        try:
            barrier.wait()
            for i in part:
                socks[i][1].sendall(requests[i])
        except (OSError, threading.BrokenBarrierError) as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(range(k, len(socks), senders),), daemon=True)
               for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if errors or any(t.is_alive() for t in threads):
        for _, s in socks:
            s.close()
        raise AssertionError("sending the upgrade requests failed: %r" % errors[:3])

    sel = selectors.DefaultSelector()
    bufs = {}
    for src, s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, src)
        bufs[s] = b""
    upgraded = {src: [] for src in sources}
    refused = {src: 0 for src in sources}
    deadline = time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s, src = key.fileobj, key.data
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                bufs[s] += chunk
                if b"\r\n\r\n" not in bufs[s]:
                    continue
            sel.unregister(s)
            head = bufs.pop(s)
            if head.startswith(b"HTTP/1.1 101"):
                s.setblocking(True)
                upgraded[src].append(s)
            else:
                refused[src] += 1
                s.close()
    undecided = len(bufs)
    for s in bufs:
        sel.unregister(s)
        s.close()
    sel.close()
    return upgraded, refused, undecided


class HandshakeError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class ConnectionClosed(Exception):
    """A close frame was received (code/reason from it; code None if it had no body)."""

    def __init__(self, code, reason):
        super().__init__("connection closed by server: code=%r reason=%r" % (code, reason))
        self.code = code
        self.reason = reason


class ConnectionLost(Exception):
    """The TCP connection ended (EOF or reset) without a close frame."""


# What a client sees when the node refuses its upgrade: an HTTP answer other than
# 101, or the connection dropped (lws drops refused upgrades without answering).
REFUSED = (HandshakeError, ConnectionLost, ConnectionResetError, BrokenPipeError)


class ProtocolError(Exception):
    pass


class WSClient:
    """RFC 6455 client over a blocking socket.

    Received "message" frames that are read while waiting for something else go to
    self.messages (in order); other JSON frames read that way go to self.inbox.
    """

    def __init__(self, port, path="/ws", host="127.0.0.1", timeout=5.0, rcvbuf=None,
                 auto_pong=True, connect=True, extra_headers=None, source=None, host_header=None):
        self.port = port
        self.path = path
        self.host = host
        self.source = source  # local address to bind before connecting (e.g. "127.0.0.2")
        self.host_header = host_header  # Host header value; default "host:port"
        self.timeout = T(timeout)
        self.rcvbuf = rcvbuf
        self.auto_pong = auto_pong
        self.extra_headers = extra_headers or {}
        self.sock = None
        self.buf = bytearray()
        self.messages = collections.deque()  # {"type":"message",...} objects
        self.inbox = collections.deque()  # other JSON objects read while waiting
        self.raw_texts = collections.deque()  # raw text of message frames, if keep_raw
        self.keep_raw = False
        self.pings_received = 0
        self.pongs_received = 0
        self.close_sent = False
        self.close_code = None
        self.close_reason = None
        self.closed = False
        self.next_id = 1
        self.response_headers = {}
        if connect:
            self.connect()

    # -- connection

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        s.settimeout(self.timeout)
        try:
            if self.source:
                s.bind((self.source, 0))
            s.connect((self.host, self.port))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % self.path,
                 "Host: %s" % (self.host_header or "%s:%d" % (self.host, self.port)),
                 "Upgrade: websocket",
                 "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % key,
                 "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % kv for kv in self.extra_headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise HandshakeError(None, "handshake response too long")
            try:
                self._fill(deadline)
            except (ConnectionLost, TimeoutError) as e:
                self._abort()
                raise HandshakeError(None, "no handshake response: %r (got %r)"
                                     % (e, bytes(self.buf[:200]))) from None
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3})", lines[0])
        if not m:
            self._abort()
            raise HandshakeError(None, "bad status line %r" % lines[0])
        status = int(m.group(1))
        hdrs = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            hdrs[name.strip().lower()] = value.strip()
        self.response_headers = hdrs
        if status != 101:
            self._abort()
            raise HandshakeError(status, "upgrade refused with HTTP %d" % status)
        expect = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != expect:
            self._abort()
            raise HandshakeError(status, "bad Sec-WebSocket-Accept %r (want %r)"
                                 % (hdrs.get("sec-websocket-accept"), expect))
        if hdrs.get("upgrade", "").lower() != "websocket":
            self._abort()
            raise HandshakeError(status, "bad Upgrade header %r" % hdrs.get("upgrade"))
        return self

    def _abort(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.closed = True

    def abort(self, rst=True):
        """Drops the TCP connection without a close frame (RST when rst)."""
        if self.sock is not None and not self.closed:
            if rst:
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                except OSError:
                    pass
            self._abort()

    def close(self, code=1000, reason=b"", timeout=2.0):
        """Clean close: sends a close frame and waits (briefly) for the server's close."""
        if self.closed:
            return
        try:
            if not self.close_sent:
                self.send_close(code, reason)
            deadline = time.monotonic() + T(timeout)
            while not self.closed and time.monotonic() < deadline:
                self._read_frame(deadline)
        except (ConnectionClosed, ConnectionLost, TimeoutError, OSError, ProtocolError):
            pass
        self._abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(timeout=0.5)

    # -- low level I/O

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("websocket receive timed out")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("websocket receive timed out") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed = True
            raise ConnectionLost("connection reset: %r" % e) from None
        if not chunk:
            self.closed = True
            raise ConnectionLost("EOF without close frame")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def send_raw(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    @staticmethod
    def build_frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = mask_key if mask_key is not None else os.urandom(4)
        if n:
            reps = (key * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")
        return head + key + payload

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        self.send_raw(self.build_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, text, mask=True):
        self.send_frame(OP_TEXT, text, mask=mask)

    def send_binary(self, data, mask=True):
        self.send_frame(OP_BINARY, data, mask=mask)

    def send_fragmented(self, payload, chunk_sizes, opcode=OP_TEXT, ping_between=False):
        """Sends payload as several frames: first with opcode, then continuations."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        parts, pos = [], 0
        for size in chunk_sizes:
            parts.append(payload[pos:pos + size])
            pos += size
        if pos < len(payload):
            parts.append(payload[pos:])
        frames = []
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            frames.append(self.build_frame(opcode if i == 0 else OP_CONT, p, fin=last))
            if ping_between and not last:
                frames.append(self.build_frame(OP_PING, b"mid"))
        self.send_raw(b"".join(frames))

    def send_ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_close(self, code=1000, reason=b""):
        if isinstance(reason, str):
            reason = reason.encode()
        body = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(OP_CLOSE, body)
        self.close_sent = True

    def _read_frame(self, deadline):
        """Reads one frame. Returns (opcode, fin, payload). Handles control frames
        by side effect (ping -> pong, close -> ConnectionClosed) and returns them too."""
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin = bool(b0 & 0x80)
        rsv = (b0 >> 4) & 7
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        if masked:
            raise ProtocolError("server frame is masked (RFC 6455 5.1 forbids it)")
        if rsv:
            raise ProtocolError("server frame has RSV bits %d without an extension" % rsv)
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if opcode == OP_PING:
            self.pings_received += 1
            if self.auto_pong and not self.close_sent:
                self.send_frame(OP_PONG, payload)
        elif opcode == OP_PONG:
            self.pongs_received += 1
        elif opcode == OP_CLOSE:
            code, reason = None, ""
            if len(payload) >= 2:
                code = struct.unpack("!H", payload[:2])[0]
                reason = payload[2:].decode("utf-8", "replace")
            self.close_code, self.close_reason = code, reason
            if not self.close_sent:
                try:
                    self.send_close(code if code is not None else 1000)
                except OSError:
                    pass
            self._abort()
            raise ConnectionClosed(code, reason)
        elif opcode not in (OP_TEXT, OP_BINARY, OP_CONT):
            raise ProtocolError("unknown opcode %d" % opcode)
        return opcode, fin, payload

    def recv_frame(self, timeout=None):
        """Returns the next complete data message as (opcode, payload bytes), after
        reassembling fragments. Control frames are handled internally. Raises
        TimeoutError, ConnectionClosed or ConnectionLost."""
        if self.closed:
            raise ConnectionLost("connection already closed (close code %r)" % self.close_code)
        deadline = time.monotonic() + (self.timeout if timeout is None else T(timeout))
        first_op, parts = None, []
        while True:
            op, fin, payload = self._read_frame(deadline)
            if op in (OP_PING, OP_PONG):
                continue
            if first_op is None:
                if op == OP_CONT:
                    raise ProtocolError("continuation frame without a start")
                first_op = op
            elif op != OP_CONT:
                raise ProtocolError("new data frame inside a fragmented message")
            parts.append(payload)
            if fin:
                return first_op, b"".join(parts)

    # -- JSON layer

    def send_json(self, obj):
        self.send_text(json.dumps(obj, separators=(",", ":")))

    def _read_json(self, timeout):
        op, payload = self.recv_frame(timeout)
        if op != OP_TEXT:
            raise ProtocolError("server sent a non-text message (opcode %d)" % op)
        text = payload.decode("utf-8")  # the server must send valid UTF-8
        obj = json.loads(text)
        if self.keep_raw and isinstance(obj, dict) and obj.get("type") == "message":
            self.raw_texts.append(text)
        return obj

    def recv_json(self, timeout=None):
        """The next JSON frame of any type (from self.inbox first, then the socket)."""
        if self.inbox:
            return self.inbox.popleft()
        return self._read_json(timeout)

    def expect_nothing(self, timeout=0.5):
        """Asserts that no JSON frame arrives within timeout (and none is buffered)."""
        if self.inbox:
            raise AssertionError("unexpected buffered frame %r" % (self.inbox[0],))
        try:
            obj = self._read_json(timeout)
        except TimeoutError:
            return
        raise AssertionError("unexpected frame %r" % (obj,))

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def request(self, obj, timeout=None):
        """Sends obj (which must carry an id; one is added if missing) and returns the
        reply with that id. Message frames read meanwhile go to self.messages, other
        frames to self.inbox."""
        obj = dict(obj)
        if "id" not in obj:
            obj["id"] = self.new_id()
        self.send_json(obj)
        return self.wait_reply(obj["id"], timeout)

    def wait_reply(self, rid, timeout=None):
        for i, o in enumerate(self.inbox):
            if isinstance(o, dict) and o.get("id") == rid and o.get("type") != "message":
                del self.inbox[i]
                return o
        deadline = time.monotonic() + (self.timeout if timeout is None else T(timeout))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply with id %r" % (rid,))
            o = self._read_json(remaining / SCALE)
            if isinstance(o, dict) and o.get("type") == "message":
                self.messages.append(o)
            elif isinstance(o, dict) and o.get("id") == rid:
                return o
            else:
                self.inbox.append(o)

    def ping(self, timeout=None):
        """Application-level ping; returns the reply (asserts nothing)."""
        return self.request({"type": "ping"}, timeout)

    def subscribe(self, channel, id=None, timeout=None):
        return self.request({"type": "subscribe", "channel": channel,
                             "id": self.new_id() if id is None else id}, timeout)

    def unsubscribe(self, channel, id=None, timeout=None):
        return self.request({"type": "unsubscribe", "channel": channel,
                             "id": self.new_id() if id is None else id}, timeout)

    def publish(self, channel, data, id=None, timeout=None):
        return self.request({"type": "publish", "channel": channel, "data": data,
                             "id": self.new_id() if id is None else id}, timeout)

    def recv_message(self, timeout=None):
        """The next "message" frame; other frames go to self.inbox."""
        if self.messages:
            return self.messages.popleft()
        deadline = time.monotonic() + (self.timeout if timeout is None else T(timeout))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message frame")
            o = self._read_json(remaining / SCALE)
            if isinstance(o, dict) and o.get("type") == "message":
                return o
            self.inbox.append(o)

    def recv_messages(self, n, timeout=None):
        """Exactly n "message" frames (in arrival order) within timeout (total)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else T(timeout))
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError()
                out.append(self.recv_message(remaining / SCALE))
            except TimeoutError:
                raise TimeoutError("got %d of %d messages" % (len(out), n)) from None
        return out

    def expect_close(self, timeout=None):
        """Reads until the server's close frame; returns (code, reason). Message frames
        read meanwhile go to self.messages, others to self.inbox. Raises ConnectionLost
        if the connection ends without a close frame, TimeoutError on timeout."""
        if self.closed and self.close_code is not None:
            return self.close_code, self.close_reason
        deadline = time.monotonic() + (self.timeout if timeout is None else T(timeout))
        try:
            while True:
                op, fin, payload = self._read_frame(deadline)
                if op == OP_TEXT or (op == OP_CONT and payload):
                    try:
                        o = json.loads(payload)
                    except ValueError:
                        self.inbox.append(payload)
                        continue
                    if isinstance(o, dict) and o.get("type") == "message":
                        self.messages.append(o)
                    else:
                        self.inbox.append(o)
        except ConnectionClosed as e:
            return e.code, e.reason



# --------------------------------------------------------------------------------------
# publishing with history, as a backend does (deploy/redis/wsgate.lua)


def fn_keys(channel):
    """The two keys of pub/sub channel `channel`'s history: {C}:meta and {C}:stream."""
    return "{%s}:meta" % channel, "{%s}:stream" % channel


def fcall_publish(rc, channel, payload, history="", ttl=""):
    """FCALL wsgate_publish on RedisClient rc; returns [offset, epoch, receivers]."""
    return rc.command("FCALL", "wsgate_publish", "2", *fn_keys(channel), channel, payload,
                      history, ttl)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


class Publisher(threading.Thread):
    """A backend publishing {"n": i} for i in 1..count through FCALL wsgate_publish at
    `rate` messages/s. A failed call (Redis killed, stopped, cut off, or without the
    function right after a restart) is retried with the same n, never skipped, so every
    n is published exactly once as far as the publisher can tell. Bounded by count and
    by `limit` seconds."""

    def __init__(self, redis, channel, count, rate, pad=0, limit=60, history=""):
        super().__init__(daemon=True)
        self.redis, self.key, self.count, self.rate = redis, "gw:" + channel, count, rate
        self.pad = "x" * pad
        self.limit, self.history = limit, history
        self.acked = []  # (monotonic time, n, offset, epoch)
        self.errors = []  # (monotonic time, n, repr of the error)
        self.stop = threading.Event()

    def published(self):
        return len(self.acked)

    @property
    def offsets(self):
        return [a[2] for a in self.acked]

    def run(self):
        rc = None
        i = 1
        start = time.monotonic()
        deadline = start + T(self.limit)
        while i <= self.count and not self.stop.is_set() and time.monotonic() < deadline:
            due = start + (i - 1) / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            try:
                if rc is None:
                    # A backend that gives up on a call it cannot judge and sends it
                    # again publishes that n twice if the first call was only held
                    # (a stopped or paused Redis runs it later): wait long instead.
                    rc = self.redis.client(timeout=10)
                body = {"n": i, "pad": self.pad} if self.pad else {"n": i}
                r = fcall_publish(rc, self.key, json.dumps(body), self.history)
                self.acked.append((time.monotonic(), i, r[0], r[1].decode()))
                i += 1
            except Exception as e:  # noqa: BLE001 - any failure: retry the same n
                self.errors.append((time.monotonic(), i, repr(e)[:120]))
                if rc is not None:
                    rc.close()
                    rc = None
                time.sleep(0.05)
        if rc is not None:
            rc.close()


def data_of(msgs):
    return [m.get("data") for m in msgs]


def plain(frame):
    """frame without the "offset" and "epoch" a message or ack with history carries,
    after checking their types: for assertions that are about everything else."""
    out = dict(frame)
    if "offset" in out or "epoch" in out:
        off, ep = out.pop("offset"), out.pop("epoch")
        assert isinstance(off, int) and off >= 0, frame
        assert isinstance(ep, str) and len(ep) <= 32, frame
    return out


_ENVELOPE = re.compile(rb"\xffwsgate1 ([1-9][0-9]{0,19}) ([0-9A-Za-z_-]{1,32})\n", re.S)


def parse_envelope(raw):
    """None for a plain PUBLISH payload, else (offset, epoch, payload) of a history
    envelope (docs/PROTOCOL.md); raises ValueError for a reserved payload (leading
    0xFF/0xFE) that is not a version 1 envelope."""
    if not raw or raw[0] not in (0xFF, 0xFE):
        return None
    m = _ENVELOPE.match(raw)
    if not m or int(m.group(1)) > 2 ** 64 - 1:
        raise ValueError("malformed envelope %r" % raw[:60])
    return int(m.group(1)), m.group(2).decode(), raw[m.end():]


# --------------------------------------------------------------------------------------
# unittest base


class GatewayTestCase(unittest.TestCase):
    """Tracks processes so they are always stopped, and prints each gateway's log tail
    (and redis's) when a test fails."""

    _class_gateways = []

    @classmethod
    def start_class_redis(cls, **kw):
        r = RedisServer(**kw)
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
        r = RedisServer(**kw)
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


# ---- TLS to Redis (test_redis_tls, chaos on a TLS link) ----

CA_CNF = """
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ server ]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[ client ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
"""


class Pki:
    """TLS material minted with `openssl` at test time, in its own temp dir: two CAs (the
    right one, "ca", and a stranger, "other-ca") and, signed by the first, "server"
    (localhost, 127.0.0.1), "expired" (the same, valid only in 2020) and "client"."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsgate-tls-")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        for ca in ("ca", "other-ca"):
            self.openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                         "-subj", "/CN=wsgate test " + ca)
        self.issue("server", "server", "-days", "2")
        self.issue("expired", "server", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        self.issue("client", "client", "-days", "2")

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], p.stderr))

    def issue(self, name, ext, *validity):
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        self.openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                     "-in", name + ".csr", "-out", name + ".crt", "-extensions", ext, *validity)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedisServer(RedisServer):
    """redis-server with a plain port (the test's own commands and backends) and a TLS
    port, tls_port, with pki's certificate `cert`; auth_clients "yes" asks for a client
    certificate. Restarts keep both ports."""

    def __init__(self, pki, cert="server", auth_clients="no"):
        self.pki, self.cert, self.auth_clients = pki, cert, auth_clients
        self.tls_port = free_port()
        super().__init__()

    def _spawn(self):
        p = self.pki.path
        cmd = [self.binary, "--port", str(self.port), "--tls-port", str(self.tls_port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
               "--tls-cert-file", p(self.cert + ".crt"), "--tls-key-file", p(self.cert + ".key"),
               "--tls-ca-cert-file", p("ca.crt"), "--tls-auth-clients", self.auth_clients]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
