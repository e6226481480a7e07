"""Protocol v1 on one node with Redis: replies, ids, every client-reachable error slug,
close 1007, refused paths. A bystander client on the node must keep working throughout
every test. The limits (rate, connections, idle timeout, message size) and the reserved
node channels are in test_protocol_limits.py; the shared assertions in wsgate_protocol.py.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_protocol
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (OP_BINARY, OP_TEXT, ConnectionClosed, ConnectionLost,  # noqa: E402
                            GatewayTestCase, HandshakeError, ProtocolError, T, WSClient,
                            plain, uniq, wait_until)
from wsgate_protocol import ProtocolMixin  # noqa: E402

MAX_FRAME = 4096
MAX_SAFE = 2 ** 53 - 1


class ProtocolTest(ProtocolMixin, GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(
            cls.redis.port,
            ["--max-subscriptions", "3", "--max-frame-bytes", str(MAX_FRAME),
             "--client-rate", "100000", "--client-burst", "100000"], name="proto")
        cls.gw.wait_ready()

    def setUp(self):
        # A second client on the node that must be unaffected by whatever the test does.
        self.bystander_channel = uniq("bystander")
        self.bystander = self.client(self.gw.port)
        self.assert_reply(self.bystander.subscribe(self.bystander_channel, 1), "ack", 1)

    def tearDown(self):
        b = self.bystander
        self.assertTrue(self.gw.running, "gateway died")
        self.assert_alive(b, "bystander")
        payload = json.dumps({"bystander": self.id()})
        self.assertEqual(self.redis.publish("gw:" + self.bystander_channel, payload), 1)
        m = b.recv_message(timeout=5)
        self.assertEqual(m, {"type": "message", "channel": self.bystander_channel,
                             "data": {"bystander": self.id()}})
        self.assertEqual(list(b.inbox), [], "bystander got unexpected frames")

    # ---------------------------------------------------------------- success paths

    def test_ping_pong_with_ids(self):
        c = self.client(self.gw.port)
        for rid in (1, 0, -1, 42, MAX_SAFE, -MAX_SAFE):
            with self.subTest(id=rid):
                self.assert_reply(c.request({"type": "ping", "id": rid}), "pong", rid)

    def test_subscribe_publish_unsubscribe_acks_and_delivery(self):
        c = self.client(self.gw.port)
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 7), "ack", 7)
        self.assert_reply(c.publish(ch, {"text": "hi"}, 8), "ack", 8)
        m = c.recv_message(timeout=5)
        # A client publish is stored with history: its message carries its place.
        self.assertEqual(m["offset"], 1)
        self.assertEqual(plain(m), {"type": "message", "channel": ch, "data": {"text": "hi"}})
        self.assert_reply(c.unsubscribe(ch, 9), "ack", 9)
        self.assert_reply(c.publish(ch, "after", 10), "ack", 10)
        c.expect_nothing(0.5)

    def test_publish_data_values_roundtrip(self):
        c = self.client(self.gw.port)
        pub = self.client(self.gw.port)
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 1), "ack", 1)
        values = [{"a": [1, 2, {"b": None}]}, [1, "two", 3.5], "héllo ✓ \"q\"\n\t",
                  0, -17, 1.5, True, False, None, {}, [], "", {"nested": {"deep": [[[]]]}}]
        for i, v in enumerate(values):
            self.assert_reply(pub.publish(ch, v, 100 + i), "ack", 100 + i)
        got = c.recv_messages(len(values), timeout=5)
        for v, m in zip(values, got):
            self.assertEqual(m.get("type"), "message")
            self.assertEqual(m.get("channel"), ch)
            self.assertIn("data", m)
            self.assertEqual(m["data"], v)
        # The publisher is not subscribed: it gets acks only.
        pub.expect_nothing(0.3)

    def test_publish_with_null_data_is_valid(self):
        c = self.client(self.gw.port)
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 1), "ack", 1)
        self.assert_reply(c.request({"type": "publish", "channel": ch, "data": None, "id": 2}),
                          "ack", 2)
        m = c.recv_message(timeout=5)
        self.assertIn("data", m)
        self.assertIsNone(m["data"])

    def test_requests_without_id_get_no_reply_on_success(self):
        c = self.client(self.gw.port)
        other = self.client(self.gw.port)
        ch = uniq("p")
        c.send_json({"type": "subscribe", "channel": ch})
        wait_until(lambda: self.redis.numsub("gw:" + ch) == 1, T(5),
                   what="subscribe without id to reach Redis")
        self.assert_reply(other.publish(ch, {"n": 1}, 1), "ack", 1)
        self.assertEqual(c.recv_message(timeout=5)["data"], {"n": 1})
        c.send_json({"type": "publish", "channel": ch, "data": {"n": 2}})
        self.assertEqual(c.recv_message(timeout=5)["data"], {"n": 2})
        c.send_json({"type": "unsubscribe", "channel": ch})
        wait_until(lambda: self.redis.numsub("gw:" + ch) == 0, T(5),
                   what="unsubscribe without id to reach Redis")
        self.assertEqual(list(c.inbox), [], "a request without id got a reply")
        c.expect_nothing(0.5)

    def test_ping_without_id_gets_pong_without_id(self):
        # PROTOCOL.md: a ping is always answered; the pong carries no id when the ping had none.
        c = self.client(self.gw.port)
        c.send_json({"type": "ping"})
        self.assertEqual(c.recv_json(timeout=T(2)), {"type": "pong"})
        c.send_json({"type": "subscribe", "channel": uniq("p")})  # no id: no ack on success
        c.expect_nothing(0.5)
        self.assert_alive(c)

    def test_idempotent_subscribe_and_unsubscribe(self):
        c = self.client(self.gw.port)
        pub = self.client(self.gw.port)
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 1), "ack", 1)
        self.assert_reply(c.subscribe(ch, 2), "ack", 2)
        self.assertEqual(self.redis.numsub("gw:" + ch), 1)
        self.assert_reply(pub.publish(ch, "x", 1), "ack", 1)
        self.assert_reply(pub.publish(ch, "end", 2), "ack", 2)
        got = c.recv_messages(2, timeout=5)
        self.assertEqual([m["data"] for m in got], ["x", "end"],
                         "double subscribe must not duplicate delivery")
        self.assert_reply(c.unsubscribe(ch, 3), "ack", 3)
        self.assert_reply(c.unsubscribe(ch, 4), "ack", 4)
        self.assert_reply(c.unsubscribe(uniq("never"), 5), "ack", 5)
        self.assert_reply(pub.publish(ch, "after", 3), "ack", 3)
        c.expect_nothing(0.5)
        # A later subscribe works again (the double unsubscribe broke nothing).
        self.assert_reply(c.subscribe(ch, 6), "ack", 6)
        self.assert_reply(pub.publish(ch, "again", 4), "ack", 4)
        self.assertEqual(c.recv_message(timeout=5)["data"], "again")

    def test_fragmented_request_and_split_utf8_are_reassembled(self):
        c = self.client(self.gw.port)
        c.send_fragmented('{"type":"ping","id":77}', [3, 5, 4])
        self.assert_reply(c.recv_json(timeout=5), "pong", 77)
        # A control frame between fragments is allowed (RFC 6455 5.4).
        c.send_fragmented('{"type":"ping","id":78}', [10], ping_between=True)
        self.assert_reply(c.recv_json(timeout=5), "pong", 78)
        # A valid 2-byte UTF-8 character split between two fragments is still valid.
        ch = uniq("p")
        self.assert_reply(c.subscribe(ch, 79), "ack", 79)
        text = json.dumps({"type": "publish", "channel": ch, "data": "é", "id": 80},
                          ensure_ascii=False).encode()
        cut = text.index("é".encode()) + 1
        c.send_fragmented(text, [cut])
        self.assert_reply(c.wait_reply(80, timeout=5), "ack", 80)
        self.assertEqual(c.recv_message(timeout=5)["data"], "é")

    # ---------------------------------------------------------------- error slugs

    def test_bad_json(self):
        c = self.client(self.gw.port)
        for text in ["{", "not json", '{"type":"ping","id":1,}', '{"type":"ping","id":1',
                     "", '{"type":"ping","id":2} x', "{}{}", "{'type':'ping'}"]:
            with self.subTest(text=text):
                self.send_bad(c, text, "bad_json", None)
        m = self.gw.metrics()
        self.assertGreaterEqual(m.get('wsgate_client_errors_total{code="bad_json"}', 0), 8)

    def test_bad_request_not_an_object(self):
        c = self.client(self.gw.port)
        for text in ["[]", "[1,2]", '"ping"', "42", "null", "true"]:
            with self.subTest(text=text):
                self.send_bad(c, text, "bad_request", None)

    def test_bad_request_type_field(self):
        c = self.client(self.gw.port)
        cases = [({"id": 5}, 5), ({"type": 5, "id": 6}, 6), ({"type": None, "id": 7}, 7),
                 ({"type": ["ping"], "id": 8}, 8), ({"channel": "a"}, None)]
        for obj, rid in cases:
            with self.subTest(obj=obj):
                self.send_bad(c, obj, "bad_request", rid)

    def test_bad_request_unusable_id_gets_error_without_id(self):
        c = self.client(self.gw.port)
        texts = ['{"type":"ping","id":"7"}', '{"type":"ping","id":1.5}',
                 '{"type":"ping","id":9007199254740992}', '{"type":"ping","id":-9007199254740992}',
                 '{"type":"ping","id":18446744073709551616}', '{"type":"ping","id":true}',
                 '{"type":"ping","id":null}', '{"type":"ping","id":[1]}', '{"type":"ping","id":{}}',
                 # an unusable id wins over other errors
                 '{"type":"nope","id":"x"}', '{"type":"subscribe","channel":"a b","id":"x"}']
        for text in texts:
            with self.subTest(text=text):
                self.send_bad(c, text, "bad_request", None)

    def test_bad_request_missing_or_wrong_fields(self):
        c = self.client(self.gw.port)
        cases = [
            {"type": "subscribe", "id": 8},
            {"type": "unsubscribe", "id": 9},
            {"type": "publish", "data": 1, "id": 10},
            {"type": "subscribe", "channel": 5, "id": 11},
            {"type": "subscribe", "channel": None, "id": 12},
            {"type": "subscribe", "channel": ["a"], "id": 13},
            {"type": "unsubscribe", "channel": {"a": 1}, "id": 14},
            {"type": "publish", "channel": 1.5, "data": 1, "id": 15},
            {"type": "publish", "channel": "ok", "id": 16},  # publish without data
        ]
        for obj in cases:
            with self.subTest(obj=obj):
                self.send_bad(c, obj, "bad_request", obj["id"])
        # Without id the same errors come back without id.
        self.send_bad(c, {"type": "subscribe"}, "bad_request", None)
        self.send_bad(c, {"type": "publish", "channel": "ok"}, "bad_request", None)

    def test_repeated_keys_are_refused(self):
        # Last-wins let one request show a reserved channel to whoever read the first key
        # and act on the second (issue 15 finding 8).
        c = self.client(self.gw.port)
        ch = uniq("dup")
        self.assert_reply(c.subscribe(ch, 1), "ack", 1)
        for text, rid in [
            ('{"type":"publish","channel":"__wsgate:hb:x","channel":"%s","data":1,"id":21}' % ch, 21),
            ('{"type":"publish","channel":"%s","data":{"a":1,"a":2},"id":22}' % ch, 22),
            ('{"type":"ping","type":"subscribe","channel":"%s","id":23}' % ch, 23),
        ]:
            with self.subTest(text=text):
                self.send_bad(c, text, "bad_request", rid)
        self.assert_reply(c.publish(ch, {"a": 1}, id=24), "ack", 24)
        self.assertEqual(c.recv_message(timeout=5)["data"], {"a": 1})

    def test_unknown_type(self):
        c = self.client(self.gw.port)
        for obj, rid in [({"type": "subscrib", "id": 11}, 11), ({"type": "Subscribe", "id": 12}, 12),
                         ({"type": "", "id": 13}, 13), ({"type": "ack", "id": 14}, 14),
                         ({"type": "hello"}, None)]:
            with self.subTest(obj=obj):
                self.send_bad(c, obj, "unknown_type", rid)

    def test_bad_channel(self):
        c = self.client(self.gw.port)
        bad = ["", "a" * 129, "a b", " a", "a*", "a?", "a[", "a]", "a\\b", "a\x00b", "café",
               "ch✓", "a\tb", "a\nb", "a\x7f", "a,b", "a#b", "a+b", "a%b", "a\"b", "{a}"]
        rid = 100
        for ch in bad:
            for rtype in ("subscribe", "unsubscribe", "publish"):
                rid += 1
                obj = {"type": rtype, "channel": ch, "id": rid}
                if rtype == "publish":
                    obj["data"] = 1
                with self.subTest(channel=ch, type=rtype):
                    self.send_bad(c, obj, "bad_channel", rid, label="%s %r" % (rtype, ch))
        self.assertEqual(list(c.messages), [])

    def test_valid_channel_edges(self):
        c = self.client(self.gw.port)
        for ch in ["a" * 128, "A-Z_az09-:.@/=", "x", "9"]:
            with self.subTest(channel=ch):
                self.assert_reply(c.subscribe(ch, 1), "ack", 1)
                self.assert_reply(c.publish(ch, "v", 2), "ack", 2)
                m = c.recv_message(timeout=5)
                self.assertEqual(m["channel"], ch)
                self.assertEqual(m["data"], "v")
                self.assert_reply(c.unsubscribe(ch, 3), "ack", 3)

    def test_too_many_subscriptions(self):
        c = self.client(self.gw.port)
        chans = [uniq("p") for _ in range(5)]
        for i, ch in enumerate(chans[:3]):
            self.assert_reply(c.subscribe(ch, i + 1), "ack", i + 1)
        self.assert_error(c.subscribe(chans[3], 10), "too_many_subscriptions", 10)
        self.assert_alive(c)
        # Re-subscribing a held channel is not a new subscription.
        self.assert_reply(c.subscribe(chans[0], 11), "ack", 11)
        # The refused channel got no subscription: nothing is delivered for it.
        self.assertEqual(self.redis.numsub("gw:" + chans[3]), 0)
        self.assert_error(c.request({"type": "subscribe", "channel": chans[4], "id": 12}),
                          "too_many_subscriptions", 12)
        self.assert_reply(c.unsubscribe(chans[1], 13), "ack", 13)
        self.assert_reply(c.subscribe(chans[3], 14), "ack", 14)
        # Other clients have their own budget.
        d = self.client(self.gw.port)
        for i, ch in enumerate(chans[:3]):
            self.assert_reply(d.subscribe(ch, i + 1), "ack", i + 1)

    def test_message_too_large(self):
        c = self.client(self.gw.port)
        base = '{"type":"ping","id":31}'
        exact = base + " " * (MAX_FRAME - len(base))
        self.assertEqual(len(exact), MAX_FRAME)
        c.send_text(exact)
        self.assert_reply(c.recv_json(timeout=5), "pong", 31)
        cases = [("limit+1", (base + " " * (MAX_FRAME + 1 - len(base))), None),
                 ("10000 bytes", '{"type":"publish","channel":"x","id":32,"data":"%s"}' % ("y" * 9950), None),
                 ("100000 bytes", '{"type":"ping","id":33,"pad":"%s"}' % ("z" * 100000), None),
                 ("fragmented 3x2000", '{"type":"ping","id":34,"pad":"%s"}' % ("w" * 5970), [2000, 2000]),
                 ("fragmented 10x1000", '{"type":"ping","id":35,"pad":"%s"}' % ("v" * 9970), [1000] * 9)]
        for label, text, chunks in cases:
            with self.subTest(case=label):
                if chunks:
                    c.send_fragmented(text, chunks)
                else:
                    c.send_text(text)
                r = c.recv_json(timeout=5)
                self.assertEqual(r.get("type"), "error", r)
                self.assertEqual(r.get("code"), "message_too_large", r)
                self.assert_alive(c, label)  # also: exactly one error per message
        # A fragmented message under the limit is fine.
        c.send_fragmented('{"type":"ping","id":36,"pad":"%s"}' % ("u" * 3000), [1000, 1000])
        self.assert_reply(c.recv_json(timeout=5), "pong", 36)

    def test_binary_not_supported(self):
        c = self.client(self.gw.port)
        c.send_binary(b'{"type":"ping","id":41}')
        r = c.recv_json(timeout=5)
        self.assertEqual(r.get("type"), "error", r)
        self.assertEqual(r.get("code"), "binary_not_supported", r)
        self.assert_alive(c)
        c.send_binary(b"\x00\x01\x02\xff")
        r = c.recv_json(timeout=5)
        self.assertEqual(r.get("code"), "binary_not_supported", r)
        self.assert_alive(c)
        c.send_fragmented(b"\x01" * 300, [100, 100], opcode=OP_BINARY)
        r = c.recv_json(timeout=5)
        self.assertEqual(r.get("code"), "binary_not_supported", r)
        self.assert_alive(c, "after fragmented binary")

    def test_invalid_utf8_closes_1007_and_node_keeps_serving(self):
        cases = [("0xff", b'{"type":"ping","id":1,"x":"\xff"}', None),
                 ("overlong", b'{"type":"ping","id":1,"x":"\xc0\xaf"}', None),
                 ("surrogate", b'{"type":"ping","id":1,"x":"\xed\xa0\x80"}', None),
                 ("truncated", b'{"type":"ping","id":1,"x":"\xe2\x82', None),
                 ("bad byte outside strings", b'{"type":"ping","id":1}\xfe', None),
                 ("split over fragments", b'{"type":"ping","id":1,"x":"\xc3\x28"}', [28])]
        for label, payload, chunks in cases:
            with self.subTest(case=label):
                c = self.client(self.gw.port)
                self.assert_alive(c)
                if chunks:
                    c.send_fragmented(payload, chunks)
                else:
                    c.send_frame(OP_TEXT, payload)
                code, reason = c.expect_close(timeout=5)
                self.assertEqual(code, 1007, "close code for %s (reason %r)" % (label, reason))
                self.assertEqual(list(c.inbox), [], "no reply expected before the close")
                fresh = self.client(self.gw.port)
                self.assert_alive(fresh, "new client after 1007")
                fresh.close()

    def test_client_close_is_echoed(self):
        c = self.client(self.gw.port)
        self.assert_alive(c)
        c.send_close(1000, "bye")
        self.assertEqual(c.expect_close(timeout=5)[0], 1000, "server must echo the close code")
        c2 = self.client(self.gw.port)
        self.assert_alive(c2)
        c2.send_close(4321, "custom")
        self.assertEqual(c2.expect_close(timeout=5)[0], 4321, "server must echo the close code")

    def test_upgrade_to_other_path_is_refused(self):
        for path in ["/", "/other", "/healthz", "/metrics", "/wsx", "/ws/extra"]:
            with self.subTest(path=path):
                with self.assertRaises((HandshakeError, ConnectionLost, ConnectionResetError)):
                    c = WSClient(self.gw.port, path=path, timeout=3)
                    c.abort()
        c = self.client(self.gw.port, path="/ws")
        self.assert_alive(c)

    def test_unmasked_client_frame_node_survives(self):
        c = self.client(self.gw.port)
        c.send_text('{"type":"ping","id":51}', mask=False)
        try:
            r = c.recv_json(timeout=2)
            outcome = "answered %r" % (r,)
        except ConnectionClosed as e:
            outcome = "closed with %r %r" % (e.code, e.reason)
        except (ConnectionLost, TimeoutError, ProtocolError) as e:
            outcome = "no answer: %r" % (e,)
        sys.stderr.write("\n[observed] unmasked client frame: %s\n" % outcome)
        fresh = self.client(self.gw.port)
        self.assert_alive(fresh, "after unmasked frame")
        self.assertTrue(self.gw.running)

    def test_errors_keep_request_ids_after_many_bad_inputs(self):
        # Interleave good and bad requests on one connection: every id gets exactly one
        # reply, in order, and the connection never closes.
        c = self.client(self.gw.port)
        ch = uniq("p")
        plan = [({"type": "subscribe", "channel": ch, "id": 1}, "ack"),
                ({"type": "bogus", "id": 2}, "unknown_type"),
                ({"type": "publish", "channel": "a b", "data": 1, "id": 3}, "bad_channel"),
                ({"type": "ping", "id": 4}, "pong"),
                ({"type": "publish", "channel": ch, "id": 5}, "bad_request"),
                ({"type": "unsubscribe", "channel": ch, "id": 6}, "ack")]
        for obj, want in plan:
            r = c.request(obj, timeout=5)
            if want in ("ack", "pong"):
                self.assert_reply(r, want, obj["id"])
            else:
                self.assert_error(r, want, obj["id"])
        self.assertEqual(list(c.inbox), [])


if __name__ == "__main__":
    unittest.main()
