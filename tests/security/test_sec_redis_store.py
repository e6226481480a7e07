"""Issue 15, finding 3 (docs/SECURITY.md, "Redis cost"): what an anonymous client can make
Redis hold, against real redis-server and real wsgate nodes with the shipped anonymous
`demo*` access.

- --client-store-bytes: one connection's stored publishes stop with `store_limited` once its
  budget is spent, and what Redis holds for them stays under the budget (used_memory).
- --history-channels: publishes to other channels are plain PUBLISHes: delivered, not stored,
  not charged.
- A full Redis (maxmemory + noeviction): stored publishes get `unavailable` and are counted,
  both nodes stay ready, channels outside --history-channels and backend PUBLISHes keep
  flowing, history stays readable.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_sec_redis_store
"""

import http.client
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, RedisError, T, fn_keys,  # noqa: E402
                            http_status, uniq)

SHIPPED_ACCESS = ["--anonymous-subscribe", "demo*", "--anonymous-publish", "demo*"]


def used_memory(redis):
    info = redis.command("INFO", "memory").decode()
    return int([l for l in info.splitlines() if l.startswith("used_memory:")][0].split(":")[1])


def publish_until(c, channel_of, data, n, stop_code):
    """Publishes data to channel_of(i) for i < n, each awaited; returns (acks, first reply
    with error code stop_code or None, other errors)."""
    acks, others = [], []
    for i in range(n):
        r = c.publish(channel_of(i), data, timeout=10)
        if r["type"] == "ack":
            acks.append(r)
        elif r.get("code") == stop_code:
            return acks, r, others
        else:
            others.append(r)
    return acks, None, others


class StoreBudgetTest(GatewayTestCase):
    def test_one_connection_stores_at_most_its_budget(self):
        budget = 300000
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS + NO_RATE_LIMIT +
                                ["--client-store-bytes", str(budget)])
        c = self.client(gw.port)
        base = "demo:" + uniq("fill")
        data = "x" * 10000
        # New channels each time: the dearest case for Redis (two keys per channel).
        acks, refused, others = publish_until(c, lambda i: "%s:%d" % (base, i), data, 500,
                                              "store_limited")
        # What Redis holds for them (MEMORY USAGE of every key they made).
        held = sum(redis.command("MEMORY", "USAGE", k, "SAMPLES", "0") or 0
                   for i in range(len(acks) + 1) for k in fn_keys("gw:%s:%d" % (base, i)))
        print("budget %d B: %d stored publishes of 10 kB to new channels, then %r; Redis holds "
              "%d B for them" % (budget, len(acks), refused and refused["code"], held))
        self.assertEqual(others, [])
        self.assertIsNotNone(refused, "500 publishes of 10 kB never hit a %d B budget" % budget)
        self.assertIn("--client-store-bytes", refused["message"])
        size = len(json.dumps(data))
        self.assertEqual(len(acks), budget // (size + size // 4 + 64 + 8192))
        self.assertLessEqual(held, budget)
        # Publishes to a channel that exists cost less: the channel charge comes back.
        c2 = self.client(gw.port)
        one = "demo:" + uniq("one")
        acks2, refused2, _ = publish_until(c2, lambda i: one, data, 500, "store_limited")
        self.assertIsNotNone(refused2)
        self.assertGreaterEqual(len(acks2), budget // (size + size // 4 + 64) - 1)
        # Another connection has its own budget; the refused one still publishes elsewhere.
        self.assertEqual(self.client(gw.port).publish(base + ":other", 1)["type"], "ack")

    def test_budget_refills_over_the_window(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS + NO_RATE_LIMIT +
                                ["--client-store-bytes", "60000", "--client-store-window", "2"])
        c = self.client(gw.port)
        ch = "demo:" + uniq("refill")
        acks, refused, _ = publish_until(c, lambda i: ch, "r" * 10000, 100, "store_limited")
        self.assertIsNotNone(refused)
        self.assertEqual(c.publish(ch, "r" * 10000)["code"], "store_limited")
        time.sleep(1.5)  # 45000 B back: two more (each needs 20758 B in hand, 8192 of it given back)
        got = [c.publish(ch, "r" * 10000).get("code", "ack") for _ in range(3)]
        self.assertEqual(got[:2], ["ack", "ack"], got)

    def test_history_channels_choose_what_is_stored(self):
        redis = self.start_redis()
        keys = os.path.join(tempfile.mkdtemp(prefix="wsgate-sec-"), "keys")
        with open(keys, "w") as f:
            f.write("k" * 40 + "\n")
        self.addCleanup(lambda: (os.unlink(keys), os.rmdir(os.path.dirname(keys))))
        gw = self.start_gateway(redis.port, SHIPPED_ACCESS + NO_RATE_LIMIT +
                                ["--history-channels", "demo:kept*", "--client-store-bytes", "100000",
                                 "--api-key-file", keys])
        sub = self.client(gw.port)
        kept, plain = "demo:kept:" + uniq("k"), "demo:" + uniq("plain")
        self.assertEqual(sub.subscribe(kept)["type"], "ack")
        self.assertEqual(sub.subscribe(plain)["type"], "ack")
        c = self.client(gw.port)
        ack = c.publish(kept, {"n": 1})
        self.assertEqual(ack.get("offset"), 1, ack)
        # Not stored, not charged: 50 x 10 kB goes well past the 100 kB budget.
        for i in range(50):
            ack = c.publish(plain, {"n": i, "pad": "y" * 10000})
            self.assertEqual(ack["type"], "ack", ack)
            self.assertNotIn("offset", ack)
        got = sub.recv_messages(51, timeout=10)
        self.assertEqual([("offset" in m) for m in got], [True] + [False] * 50)
        # The HTTP API follows the same list.
        for channel, stored in ((plain, False), (kept, True)):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=T(5))
            conn.request("POST", "/api/publish", body=json.dumps({"channel": channel, "data": 2}),
                         headers={"Authorization": "Bearer " + "k" * 40,
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            body = json.loads(r.read())
            conn.close()
            self.assertEqual((r.status, "offset" in body), (200, stored), body)
        got = sub.recv_messages(2, timeout=10)
        self.assertEqual(sorted(("offset" in m) for m in got), [False, True])
        self.assertEqual(redis.command("EXISTS", "{gw:%s}:stream" % plain, "{gw:%s}:meta" % plain), 0)
        self.assertEqual(redis.command("EXISTS", "{gw:%s}:stream" % kept), 1)


class FullRedisTest(GatewayTestCase):
    def test_full_redis_refuses_stored_publishes_only(self):
        redis = self.start_redis()
        keys = os.path.join(tempfile.mkdtemp(prefix="wsgate-sec-"), "keys")
        with open(keys, "w") as f:
            f.write("k" * 40 + "\n")
        self.addCleanup(lambda: (os.unlink(keys), os.rmdir(os.path.dirname(keys))))
        args = SHIPPED_ACCESS + NO_RATE_LIMIT + ["--history-channels", "demo:h*", "--client-store-bytes", "0",
                                                 "--api-key-file", keys]
        a = self.start_gateway(redis.port, args, name="a")
        b = self.start_gateway(redis.port, args, name="b")
        redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis.command("CONFIG", "SET", "maxmemory", str(used_memory(redis) + 3 * 1024 * 1024))
        sub = self.client(b.port)
        live = "demo:" + uniq("live")
        self.assertEqual(sub.subscribe(live)["type"], "ack")
        filler = self.client(a.port)
        base = "demo:h:" + uniq("fill")
        acks, refused, others = publish_until(filler, lambda i: "%s:%d" % (base, i % 50),
                                              "z" * 60000, 400, "unavailable")
        print("full Redis: %d stored publishes of 60 kB, then %r" % (len(acks), refused))
        self.assertEqual(others, [])
        self.assertIsNotNone(refused, "Redis never filled up")
        # A backend tops Redis up until it refuses writes, so that it stays over maxmemory.
        rc = redis.client(timeout=T(10))
        self.addCleanup(rc.close)
        for i in range(200):
            if isinstance(rc.command("SET", "junk:%d" % i, "j" * 65536, raise_errors=False), RedisError):
                break
        else:
            self.fail("Redis never refused a write")
        failed_before = a.metric('wsgate_client_publishes_total{result="error"}')
        t_full = time.monotonic()
        # Stored publishes keep failing clearly, and are counted.
        for i in range(20):
            r = filler.publish("%s:%d" % (base, i), {"n": i})
            self.assertEqual((r["type"], r.get("code")), ("error", "unavailable"), r)
        self.assertEqual(a.metric('wsgate_client_publishes_total{result="error"}'), failed_before + 20)
        # The HTTP API: 503.
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=T(5))
        conn.request("POST", "/api/publish", body=json.dumps({"channel": base + ":0", "data": 1}),
                     headers={"Authorization": "Bearer " + "k" * 40, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        conn.close()
        self.assertEqual(r.status, 503)
        # Logged once per power of two of the refusals, not once each.
        refusals = int(a.metric('wsgate_client_publishes_total{result="error"}'))
        lines = [l for l in a.log_text().splitlines() if "publish failed" in l]
        self.assertTrue(lines and "OOM" in lines[0], lines[:1])
        self.assertLessEqual(len(lines), refusals.bit_length())
        # Other channels keep flowing: a client publish outside --history-channels and a
        # backend PUBLISH, across nodes.
        for i in range(20):
            self.assertEqual(filler.publish(live, {"n": i})["type"], "ack")
        redis.command("PUBLISH", "gw:" + live, json.dumps({"n": 20}))
        got = sub.recv_messages(21, timeout=10)
        self.assertEqual([m["data"]["n"] for m in got], list(range(21)))
        # History is still readable.
        h = filler.request({"type": "history", "channel": "%s:%d" % (base, 1), "limit": 1})
        self.assertEqual(h["type"], "history", h)
        # Both nodes stay ready for 3 s (more than the 1 s heartbeat timeout the harness sets).
        bad = []
        while time.monotonic() - t_full < T(3):
            for g in (a, b):
                s = http_status(g.port, "/readyz", timeout=2.0)
                if s != 200:
                    bad.append((g.name, s))
            time.sleep(0.05)
        self.assertEqual(bad, [])
        for g in (a, b):
            self.assertEqual(g.metric("wsgate_redis_connected"), 1)
            self.assertEqual(g.metric("wsgate_redis_reconnects_total"), 0)


if __name__ == "__main__":
    unittest.main()
