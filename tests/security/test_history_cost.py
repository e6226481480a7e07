"""Issue 15, finding 2 (docs/SECURITY.md, "Redis cost"): what an anonymous client can make
Redis do with history reads, against real redis-server and two real wsgate nodes with the
access settings the Helm chart and docker-compose ship (anonymous `demo*`).

The channel holds 1000 messages of 64 KB. Two attacks from one anonymous connection on node
A: 32 `{"type":"history","limit":1000}` sent at once and never read; and default-limit
history requests at the client rate limit, read as they come. Under each, both nodes stay
ready (/readyz polled every 50 ms) and a legitimate client that missed 3 messages recovers
them on node A with its ack within 1 s. Before the fix: both links went down for 36 s
(first attack) and the recovery got no ack within 10 s (second).

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_history_cost
"""

import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, T, WSClient, fcall_publish,  # noqa: E402
                            fn_keys, http_status, uniq)

SHIPPED_ACCESS = ["--anonymous-subscribe", "demo*", "--anonymous-publish", "demo*"]
BIG_MESSAGES = 1000
BIG_PAYLOAD = json.dumps("z" * (65536 - 2))  # 64 KB of JSON
RECOVERY_BOUND_S = 1.0


class ReadyWatch(threading.Thread):
    """Polls /readyz of every node every 50 ms until stopped; keeps what was not 200."""

    def __init__(self, gateways, limit_s=60):
        super().__init__(daemon=True)
        self.gateways, self.limit_s = gateways, limit_s
        self.bad = []  # (seconds since start, node name, status)
        self.polls = 0
        self.stop = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - start < self.limit_s:
            for g in self.gateways:
                s = http_status(g.port, "/readyz", timeout=2.0)
                self.polls += 1
                if s != 200:
                    self.bad.append((round(time.monotonic() - start, 2), g.name, s))
            time.sleep(0.05)


class HistoryCostTest(GatewayTestCase):
    EXTRA = []

    def setUp(self):
        self.redis = self.start_redis()
        self.a = self.start_gateway(self.redis.port, SHIPPED_ACCESS + self.EXTRA, name="a")
        self.b = self.start_gateway(self.redis.port, SHIPPED_ACCESS + self.EXTRA, name="b")
        self.big = "demo:" + uniq("big")
        rc = self.redis.client(timeout=T(30))
        self.addCleanup(rc.close)
        meta, stream = fn_keys("gw:" + self.big)
        cmds = [("FCALL", "wsgate_publish", "2", meta, stream, "gw:" + self.big, BIG_PAYLOAD, "", "")
                for _ in range(BIG_MESSAGES)]
        for i in range(0, len(cmds), 50):
            rc.pipeline(cmds[i:i + 50], timeout=T(30))
        self.rc = rc

    def legit_position(self):
        """A client on node A that has seen offset 1 of its channel, then left."""
        ch = "demo:" + uniq("legit")
        c = self.client(self.a.port)
        self.assertEqual(c.subscribe(ch)["type"], "ack")
        off, epoch = fcall_publish(self.rc, "gw:" + ch, json.dumps({"n": 1}))[:2]
        m = c.recv_message(T(5))
        self.assertEqual((m["offset"], m["epoch"]), (off, epoch.decode()))
        c.abort()
        return ch, off, epoch.decode()

    def recover(self, ch, off, epoch):
        """Publishes 3 messages the client missed, then recovers them on node A; returns
        the seconds from the subscribe to its ack."""
        for n in (2, 3, 4):
            fcall_publish(self.rc, "gw:" + ch, json.dumps({"n": n}))
        c = self.client(self.a.port, timeout=10)
        t0 = time.monotonic()
        ack = c.request({"type": "subscribe", "channel": ch,
                         "since": {"offset": off, "epoch": epoch}}, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual((ack["type"], ack.get("recovered")), ("ack", True), ack)
        got = c.recv_messages(3, timeout=10)
        self.assertEqual([m["data"]["n"] for m in got], [2, 3, 4])
        c.abort()
        return took

    def watch(self):
        w = ReadyWatch([self.a, self.b])
        w.start()
        self.addCleanup(w.stop.set)
        return w

    def test_unread_history_flood(self):
        ch, off, epoch = self.legit_position()
        watch = self.watch()
        # The attacker: a small receive buffer, 32 requests in one packet, never reads.
        atk = WSClient(self.a.port, rcvbuf=4096)
        self.addCleanup(atk.abort)
        req = {"type": "history", "channel": self.big, "limit": 1000}
        atk.send_raw(b"".join(atk.build_frame(1, json.dumps(dict(req, id=i)).encode())
                              for i in range(32)))
        time.sleep(0.2)
        took = self.recover(ch, off, epoch)
        time.sleep(T(3))  # the attack's aftermath: long enough for a 1 s heartbeat timeout
        watch.stop.set()
        watch.join(T(10))
        print("unread flood%s: recovery acked in %.3f s; /readyz polls %d, not 200: %r"
              % (" (no rate limit)" if self.EXTRA else "", took, watch.polls, watch.bad[:5]))
        self.assertEqual(watch.bad, [])
        self.assertLess(took, RECOVERY_BOUND_S)

    def test_history_at_the_rate_limit(self):
        ch, off, epoch = self.legit_position()
        watch = self.watch()
        atk = self.client(self.a.port, timeout=10)
        stop = threading.Event()
        sent, replies = [0], []

        def reader():
            while not stop.is_set():
                try:
                    replies.append(atk.recv_json(timeout=0.5).get("type"))
                except TimeoutError:
                    continue
                except Exception:  # noqa: BLE001 - the connection ended
                    return

        def attack():
            # 200/s, the default --client-rate, for at most 4 s.
            start = time.monotonic()
            while not stop.is_set() and time.monotonic() - start < 4:
                atk.send_json({"type": "history", "channel": self.big, "id": sent[0] + 1})
                sent[0] += 1
                time.sleep(0.005)

        threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=attack, daemon=True)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        took = [self.recover(ch, off, epoch)]
        ch2, off2, epoch2 = self.legit_position()
        took.append(self.recover(ch2, off2, epoch2))
        threads[1].join(T(10))  # the attack runs its 4 s
        stop.set()
        threads[0].join(T(10))
        watch.stop.set()
        watch.join(T(10))
        kinds = {k: replies.count(k) for k in set(replies)}
        print("history at the rate limit%s: %d sent, replies %r; recoveries acked in %s s; "
              "/readyz not 200: %r" % (" (no rate limit)" if self.EXTRA else "", sent[0], kinds, ["%.3f" % t for t in took], watch.bad[:5]))
        self.assertEqual(watch.bad, [])
        for t in took:
            self.assertLess(t, RECOVERY_BOUND_S)


class HistoryChargeTest(GatewayTestCase):
    def test_history_is_charged_by_bytes_read(self):
        """Default rate limit (200/s, burst 400): 100 history requests of a small channel, one
        after the other, all pass (each costs one message once its reply is in); the same on
        the 64 KB channel costs 64 messages each (512 KiB replies), so the burst allows about
        6 and the rest are rate_limited."""
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS)
        rc = redis.client(timeout=T(30))
        self.addCleanup(rc.close)
        small, big = "demo:" + uniq("small"), "demo:" + uniq("big")
        for n in range(5):
            fcall_publish(rc, "gw:" + small, json.dumps({"n": n}))
        for n in range(20):
            fcall_publish(rc, "gw:" + big, BIG_PAYLOAD)
        c = self.client(gw.port, timeout=10)

        def kinds(channel, n):
            out = [(lambda r: r.get("code", r["type"]))(c.request({"type": "history", "channel": channel}))
                   for _ in range(n)]
            return {k: out.count(k) for k in set(out)}

        self.assertEqual(kinds(small, 100), {"history": 100})
        time.sleep(2.1)  # the burst refills (200/s)
        got = kinds(big, 30)
        print("30 history requests of 8 x 64 KB each, one after the other: %r" % got)
        self.assertEqual(got.get("history", 0) + got.get("rate_limited", 0), 30)
        self.assertLessEqual(got.get("history", 0), 8)
        self.assertGreaterEqual(got.get("history", 0), 5)


class LeftReadsTest(GatewayTestCase):
    def test_reads_of_a_client_that_left_are_dropped(self):
        """Reads still waiting when their client leaves never reach Redis. Redis is paused
        (CLIENT PAUSE ALL, the heartbeat timeout raised above it) while the client asks 20
        history reads and leaves: 8 are on the link, 12 wait, and those 12 are dropped."""
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS + NO_RATE_LIMIT +
                                ["--redis-heartbeat-timeout-ms", "8000"])
        ch = "demo:" + uniq("left")
        fcall_publish(redis.client(), "gw:" + ch, json.dumps({"n": 1}))
        self.assertEqual(gw.metric('wsgate_client_reads_dropped_total{reason="client_left"}'), 0)
        c = self.client(gw.port)
        redis.command("CLIENT", "PAUSE", "1500", "ALL")
        t0 = time.monotonic()
        c.send_raw(b"".join(c.build_frame(1, json.dumps({"type": "history", "channel": ch,
                                                        "id": i}).encode()) for i in range(20)))
        time.sleep(0.3)
        c.abort()
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)) + 0.5)
        self.assertEqual(gw.metric('wsgate_client_reads_dropped_total{reason="client_left"}'), 12)
        self.assertEqual(gw.metric("wsgate_history_requests_total"), 20)
        gw.wait_ready()

    def test_one_client_waits_with_few_reads(self):
        """A client may have at most --max-subscriptions + 8 reads waiting (72 by default), so
        one client cannot take all of --max-recoveries: with Redis paused, 100 history requests
        give 8 on the link, 72 waiting and 20 answered `unavailable` at once."""
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS + NO_RATE_LIMIT +
                                ["--redis-heartbeat-timeout-ms", "8000"])
        ch = "demo:" + uniq("many")
        fcall_publish(redis.client(), "gw:" + ch, json.dumps({"n": 1}))
        c = self.client(gw.port, timeout=10)
        redis.command("CLIENT", "PAUSE", "1500", "ALL")
        c.send_raw(b"".join(c.build_frame(1, json.dumps({"type": "history", "channel": ch,
                                                        "id": i}).encode()) for i in range(100)))
        early = [c.recv_json(timeout=1.0) for _ in range(20)]
        self.assertEqual({(r["type"], r.get("code")) for r in early}, {("error", "unavailable")})
        late = [c.recv_json(timeout=5.0) for _ in range(80)]
        self.assertEqual({r["type"] for r in late}, {"history"})
        gw.wait_ready()


class HistoryCostUnlimitedTest(HistoryCostTest):
    """The same attacks with the client rate limit lifted: what holds then is the read's
    cost bounded by its byte budget, the reads in flight, and one read per client per turn."""
    EXTRA = NO_RATE_LIMIT


if __name__ == "__main__":
    unittest.main()
