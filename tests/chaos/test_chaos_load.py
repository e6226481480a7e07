"""Load the node sheds or survives (docs/RELIABILITY.md): slow readers under the default
queue limits, connection churn, and SIGTERM under traffic.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_chaos_load
"""

import base64
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos_lib import (NO_RATE_LIMIT, ChaosCase, ConnectionClosed, ConnectionLost,  # noqa: E402
                       Publisher, T, WSClient, rss_bytes, uniq, wait_until)

MiB = 1024 * 1024
SHED = 'wsgate_clients_shed_total{reason="slow_consumer"}'


def memory_bound(connections, channels, workers=1, queue_max_bytes=4 * MiB, max_frame_bytes=65536,
                 max_inbox_bytes=64 * MiB):
    """docs/ARCHITECTURE.md, "Backpressure and memory bounds": the node's worst case
    above its baseline, with the default limits."""
    return connections * (2 * queue_max_bytes + max_frame_bytes) + channels * queue_max_bytes + \
        32 * 256 * 1024 + (workers + 2) * max_inbox_bytes


def slope(ys):
    """Least-squares slope of ys against 0, 1, 2, ..."""
    n = len(ys)
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def masked_text(payload):
    key = os.urandom(4)
    data = payload.encode()
    n = len(data)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class SlowReaderTest(ChaosCase):
    def test_slow_readers_shed_under_default_limits(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, DEFAULT_ARGS, name="n0")
        ch = uniq("slow")
        slow = []
        for _ in range(20):
            c = self.client(gw.port, rcvbuf=4096, timeout=10)
            self.assertEqual(c.subscribe(ch).get("type"), "ack")
            slow.append(c)
        readers = self.start_readers([gw], ch, per_node=5)
        rss0 = rss_bytes(gw.proc.pid)
        total, rate = 4000, 1000
        pub = Publisher(redis, ch, total, rate, pad=4000)
        t0 = time.monotonic()
        pub.start()
        peak, shed_at = rss0, None
        while pub.is_alive() and time.monotonic() < t0 + T(30):
            peak = max(peak, rss_bytes(gw.proc.pid))
            if shed_at is None and gw.metric(SHED, 0) == 20:
                shed_at = time.monotonic() - t0
            time.sleep(0.1)
        self.finish(pub, readers, total)
        if shed_at is None and gw.metric(SHED, 0) == 20:
            shed_at = time.monotonic() - t0
        closes = []
        for c in slow:
            try:
                closes.append(c.expect_close(timeout=10)[0])
            except ConnectionLost:
                closes.append("EOF")
            except TimeoutError:
                closes.append("open")
        bound = memory_bound(25, 1)
        sys.stderr.write(
            "\n[chaos] 20 slow readers + 5 healthy, %d x 4 KiB at %d msg/s, default limits: %s shed "
            "(all after %s s), close codes %r; healthy lost %r; RSS %.1f MiB -> peak %.1f MiB "
            "(+%.1f MiB, bound +%.1f MiB)\n" % (
                total, rate, gw.metric(SHED, 0), "%.2f" % shed_at if shed_at else "-",
                sorted(set(map(str, closes))), [r.lost(total) for r in readers], rss0 / MiB,
                peak / MiB, (peak - rss0) / MiB, bound / MiB))
        self.assertEqual(gw.metric(SHED, 0), 20, "every slow reader is shed")
        self.assertEqual(closes, [4008] * 20, "each sees the 4008 close frame")
        for r in readers:
            self.assert_sequence(r, total)
        self.assert_not_dropped(readers)
        self.assertLess(peak - rss0, bound, "RSS growth within docs/ARCHITECTURE.md's bound")


# What an operator runs: nothing but the link's defaults.
DEFAULT_ARGS = ["--redis-heartbeat-interval-ms", "1000", "--redis-heartbeat-timeout-ms", "3000",
                "--redis-backoff-max-ms", "2000"]


class ChurnTest(ChaosCase):
    ROUNDS, PER_ROUND, CHANNELS = 20, 1000, 100

    def one_round(self, port, r):
        """Opens PER_ROUND WebSockets, each subscribing to one of CHANNELS channels in the
        same write as its upgrade, waits for every ack, then ends them: half with a
        close frame, half with a TCP reset."""
        socks = []
        sel = selectors.DefaultSelector()
        try:
            for i in range(self.PER_ROUND):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                key = base64.b64encode(os.urandom(16)).decode()
                req = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13"
                       "\r\n\r\n" % (port, key)).encode()
                sub = json.dumps({"type": "subscribe", "channel": "churn%d:%d" % (r % 2, i % self.CHANNELS),
                                  "id": 1})
                s.sendall(req + masked_text(sub))
                s.setblocking(False)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, bytearray())
            pending = set(socks)
            deadline = time.monotonic() + T(30)
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    try:
                        chunk = key.fileobj.recv(4096)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise AssertionError("round %d: a connection ended before its ack" % r)
                    key.data.extend(chunk)
                    if b'"type":"ack"' in key.data:
                        pending.discard(key.fileobj)
                        sel.unregister(key.fileobj)
            self.assertFalse(pending, "round %d: %d subscriptions not acked" % (r, len(pending)))
        finally:
            sel.close()
            for i, s in enumerate(socks):
                try:
                    if i % 2:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        s.setblocking(True)
                        s.sendall(WSClient.build_frame(0x8, struct.pack("!H", 1000)))
                except OSError:
                    pass
                s.close()

    def test_connection_churn(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, DEFAULT_ARGS, name="n0")
        rss, took = [], []
        rc = redis.client()
        self.addCleanup(rc.close)
        for r in range(self.ROUNDS):
            t = time.monotonic()
            self.one_round(gw.port, r)
            wait_until(lambda: gw.metric("wsgate_connections") == 0, T(20),
                       what="round %d: every connection gone" % r)
            wait_until(lambda: rc.command("PUBSUB", "CHANNELS", "gw:*") == [], T(20),
                       what="round %d: no Redis subscription left" % r)
            took.append(time.monotonic() - t)
            rss.append(rss_bytes(gw.proc.pid))
        s = slope(rss[4:])
        sys.stderr.write(
            "\n[chaos] churn: %d rounds of %d connections on %d channels, %.1f s per round; RSS "
            "after rounds 1/5/%d: %.1f/%.1f/%.1f MiB, slope over rounds 5..%d %+.1f KiB/round; "
            "Redis channels after each round: 0\n" % (
                self.ROUNDS, self.PER_ROUND, self.CHANNELS, sum(took) / len(took), self.ROUNDS,
                rss[0] / MiB, rss[4] / MiB, rss[-1] / MiB, self.ROUNDS, s / 1024))
        # A leak of one small allocation per connection (64 B) would be 64 KiB a round.
        self.assertLess(s, 64 * 1024, "RSS keeps growing with churn: %r" % [x // 1024 for x in rss])
        self.assertEqual(gw.metric("wsgate_connections"), 0)


class DrainUnderLoadTest(ChaosCase):
    DRAIN = 3

    def drain(self, stuck):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, DEFAULT_ARGS + ["--drain-timeout", str(self.DRAIN)], name="n0")
        ch = uniq("drain")
        if stuck:
            lazy = self.client(gw.port, rcvbuf=4096, timeout=10)
            self.assertEqual(lazy.subscribe(ch).get("type"), "ack")
        readers = self.start_readers([gw], ch, per_node=50)
        pub = Publisher(redis, ch, 4000, 200, pad=8000)
        pub.start()
        self.addCleanup(pub.stop.set)
        wait_until(lambda: pub.published() >= 300, T(10), what="1.5 s of traffic")
        backlog = 0
        if stuck:
            # The kernel takes the first few hundred KiB; the drain is only held up once
            # the node's own queue holds the rest.
            wait_until(lambda: gw.metric("wsgate_outbound_queue_bytes", 0) > 512 * 1024, T(10),
                       what="a backlog in the stopped reader's queue")
            backlog = gw.metric("wsgate_outbound_queue_bytes", 0)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        code = gw.wait_exit(T(self.DRAIN + 5))
        took = time.monotonic() - t0
        pub.stop.set()
        for r in readers:
            r.join(T(5))
        codes = [r.c.close_code for r in readers]
        lazy_saw = None
        if stuck:
            try:
                lazy_saw = lazy.expect_close(timeout=5)[0]
            except ConnectionLost:
                lazy_saw = "EOF"
            except TimeoutError:
                lazy_saw = "nothing"
            lazy_saw = "%s after %d messages" % (lazy_saw, len(lazy.messages))
        gaps = [r.label for r in readers if r.ns() != list(range(1, len(r.ns()) + 1))]
        sys.stderr.write(
            "\n[chaos] SIGTERM under 200 msg/s, 50 readers%s: exit %d after %.2f s (drain timeout %d s); "
            "close codes %r; readers with a hole before the close %r%s\n" % (
                " + 1 stopped reader (%d KiB queued)" % (backlog // 1024) if stuck else "", code, took,
                self.DRAIN,
                sorted(set(codes)), gaps, "; stopped reader saw %s" % lazy_saw if stuck else ""))
        self.assertEqual(code, 0)
        self.assertLess(took, self.DRAIN + 1.0, "exit within the drain timeout")
        self.assertEqual(codes, [1001] * len(readers), "every reading client sees 1001")
        self.assertEqual(gaps, [], "nothing lost before the close")
        return took

    def test_sigterm_under_load(self):
        took = self.drain(stuck=False)
        self.assertLess(took, 1.0, "no client holds the drain up")

    def test_sigterm_under_load_with_a_stopped_reader(self):
        self.drain(stuck=True)


if __name__ == "__main__":
    unittest.main()
