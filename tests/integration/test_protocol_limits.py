"""Protocol v1 limits on one node with Redis: the per-client rate limit (also on garbage
and binary floods), reserved node channels, --max-connections, the idle timeout and
--max-message-bytes. The node's replies and errors are in test_protocol.py.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_protocol_limits
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (OP_BINARY, OP_TEXT, ConnectionClosed, ConnectionLost,  # noqa: E402
                            GatewayTestCase, HandshakeError, T, WSClient, run_wsgate, uniq,
                            wait_until)
from wsgate_protocol import ProtocolMixin  # noqa: E402


class RateLimitTest(ProtocolMixin, GatewayTestCase):
    def test_rate_limited_then_recovers(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--client-rate", "5", "--client-burst", "5"])
        c = self.client(gw.port)
        other = self.client(gw.port)
        n = 30
        c.send_raw(b"".join(c.build_frame(OP_TEXT, json.dumps({"type": "ping", "id": i}))
                            for i in range(1, n + 1)))
        replies = []
        try:
            while len(replies) < n:
                replies.append(c.recv_json(timeout=5))
        except TimeoutError:
            pass
        pongs = [r for r in replies if r.get("type") == "pong"]
        limited = [r for r in replies if r.get("type") == "error" and r.get("code") == "rate_limited"]
        other_kinds = [r for r in replies if r not in pongs and r not in limited]
        self.assertEqual(other_kinds, [], "unexpected replies")
        self.assertGreaterEqual(len(pongs), 5, "the burst of 5 must be served")
        self.assertLessEqual(len(pongs), 8, "at most burst + a few refilled tokens")
        self.assertGreaterEqual(len(limited), n - 8, "the rest must be rate_limited")
        for r in limited:
            self.assertIsInstance(r.get("message"), str)
        # Every request with a usable id gets exactly one reply with that id.
        self.assertEqual(sorted(r.get("id") for r in replies if "id" in r), list(range(1, n + 1)),
                         "ids of the replies (rate_limited errors should carry the request id)")
        # The limit is per client: another client on the node is not limited.
        for i in range(3):
            self.assert_reply(other.request({"type": "ping", "id": 900 + i}), "pong", 900 + i)
        time.sleep(T(1.2))
        self.assert_reply(c.request({"type": "ping", "id": 500}, timeout=5), "pong", 500)
        self.assert_reply(c.request({"type": "ping", "id": 501}, timeout=5), "pong", 501)
        m = gw.metrics()
        self.assertGreaterEqual(m.get('wsgate_client_errors_total{code="rate_limited"}', 0),
                                len(limited))


    def test_garbage_flood_is_rate_limited_like_pings(self):
        # Issue 8 defect 4: the bucket was charged only after a successful parse,
        # so 5,000 invalid frames got 5,000 bad_json replies. Every frame pays now.
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--client-rate", "50", "--client-burst", "100",
                                             "--queue-max-messages", "10000"])
        c = self.client(gw.port)
        n = 5000
        flood = b"".join(c.build_frame(OP_TEXT, b"{not json") for _ in range(n))
        start = time.monotonic()
        c.send_raw(flood)
        replies = []
        try:
            while len(replies) < n:
                replies.append(c.recv_json(timeout=10))
        except TimeoutError:
            pass
        elapsed = time.monotonic() - start
        codes = [r.get("code") for r in replies]
        self.assertEqual(len(replies), n, "one reply per frame")
        self.assertEqual(set(codes) - {"bad_json", "rate_limited"}, set())
        allowed = 100 + 50 * elapsed + 5  # the burst plus what refilled meanwhile
        self.assertLessEqual(codes.count("bad_json"), allowed,
                             "garbage beyond the burst must be rate_limited (%.2fs)" % elapsed)
        self.assertEqual(codes[:100], ["bad_json"] * 100, "the burst is served first")
        first_limited = codes.index("rate_limited")
        self.assertGreaterEqual(first_limited, 100)
        # Pings still pass once the bucket has refilled.
        time.sleep(T(0.5))
        self.assert_reply(c.request({"type": "ping", "id": 7}, timeout=5), "pong", 7)

    def test_binary_flood_is_rate_limited_too(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--client-rate", "50", "--client-burst", "100",
                                             "--queue-max-messages", "10000"])
        c = self.client(gw.port)
        n = 2000
        c.send_raw(b"".join(c.build_frame(OP_BINARY, b"\x00\x01") for _ in range(n)))
        codes = []
        try:
            while len(codes) < n:
                codes.append(c.recv_json(timeout=10).get("code"))
        except TimeoutError:
            pass
        self.assertEqual(len(codes), n, "one reply per frame")
        self.assertEqual(codes[:100], ["binary_not_supported"] * 100, "the burst is served first")
        self.assertGreater(codes.count("rate_limited"), n / 2, "binary frames beyond the burst pay too")


class ReservedChannelTest(ProtocolMixin, GatewayTestCase):
    # Issue 8 item 10: with --channel-prefix "" a client could subscribe to (and publish
    # into) the node's heartbeat channel __wsgate:hb:<node_id>. Redis names under
    # __wsgate: are the node's own whatever the prefix.
    def test_node_channels_are_out_of_reach(self):
        redis = self.start_redis()
        for prefix, name in (("", "__wsgate:hb:n1"), ("", "__wsgate:x"), ("_", "_wsgate:hb:n1"),
                             ("__ws", "gate:hb:n1")):
            gw = self.start_gateway(redis.port, ["--channel-prefix", prefix, "--node-id", "n1"])
            c = self.client(gw.port)
            self.assert_error(c.subscribe(name, id=1), "forbidden", 1)
            self.assert_error(c.publish(name, {"x": 1}, id=2), "forbidden", 2)
            self.assert_reply(c.subscribe("room:1", id=3), "ack", 3)
            gw.terminate()
        # A prefix under which every channel would be the node's own stops the node.
        r = run_wsgate(["--channel-prefix", "__wsgate:"], listen=True, dev_access=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"reserved", r.stderr + r.stdout)
        # Under the default prefix the same name is an ordinary channel (gw:__wsgate:...).
        gw = self.start_gateway(redis.port, ["--node-id", "n1"])
        c = self.client(gw.port)
        self.assert_reply(c.subscribe("__wsgate:hb:n1", id=4), "ack", 4)


class ConnectionLimitTest(ProtocolMixin, GatewayTestCase):
    def test_upgrades_over_max_connections_are_refused(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--max-connections", "2"])
        a = self.client(gw.port)
        b = self.client(gw.port)
        with self.assertRaises((HandshakeError, ConnectionLost, ConnectionResetError)):
            c = WSClient(gw.port, timeout=3)
            c.abort()
        self.assertEqual(gw.metric('wsgate_upgrades_refused_total{reason="limit"}'), 1)
        self.assert_alive(a)
        self.assert_alive(b)
        a.close()
        wait_until(lambda: gw.metric("wsgate_connections") == 1, T(5), what="one connection left")
        c = self.client(gw.port)  # room again
        self.assert_alive(c)


class IdleTimeoutTest(ProtocolMixin, GatewayTestCase):
    def keep_reading(self, c, timeout):
        try:
            c.expect_nothing(timeout)
        except ConnectionClosed as e:
            self.fail("a client that answered every ping with a pong (%d pings) was closed "
                      "with %r %r" % (c.pings_received, e.code, e.reason))

    def test_idle_client_closed_4001_live_client_kept(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--ping-interval", "1", "--idle-timeout", "2"])
        live = self.client(gw.port)  # answers the server's pings automatically
        idle = self.client(gw.port, auto_pong=False)
        self.assert_alive(live)
        self.assert_alive(idle)
        # Read both sockets in turn: `live` answers pings as it reads (pong with the
        # ping's payload, as browsers do), `idle` never does.
        deadline = time.monotonic() + T(6)
        result = None
        while result is None and time.monotonic() < deadline:
            self.keep_reading(live, 0.1)
            try:
                result = idle.expect_close(timeout=0.1)
            except TimeoutError:
                pass
        self.assertIsNotNone(result, "idle client was not closed within 6 s")
        self.assertEqual(result, (4001, "idle timeout"))
        self.assertGreaterEqual(idle.pings_received, 1, "server must send WebSocket pings")
        end = time.monotonic() + T(1.5)
        while time.monotonic() < end:  # keep the live one reading past the idle timeout
            self.keep_reading(live, 0.1)
        self.assert_alive(live, "client that answers pings")
        self.assertGreaterEqual(live.pings_received, 2)
        wait_until(lambda: gw.metrics().get('wsgate_clients_shed_total{reason="idle_timeout"}') == 1,
                   T(3), what='wsgate_clients_shed_total{reason="idle_timeout"} == 1')


class PublishSizeLimitTest(ProtocolMixin, GatewayTestCase):
    def test_client_publish_over_max_message_bytes_is_refused_not_dropped(self):
        # A frame may be larger than a Redis payload is allowed to be; such a publish
        # used to be acked and then dropped by every node.
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--max-frame-bytes", "8192", "--max-message-bytes", "1024"])
        c = self.client(gw.port)
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 1), "ack", 1)
        self.assert_error(c.publish(ch, "x" * 2000, 2), "message_too_large", 2)
        self.assert_reply(c.publish(ch, "x" * 900, 3), "ack", 3)
        self.assertEqual(c.recv_message(timeout=5)["data"], "x" * 900)
        c.expect_nothing(0.3)


if __name__ == "__main__":
    unittest.main()
