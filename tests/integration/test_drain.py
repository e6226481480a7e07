"""Graceful drain on SIGTERM / SIGINT: every client gets close 1001 "server draining",
the node stops being ready, refuses new work, and exits 0 within --drain-timeout.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_drain
"""

import http.client
import os
import signal
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (ConnectionLost, GatewayTestCase, HandshakeError, T,  # noqa: E402
                            WSClient, wait_until)

DRAIN = 5


class DrainTest(GatewayTestCase):
    def setUp(self):
        self.redis = self.start_redis()

    def start_node(self):
        return self.start_gateway(self.redis.port, ["--drain-timeout", str(DRAIN)])

    def connected_clients(self, gw, n, **kw):
        ch = "drain:%s" % uuid.uuid4().hex[:8]
        out = []
        for _ in range(n):
            c = self.client(gw.port, **kw)
            r = c.subscribe(ch)
            self.assertEqual(r.get("type"), "ack", r)
            out.append(c)
        return out

    def assert_not_ready(self, gw):
        try:
            status = gw.http_get("/readyz", timeout=T(2))[0]
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            return "refused"
        except socket.timeout:
            self.fail("/readyz hung during drain")
        self.assertEqual(status, 503, "/readyz during drain")
        return status

    def assert_new_connection_refused(self, gw):
        try:
            c = WSClient(gw.port, timeout=3)
        except (ConnectionRefusedError, ConnectionResetError, HandshakeError, ConnectionLost):
            return "refused"
        self.addCleanup(c.abort)
        try:
            code, reason = c.expect_close(timeout=3)
        except ConnectionLost:
            return "accepted then dropped"
        except TimeoutError:
            self.fail("a new WebSocket connection was accepted and kept open during drain")
        self.assertEqual(code, 1001, "close code of a connection made during drain (%r)" % reason)
        return "accepted then closed %d" % code

    def test_sigterm_closes_clients_1001_and_exits_0(self):
        gw = self.start_node()
        clients = self.connected_clients(gw, 3)
        # This one never reads, so it never answers the close handshake: the drain
        # must still end within --drain-timeout.
        (stubborn,) = self.connected_clients(gw, 1)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        for c in clients:
            self.assertEqual(c.expect_close(timeout=T(4)), (1001, "server draining"))
        ready = self.assert_not_ready(gw)
        fresh = self.assert_new_connection_refused(gw)
        sys.stderr.write("\n[observed] during drain: /readyz=%s, new connection: %s\n"
                         % (ready, fresh))
        code = gw.wait_exit(T(DRAIN + 3))
        elapsed = time.monotonic() - t0
        sys.stderr.write("[observed] exited %.2fs after SIGTERM\n" % elapsed)
        self.assertEqual(code, 0, "exit code after SIGTERM")
        self.assertLessEqual(elapsed, T(DRAIN + 1.5), "drain took longer than --drain-timeout")
        # The close frame was sent to the stubborn client too.
        try:
            result = stubborn.expect_close(timeout=2)
        except ConnectionLost:
            result = "no close frame"
        self.assertEqual(result, (1001, "server draining"), "stubborn client")

    def test_backlogged_client_keeps_node_draining_until_timeout(self):
        gw = self.start_node()
        (coop,) = self.connected_clients(gw, 1)
        ch = "drain:%s" % uuid.uuid4().hex[:8]
        backlogged = self.client(gw.port, rcvbuf=4096)
        self.assertEqual(backlogged.subscribe(ch).get("type"), "ack")
        # ~3 MB for a client that does not read: the kernel buffers fill and the rest
        # stays queued in the node (under the default 4 MB / 1024 message limits).
        with self.redis.client() as rc:
            pad = "x" * 4000
            rc.pipeline([("PUBLISH", "gw:" + ch, '{"n":%d,"pad":"%s"}' % (i, pad))
                         for i in range(750)])
        def backlog():
            m = gw.metrics()
            return (m.get("wsgate_redis_messages_received_total", 0) >= 750
                    and m.get("wsgate_outbound_queue_bytes", 0) > 0)
        wait_until(backlog, T(5), what="all 750 messages received and a backlog queued")
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        self.assertEqual(coop.expect_close(timeout=T(4)), (1001, "server draining"))
        # While the node is still up (flushing the backlog): not ready, no new clients.
        time.sleep(0.5)
        if gw.running:
            ready = self.assert_not_ready(gw)
            fresh = self.assert_new_connection_refused(gw)
        else:
            ready = fresh = "node already exited"
        sys.stderr.write("\n[observed] backlog drain: /readyz=%s, new connection: %s\n"
                         % (ready, fresh))
        code = gw.wait_exit(T(DRAIN + 3))
        elapsed = time.monotonic() - t0
        sys.stderr.write("[observed] exited %.2fs after SIGTERM with a backlogged client\n"
                         % elapsed)
        self.assertEqual(code, 0)
        self.assertLessEqual(elapsed, T(DRAIN + 1.5), "drain took longer than --drain-timeout")

    def test_sigint_drains_the_same_way(self):
        gw = self.start_node()
        clients = self.connected_clients(gw, 2)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGINT)
        for c in clients:
            self.assertEqual(c.expect_close(timeout=T(4)), (1001, "server draining"))
        code = gw.wait_exit(T(DRAIN + 3))
        elapsed = time.monotonic() - t0
        sys.stderr.write("\n[observed] exited %.2fs after SIGINT (all clients cooperative)\n"
                         % elapsed)
        self.assertEqual(code, 0, "exit code after SIGINT")
        self.assertLessEqual(elapsed, T(DRAIN + 1.5))

    def test_sigterm_without_clients_exits_0(self):
        gw = self.start_node()
        t0 = time.monotonic()
        self.assertEqual(gw.terminate(timeout=T(DRAIN + 3)), 0)
        self.assertLessEqual(time.monotonic() - t0, T(DRAIN + 1.5))

    def test_standalone_node_drains(self):
        gw = self.start_gateway(None, ["--drain-timeout", str(DRAIN)])
        clients = self.connected_clients(gw, 2)
        gw.send_signal(signal.SIGTERM)
        for c in clients:
            self.assertEqual(c.expect_close(timeout=T(4)), (1001, "server draining"))
        self.assertEqual(gw.wait_exit(T(DRAIN + 3)), 0)


if __name__ == "__main__":
    unittest.main()
