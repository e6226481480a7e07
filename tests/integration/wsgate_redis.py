"""RedisClient: a tiny blocking RESP client over a raw socket, every reply bounded by a
deadline (wsgate_base.recv_before). Standard library only."""

import socket
import time

from wsgate_base import recv_before  # noqa: F401


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
        chunk = recv_before(self.sock, deadline, 65536, "redis reply")
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
