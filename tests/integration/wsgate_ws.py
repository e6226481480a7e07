"""WSClient: an RFC 6455 client written from scratch over a blocking socket, every receive
bounded by a deadline; the raw upgrade helpers (upgrade_request, burst_upgrades), the
exceptions a closed or refused connection raises, and helpers over received frames. The
deployment tests use it too, so importing it stays free of side effects."""

import base64
import collections
import hashlib
import json
import os
import re
import selectors
import socket
import struct
import threading
import time

from wsgate_base import SCALE, T, recv_before  # noqa: F401


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
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
        try:
            chunk = recv_before(self.sock, deadline, 262144, "websocket receive")
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
