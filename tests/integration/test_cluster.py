"""Cluster fan-out: one Redis, three nodes. Every message reaches every subscriber on
every node exactly once and in order; the node's Redis subscription follows local
interest; backend payload rules; channel prefix.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_cluster
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (NO_RATE_LIMIT, OP_TEXT, GatewayTestCase, T, data_of, uniq,  # noqa: E402
                            parse_envelope, plain, wait_until)


class ClusterTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = cls.start_class_redis()
        cls.nodes = [cls.start_class_gateway(cls.redis.port, NO_RATE_LIMIT, name="node%s" % n)
                     for n in "ABC"]
        for g in cls.nodes:
            g.wait_ready()

    def setUp(self):
        for g in self.nodes:
            self.assertTrue(g.running, "%s is not running" % g.name)

    def subscribers(self, ch, per_node=1, nodes=None):
        out = []
        for g in nodes or self.nodes:
            for _ in range(per_node):
                c = self.client(g.port)
                r = c.subscribe(ch)
                self.assertEqual(r.get("type"), "ack", r)
                out.append(c)
        return out

    def assert_exact_sequence(self, c, expected, label, timeout=10):
        got = c.recv_messages(len(expected), timeout=timeout)
        self.assertEqual(data_of(got), expected, label)

    # ------------------------------------------------------------------------------

    def test_client_publish_reaches_every_node_once_in_order(self):
        ch = uniq()
        subs = self.subscribers(ch)  # one on A, B, C
        a_sub_same_node_as_publisher = subs[0]
        pub = self.client(self.nodes[0].port)
        n = 200
        frames = [pub.build_frame(OP_TEXT, json.dumps(
            {"type": "publish", "channel": ch, "data": {"n": i}, "id": i + 1})) for i in range(n)]
        pub.send_raw(b"".join(frames))
        acks = [pub.wait_reply(i + 1, timeout=10) for i in range(n)]
        for a in acks:
            self.assertEqual(a.get("type"), "ack", a)
        self.assertEqual(pub.publish(ch, {"end": True}).get("type"), "ack")
        expected = [{"n": i} for i in range(n)] + [{"end": True}]
        for c, g in zip(subs, self.nodes):
            self.assert_exact_sequence(c, expected, "subscriber on %s" % g.name)
            for m in list(c.messages):
                self.assertEqual(m["channel"], ch)
        self.assertIs(a_sub_same_node_as_publisher, subs[0])
        # The publisher is not subscribed and got nothing but acks.
        self.assertEqual(list(pub.messages), [])
        pub.expect_nothing(0.2)
        for c in subs:
            c.expect_nothing(0.2)

    def test_backend_publish_payload_kinds(self):
        ch = uniq()
        subs = self.subscribers(ch)
        for c in subs:
            c.keep_raw = True
        cases = [
            (b'{"text":"hello from the backend"}', {"text": "hello from the backend"}),
            (b'{ "a" : 1,\n "b":[1, 2] }', {"a": 1, "b": [1, 2]}),
            (b"plain text", "plain text"),
            (b"42", 42),
            (b"-3.25", -3.25),
            (b"true", True),
            (b"false", False),
            (b"null", None),
            (b'"a json string"', "a json string"),
            (b"[1,\"x\",null]", [1, "x", None]),
            (b' {"ws":1} ', {"ws": 1}),
            (b'{"a":', '{"a":'),
            (b"", ""),
            (b"ab\xffcd", "ab\ufffdcd"),
            (b'"ab\xff"', '"ab\ufffd"'),
            ('{"u":"h\u00e9llo \u2713"}'.encode(), {"u": "h\u00e9llo \u2713"}),
            (b"tab\there \"quoted\" back\\slash", "tab\there \"quoted\" back\\slash"),
        ]
        rc = self.redis.client()
        self.addCleanup(rc.close)
        for payload, _ in cases:
            self.assertEqual(rc.command("PUBLISH", "gw:" + ch, payload), 3,
                             "each of the 3 nodes holds one Redis subscription")
        for c, g in zip(subs, self.nodes):
            got = c.recv_messages(len(cases), timeout=10)
            for (payload, want), m, raw in zip(cases, got, c.raw_texts):
                with self.subTest(node=g.name, payload=payload):
                    self.assertEqual(m.get("type"), "message")
                    self.assertEqual(m.get("channel"), ch)
                    self.assertIn("data", m)
                    self.assertEqual(m["data"], want)
                    if isinstance(want, dict):
                        # valid JSON is embedded verbatim (not re-serialised)
                        self.assertIn(payload.strip().decode(), raw)

    def test_oversized_backend_payload_is_dropped_and_counted(self):
        ch = uniq()
        subs = self.subscribers(ch)
        before = [g.metric('wsgate_redis_messages_dropped_total{reason="too_large"}', 0)
                  for g in self.nodes]
        big = json.dumps({"big": "x" * 300000})  # > default --max-message-bytes 262144
        self.assertEqual(self.redis.publish("gw:" + ch, big), 3)
        self.assertEqual(self.redis.publish("gw:" + ch, '"after"'), 3)
        for c in subs:
            self.assertEqual(c.recv_message(timeout=5)["data"], "after")
        for g, b in zip(self.nodes, before):
            self.assertEqual(g.metric('wsgate_redis_messages_dropped_total{reason="too_large"}', 0),
                             b + 1, g.name)

    def test_unsubscribe_stops_delivery(self):
        ch = uniq()
        a1, a2 = self.subscribers(ch, per_node=2, nodes=[self.nodes[0]])
        (b1,) = self.subscribers(ch, nodes=[self.nodes[1]])
        self.assertEqual(self.redis.publish("gw:" + ch, '{"n":0}'), 2)
        for c in (a1, a2, b1):
            self.assertEqual(c.recv_message(timeout=5)["data"], {"n": 0})
        r = a1.unsubscribe(ch)
        self.assertEqual(r.get("type"), "ack", r)
        for i in range(1, 21):
            self.redis.publish("gw:" + ch, json.dumps({"n": i}))
        self.assert_exact_sequence(a2, [{"n": i} for i in range(1, 21)], "a2 (still subscribed)")
        self.assert_exact_sequence(b1, [{"n": i} for i in range(1, 21)], "b1 (other node)")
        # a1 gets nothing: the pong is the first frame after the ack.
        r = a1.ping()
        self.assertEqual(r.get("type"), "pong")
        self.assertEqual(list(a1.messages), [], "unsubscribed client received messages")
        a1.expect_nothing(0.3)
        # A client publish after the ack is not delivered to a1 either.
        self.assertEqual(b1.publish(ch, "from b1").get("type"), "ack")
        self.assertEqual(a2.recv_message(timeout=5)["data"], "from b1")
        self.assertEqual(b1.recv_message(timeout=5)["data"], "from b1")
        a1.expect_nothing(0.3)

    def test_redis_subscription_follows_local_interest(self):
        ch = uniq()
        rch = "gw:" + ch
        numsub = lambda: self.redis.numsub(rch)  # noqa: E731

        def channels():
            return [c.decode() for c in self.redis.command("PUBSUB", "CHANNELS", rch)]
        self.assertEqual(numsub(), 0)
        a1 = self.subscribers(ch, nodes=[self.nodes[0]])[0]
        # The ack means the node's Redis subscription is live: no polling needed.
        self.assertEqual(numsub(), 1)
        self.assertEqual(channels(), [rch])
        a2 = self.subscribers(ch, nodes=[self.nodes[0]])[0]
        self.assertEqual(numsub(), 1, "a second local subscriber must not add a Redis subscription")
        b1 = self.subscribers(ch, nodes=[self.nodes[1]])[0]
        self.assertEqual(numsub(), 2)
        c1 = self.subscribers(ch, nodes=[self.nodes[2]])[0]
        self.assertEqual(numsub(), 3)
        self.assertEqual(a1.unsubscribe(ch).get("type"), "ack")
        time.sleep(0.3)
        self.assertEqual(numsub(), 3, "node A still has a2")
        a2.abort()  # abrupt disconnect of A's last subscriber
        wait_until(lambda: numsub() == 2, T(5), what="node A to UNSUBSCRIBE after disconnect")
        c1.close()  # clean close of C's only subscriber
        wait_until(lambda: numsub() == 1, T(5), what="node C to UNSUBSCRIBE after close")
        self.assertEqual(b1.unsubscribe(ch).get("type"), "ack")
        wait_until(lambda: numsub() == 0, T(5), what="node B to UNSUBSCRIBE after unsubscribe")
        self.assertEqual(channels(), [])
        # Interest can come back.
        self.subscribers(ch, nodes=[self.nodes[1]])
        self.assertEqual(numsub(), 1)

    def test_ack_means_live_for_concurrent_subscribers(self):
        # 20 clients of one node ask for the same new channel at once. Whichever ack is
        # read first, a PUBLISH right after it must already reach the node.
        g = self.nodes[2]
        ch = uniq()
        clients = [self.client(g.port) for _ in range(20)]
        for c in clients:
            c.send_json({"type": "subscribe", "channel": ch, "id": 1})
        published = []
        for i in reversed(range(20)):
            r = clients[i].wait_reply(1, timeout=5)
            self.assertEqual(r.get("type"), "ack", r)
            receivers = self.redis.publish("gw:" + ch, json.dumps({"after_ack_of": i}))
            self.assertEqual(receivers, 1, "ack of client %d came before the Redis subscription" % i)
            published.append(i)
        self.assertEqual(self.redis.publish("gw:" + ch, '"end"'), 1)
        everything = [{"after_ack_of": j} for j in published] + ["end"]
        for i, c in enumerate(clients):
            got = []
            while not got or got[-1] != "end":
                got.append(c.recv_message(timeout=5)["data"])
            # A suffix of the whole sequence (in order, no duplicates) that contains at
            # least every message published after this client's own ack was read.
            self.assertEqual(got, everything[len(everything) - len(got):], "client %d" % i)
            self.assertGreaterEqual(len(got), len(everything) - published.index(i),
                                    "client %d missed messages published after its ack" % i)

    def test_resubscribe_while_unsubscribe_in_flight(self):
        # The last local subscriber leaves (node sends UNSUBSCRIBE) and another client
        # subscribes at once: its ack must still mean "live".
        g = self.nodes[1]
        a = self.client(g.port)
        b = self.client(g.port)
        for rnd in range(30):
            ch = uniq("race")
            self.assertEqual(a.subscribe(ch, id=1).get("type"), "ack")
            a.send_json({"type": "unsubscribe", "channel": ch, "id": 2})
            self.assertEqual(b.subscribe(ch, id=3).get("type"), "ack")
            self.assertEqual(self.redis.publish("gw:" + ch, '{"round":%d}' % rnd), 1,
                             "round %d: b acked but the node is not subscribed" % rnd)
            self.assertEqual(b.recv_message(timeout=5)["data"], {"round": rnd})
            self.assertEqual(a.wait_reply(2, timeout=5).get("type"), "ack")
            self.assertEqual(b.unsubscribe(ch, id=4).get("type"), "ack")
            wait_until(lambda: self.redis.numsub("gw:" + ch) == 0, T(5),
                       what="round %d: UNSUBSCRIBE after the last client left" % rnd)
        self.assertEqual(list(a.messages), [], "a unsubscribed before every publish")

    def test_300_clients_50_messages(self):
        ch = uniq()
        subs = self.subscribers(ch, per_node=100)
        self.assertEqual(len(subs), 300)
        self.assertEqual(self.redis.numsub("gw:" + ch), 3)
        n = 50
        rc = self.redis.client()
        self.addCleanup(rc.close)
        replies = rc.pipeline([("PUBLISH", "gw:" + ch, json.dumps({"n": i})) for i in range(n)]
                              + [("PUBLISH", "gw:" + ch, '{"end":true}')])
        self.assertEqual(replies, [3] * (n + 1))
        expected = [{"n": i} for i in range(n)] + [{"end": True}]
        bad = []
        for idx, c in enumerate(subs):
            try:
                got = data_of(c.recv_messages(n + 1, timeout=10))
            except TimeoutError as e:
                bad.append((idx, str(e)))
                continue
            if got != expected:
                bad.append((idx, got[:5]))
        self.assertEqual(bad, [], "clients with missing/duplicate/out-of-order messages")
        delivered = sum(g.metric("wsgate_messages_delivered_total", 0) for g in self.nodes)
        self.assertGreaterEqual(delivered, 300 * (n + 1))

    def test_client_publish_payload_in_redis_is_the_data_json(self):
        ch = uniq()
        sub = self.redis.client()
        self.addCleanup(sub.close)
        self.assertEqual(sub.command("SUBSCRIBE", "gw:" + ch), [b"subscribe", ("gw:" + ch).encode(), 1])
        pub = self.client(self.nodes[1].port)
        data = {"k": [1, 2.5, "s", None, True], "u": "\u00e9"}
        ack = pub.publish(ch, data)
        self.assertEqual(ack.get("type"), "ack")
        kind, chan, raw = sub.read_reply(timeout=T(5))
        self.assertEqual((kind, chan), (b"message", ("gw:" + ch).encode()))
        # Published with history: an envelope around exactly the data's JSON.
        offset, epoch, payload = parse_envelope(raw)
        self.assertEqual((offset, epoch), (ack["offset"], ack["epoch"]))
        self.assertEqual(json.loads(payload), data)


class MultiWorkerTest(GatewayTestCase):
    def test_workers_share_one_redis_subscription_and_all_deliver(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--workers", "3"], name="workers3")
        ch = uniq()
        subs = []
        for _ in range(60):  # SO_REUSEPORT spreads these over the 3 workers
            c = self.client(gw.port)
            self.assertEqual(c.subscribe(ch).get("type"), "ack")
            subs.append(c)
        self.assertEqual(redis.numsub("gw:" + ch), 1, "one Redis subscription per node")
        m = gw.metrics()
        self.assertEqual(m.get("wsgate_connections"), 60)
        self.assertEqual(m.get("wsgate_subscriptions"), 60)
        self.assertEqual(m.get("wsgate_channels"), 1)
        n = 30
        for i in range(n):
            self.assertEqual(subs[i].publish(ch, {"n": i}).get("type"), "ack")
        self.assertEqual(redis.publish("gw:" + ch, '{"end":true}'), 1)
        expected = [{"n": i} for i in range(n)] + [{"end": True}]
        bad = []
        for idx, c in enumerate(subs):
            got = data_of(c.recv_messages(n + 1, timeout=10))
            if got != expected:
                bad.append((idx, got[:5]))
        self.assertEqual(bad, [])
        for c in subs[:59]:
            c.abort()
        time.sleep(0.3)
        self.assertEqual(redis.numsub("gw:" + ch), 1, "one subscriber left somewhere")
        subs[59].close()
        wait_until(lambda: redis.numsub("gw:" + ch) == 0, T(5),
                   what="UNSUBSCRIBE once the last worker's last client left")
        wait_until(lambda: gw.metrics().get("wsgate_connections") == 0, T(5),
                   what="wsgate_connections == 0")


class ChannelPrefixTest(GatewayTestCase):
    def test_coalescing_and_nagle_lose_nothing(self):
        # --coalesce-ms defers inbox drains and --tcp-nodelay 0 lets Nagle merge writes:
        # both only regroup writes, so every message still arrives once, in order, and
        # acks and pongs still come back.
        redis = self.start_redis()
        a = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--coalesce-ms", "30"], name="coalesce")
        b = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--tcp-nodelay", "0"], name="nagle")
        ch = uniq()
        clients = [self.client(g.port) for g in (a, b, a, b)]
        for i, c in enumerate(clients):
            self.assertEqual(c.subscribe(ch, i + 1), {"type": "ack", "id": i + 1})
        rc = redis.client()
        self.addCleanup(rc.close)
        for start in range(0, 400, 50):
            rc.pipeline([("PUBLISH", "gw:" + ch, str(n)) for n in range(start, start + 50)])
        for c in clients:
            got = [m["data"] for m in c.recv_messages(400, timeout=10)]
            self.assertEqual(got, list(range(400)))
            self.assertEqual(c.ping().get("type"), "pong")
        self.assertEqual(plain(clients[0].publish(ch, "last", 9)), {"type": "ack", "id": 9})
        for c in clients:
            self.assertEqual(c.recv_message(timeout=5)["data"], "last")

    def test_channel_prefix(self):
        redis = self.start_redis()
        default_node = self.start_gateway(redis.port, NO_RATE_LIMIT, name="default-prefix")
        p1 = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--channel-prefix", "app1:"], name="app1-a")
        p2 = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--channel-prefix", "app1:"], name="app1-b")
        ch = uniq()
        subs = []
        for g in (p1, p2):
            c = self.client(g.port)
            self.assertEqual(c.subscribe(ch).get("type"), "ack")
            subs.append(c)
        other = self.client(default_node.port)
        self.assertEqual(other.subscribe(ch).get("type"), "ack")
        self.assertEqual(redis.numsub("app1:" + ch), 2)
        self.assertEqual(redis.numsub("gw:" + ch), 1)
        self.assertEqual(redis.publish("gw:" + ch, '"for gw"'), 1)
        self.assertEqual(redis.publish("app1:" + ch, '"for app1"'), 2)
        for c in subs:
            m = c.recv_message(timeout=5)
            self.assertEqual(m, {"type": "message", "channel": ch, "data": "for app1"})
        self.assertEqual(other.recv_message(timeout=5)["data"], "for gw")
        # A client publish on a prefixed node goes to app1:<ch> only.
        self.assertEqual(subs[0].publish(ch, {"from": "p1"}).get("type"), "ack")
        for c in subs:
            self.assertEqual(c.recv_message(timeout=5)["data"], {"from": "p1"})
        other.expect_nothing(0.5)


if __name__ == "__main__":
    unittest.main()
