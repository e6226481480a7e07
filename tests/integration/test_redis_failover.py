"""Redis outages: killed (SIGKILL then restart on the same port), wedged (SIGSTOP then
SIGCONT), and absent at startup. Clients stay connected, get `unavailable` while Redis is
gone, /readyz follows the link, and the SAME connections get messages again afterwards
without resubscribing.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_redis_failover
"""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, RedisServer, T, free_port, uniq,  # noqa: E402
                            plain, wait_until)


class FailoverTest(GatewayTestCase):
    def setUp(self):
        self.redis = self.start_redis()
        self.nodes = [self.start_gateway(self.redis.port, NO_RATE_LIMIT, name="node%s" % n) for n in "AB"]
        self.ch = uniq("f")
        self.subs = []
        for g in self.nodes:
            c = self.client(g.port)
            self.assertEqual(c.subscribe(self.ch).get("type"), "ack")
            self.subs.append(c)
        self.pub = self.client(self.nodes[0].port)
        self.assert_delivery("before")

    def assert_delivery(self, label, via_client=False):
        payload = '{"phase":"%s"}' % label
        if via_client:
            r = self.pub.publish(self.ch, {"phase": label}, timeout=5)
            self.assertEqual(r.get("type"), "ack", "%s: client publish: %r" % (label, r))
        else:
            self.assertEqual(self.redis.publish("gw:" + self.ch, payload), 2,
                             "%s: both nodes must hold the Redis subscription" % label)
        for c, g in zip(self.subs, self.nodes):
            m = c.recv_message(timeout=5)
            self.assertEqual(plain(m), {"type": "message", "channel": self.ch, "data": {"phase": label}},
                             "%s: delivery on %s" % (label, g.name))

    def assert_clients_alive(self, label):
        for c in self.subs + [self.pub]:
            r = c.ping(timeout=5)
            self.assertEqual(r.get("type"), "pong", "%s: %r" % (label, r))
            self.assertIsNone(c.close_code, "%s: a client was closed" % label)

    def wait_numsub(self, want, timeout):
        wait_until(lambda: self.redis.numsub("gw:" + self.ch) == want, timeout,
                   what="PUBSUB NUMSUB gw:%s == %d" % (self.ch, want))

    def test_redis_killed_and_restarted(self):
        late = self.client(self.nodes[1].port)
        self.assertEqual(late.subscribe(self.ch).get("type"), "ack")
        self.redis.kill()
        t0 = time.monotonic()
        # Publishing right away: Redis cannot have accepted it, so no ack.
        r = self.pub.publish(self.ch, {"lost": True}, timeout=5)
        self.assertEqual(r.get("type"), "error", r)
        self.assertEqual(r.get("code"), "unavailable", r)
        for g in self.nodes:
            g.wait_readyz(503, T(4))
        sys.stderr.write("\n[observed] /readyz 503 on both nodes %.2fs after SIGKILL\n"
                         % (time.monotonic() - t0))
        self.assert_clients_alive("redis down")
        for g in self.nodes:
            self.assertEqual(g.http_get("/healthz")[0], 200, "liveness must not depend on Redis")
            m = g.metrics()
            self.assertEqual(m.get("wsgate_redis_connected"), 0, g.name)
            self.assertEqual(m.get("wsgate_ready"), 0, g.name)
            self.assert_link_state(g, m, "down", "connecting", "resetting")
        r = self.pub.publish(self.ch, {"lost": 2}, timeout=5)
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unavailable"), r)
        # Subscribing to a channel the node does not hold yet needs Redis.
        r = self.pub.subscribe(uniq("new"), timeout=5)
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unavailable"), r)
        # So does one that other local clients hold: the node's subscription is gone, and
        # an ack would promise messages that Redis then publishes to no one.
        r = self.pub.subscribe(self.ch, timeout=5)
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unavailable"), r)
        # Unsubscribing is local and works during the outage.
        r = late.unsubscribe(self.ch, timeout=5)
        self.assertEqual(r.get("type"), "ack", r)

        self.redis.restart()
        t1 = time.monotonic()
        for g in self.nodes:
            g.wait_readyz(200, T(5))
        sys.stderr.write("[observed] /readyz 200 on both nodes %.2fs after restart\n"
                         % (time.monotonic() - t1))
        # Ready must mean resubscribed: the same connections get messages again.
        self.wait_numsub(2, T(1))
        self.assert_delivery("after restart")
        self.assert_delivery("client publish after restart", via_client=True)
        self.assert_clients_alive("after restart")
        late.expect_nothing(0.3)  # unsubscribed during the outage: nothing arrives
        for s in self.subs:
            self.assertEqual(list(s.messages), [], "no stray/duplicate messages")
        for g in self.nodes:
            m = g.metrics()
            self.assertGreaterEqual(m.get("wsgate_redis_reconnects_total", 0), 1, g.name)
            self.assertEqual(m.get("wsgate_redis_connected"), 1, g.name)
            self.assertEqual(m.get("wsgate_ready"), 1, g.name)
            self.assertEqual(m.get("wsgate_connections"), 2, g.name)  # A: sub+pub, B: sub+late
            self.assert_link_state(g, m, "live")

    def assert_link_state(self, g, m, *allowed):
        """wsgate_redis_link_state: exactly one state at 1, one of allowed; both
        connections ready exactly when the link is live."""
        states = ("down", "connecting", "loading", "proving", "live", "resetting")
        on = [s for s in states if m.get('wsgate_redis_link_state{state="%s"}' % s) == 1]
        self.assertEqual(len(on), 1, "%s: %r" % (g.name, on))
        self.assertEqual(sum(m.get('wsgate_redis_link_state{state="%s"}' % s) for s in states), 1, g.name)
        self.assertIn(on[0], allowed, g.name)
        if on[0] == "live":
            for role in ("sub", "pub"):
                self.assertEqual(m.get('wsgate_redis_connection_ready{role="%s"}' % role), 1, g.name)
        if on[0] in ("down", "resetting"):
            for role in ("sub", "pub"):
                self.assertEqual(m.get('wsgate_redis_connection_ready{role="%s"}' % role), 0, g.name)

    def test_redis_side_connection_kill(self):
        # Redis drops the nodes' connections (CLIENT KILL) while staying up.
        with self.redis.client() as rc:
            killed = rc.command("CLIENT", "KILL", "TYPE", "pubsub")
            self.assertGreaterEqual(killed, 2, "each node holds a pub/sub connection")
            rc.command("CLIENT", "KILL", "TYPE", "normal")  # publishers; SKIPME spares rc
        self.wait_numsub(2, T(5))
        for g in self.nodes:
            g.wait_readyz(200, T(5))
        self.assert_delivery("after CLIENT KILL")
        self.assert_delivery("client publish after CLIENT KILL", via_client=True)
        self.assert_clients_alive("after CLIENT KILL")
        for g in self.nodes:
            self.assertGreaterEqual(g.metrics().get("wsgate_redis_reconnects_total", 0), 1, g.name)
        for s in self.subs:
            self.assertEqual(list(s.messages), [], "no stray/duplicate messages")

    def test_redis_wedged_by_sigstop(self):
        self.redis.pause()
        try:
            t0 = time.monotonic()
            for g in self.nodes:
                g.wait_readyz(503, T(2.5))  # heartbeat timeout is 1 s
            sys.stderr.write("\n[observed] /readyz 503 on both nodes %.2fs after SIGSTOP\n"
                             % (time.monotonic() - t0))
            self.assert_clients_alive("redis wedged")
            remaining = 3.0 - (time.monotonic() - t0)
            if remaining > 0:
                time.sleep(remaining)
        finally:
            self.redis.resume()
        t1 = time.monotonic()
        for g in self.nodes:
            g.wait_readyz(200, T(5))
        sys.stderr.write("[observed] /readyz 200 on both nodes %.2fs after SIGCONT\n"
                         % (time.monotonic() - t1))
        self.wait_numsub(2, T(1))
        self.assert_delivery("after wedge")
        self.assert_delivery("client publish after wedge", via_client=True)
        self.assert_clients_alive("after wedge")
        for s in self.subs:
            self.assertEqual(list(s.messages), [], "no stray/duplicate messages")


class RedisAbsentAtStartTest(GatewayTestCase):
    def test_not_ready_until_redis_appears(self):
        port = free_port()
        g = self.start_gateway(port, NO_RATE_LIMIT, ready=False)
        time.sleep(0.5)
        self.assertEqual(g.http_get("/healthz")[0], 200)
        self.assertEqual(g.readyz(), 503)
        c = self.client(g.port)
        r = c.publish("x", 1, timeout=5)
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unavailable"), r)
        redis = RedisServer(port=port)
        self.addCleanup(redis.cleanup)
        g.wait_readyz(200, T(5))
        ch = uniq("f")
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        self.assertEqual(c.publish(ch, "now").get("type"), "ack")
        self.assertEqual(c.recv_message(timeout=5)["data"], "now")
        self.assertEqual(g.terminate(), 0)


if __name__ == "__main__":
    unittest.main()


class NodeStallTest(GatewayTestCase):
    """The node itself stalls (SIGSTOP, as a long GC-like pause or CPU starvation would):
    what Redis delivered to its socket meanwhile must be read, not thrown away by a
    heartbeat timeout that blames the link (issue 8, defect 6). Plain PUBLISH, so no
    history can hide a loss."""

    def test_stalled_node_keeps_what_redis_sent(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, NO_RATE_LIMIT)
        ch = uniq("stall")
        c = self.client(gw.port)
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        rc = redis.client()
        self.addCleanup(rc.close)
        total, rate = 1200, 200
        start = time.monotonic()
        stopped = resumed = False
        for i in range(total):
            due = start + i / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            if not stopped and i == 300:
                gw.send_signal(signal.SIGSTOP)
                stopped, t_stop = True, time.monotonic()
            if stopped and not resumed and time.monotonic() - t_stop >= 4:
                gw.send_signal(signal.SIGCONT)
                resumed = True
            self.assertEqual(rc.command("PUBLISH", "gw:" + ch, '{"n":%d}' % i), 1,
                             "the node's subscription must stay in place through its stall")
        if not resumed:
            gw.send_signal(signal.SIGCONT)
        got = [m["data"]["n"] for m in c.recv_messages(total, timeout=15)]
        self.assertEqual(got, list(range(total)))
        m = gw.metrics()
        self.assertEqual(m.get("wsgate_redis_reconnects_total"), 0, "the link was reset")
        self.assertEqual(m.get('wsgate_redis_messages_dropped_total{reason="link_reset"}'), 0)
        self.assertIn("bus thread stalled", gw.log_text())
