"""A small blocking RFC 6455 WebSocket client (Python 3 standard library only), enough for
the deployment tests: handshake, masked text frames, ping/pong, close codes, deadlines."""

import base64
import collections
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSClosed(Exception):
    """The server closed the connection; code/reason from its close frame (None if none)."""

    def __init__(self, code, reason):
        super().__init__("closed: code=%s reason=%r" % (code, reason))
        self.code = code
        self.reason = reason


class WSClient:
    def __init__(self, host, port, path="/ws", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = None
        self.pending = collections.deque()  # messages read while waiting for something else
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key))
        self.sock.sendall(req.encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            self.sock.close()
            raise ConnectionError("upgrade refused: %s" % lines[0])
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        if hdrs.get("sec-websocket-accept") != want:
            self.sock.close()
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data before the deadline")
        if not data:
            raise WSClosed(None, "connection closed without a close frame")
        self.buf += data

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_json(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def _read_frame(self, deadline):
        while len(self.buf) < 2:
            self._fill(deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill(deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill(deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < off + n:
            self._fill(deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, payload

    def recv_json(self, timeout):
        """The next text message, decoded. Answers pings; raises WSClosed on a close frame
        and TimeoutError when nothing arrives within timeout seconds."""
        if self.pending:
            return self.pending.popleft()
        return self._recv_new(timeout)

    def _recv_new(self, timeout):
        if self.closed:
            raise self.closed
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self._read_frame(deadline)
            if op == 0x1:
                return json.loads(payload)
            if op == 0x9:
                self._send_frame(0xA, payload)
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                try:
                    self._send_frame(0x8, payload[:2])
                except OSError:
                    pass
                self.sock.close()
                self.closed = WSClosed(code, reason)
                raise self.closed

    def wait_for(self, pred, timeout):
        """Returns the first message (already read, or read now) for which pred(msg) is true.
        Messages that do not match stay queued, in order, for recv_json()."""
        for i, msg in enumerate(self.pending):
            if pred(msg):
                del self.pending[i]
                return msg
        deadline = time.monotonic() + timeout
        while True:
            msg = self._recv_new(max(0.01, deadline - time.monotonic()))
            if pred(msg):
                return msg
            self.pending.append(msg)

    def request(self, obj, timeout=5.0):
        """Sends obj (which carries an id) and returns the reply with that id."""
        self.send_json(obj)
        return self.wait_for(lambda m: m.get("id") == obj["id"] and m.get("type") != "message", timeout)

    def close(self):
        if self.closed:
            return
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = WSClosed(1000, "closed by client")
