"""One client that never reads is evicted with close 4008 while a healthy client on the
same node loses nothing.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_slow_consumer
"""

import json
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import ConnectionLost, GatewayTestCase, T, wait_until  # noqa: E402

SHED = 'wsgate_clients_shed_total{reason="slow_consumer"}'


class SlowConsumerTest(GatewayTestCase):
    def run_scenario(self, total, pad, batch, extra=()):
        redis = self.start_redis()
        # The node insists that one queue can hold the largest message (+512 B).
        gw = self.start_gateway(redis.port, ["--queue-max-messages", "64",
                                             "--queue-max-bytes", "65536",
                                             "--max-message-bytes", "16384"] + list(extra))
        ch = "slow:%s" % uuid.uuid4().hex[:8]
        slow = self.client(gw.port, rcvbuf=4096)
        self.assertEqual(slow.subscribe(ch).get("type"), "ack")
        healthy = self.client(gw.port)
        self.assertEqual(healthy.subscribe(ch).get("type"), "ack")
        self.assertEqual(gw.metric("wsgate_connections"), 2)
        self.assertEqual(gw.metric(SHED, 0), 0)

        # From here on `slow` is never read until the end. The publisher waits for the
        # healthy client between batches, so the healthy client is never more than one
        # batch behind and must never overflow its own queue.
        rc = redis.client()
        self.addCleanup(rc.close)
        padding = "x" * pad
        got = []
        for start in range(0, total, batch):
            end = min(total, start + batch)
            replies = rc.pipeline([("PUBLISH", "gw:" + ch, json.dumps({"n": i, "pad": padding}))
                                   for i in range(start, end)])
            for r in replies:
                self.assertIn(r, (1,), "the node must hold exactly one Redis subscription")
            try:
                got += [m["data"]["n"] for m in healthy.recv_messages(end - start, timeout=10)]
            except Exception:
                self.fail("healthy client stalled after %d messages (closed: %r %r)"
                          % (len(got), healthy.close_code, healthy.close_reason))
        self.assertEqual(got, list(range(total)), "healthy client lost or reordered messages")
        self.assertEqual(redis.publish("gw:" + ch, '"end"'), 1)
        self.assertEqual(healthy.recv_message(timeout=5)["data"], "end")

        # The slow client was evicted: it sees a prefix of the stream, then close 4008.
        try:
            code, reason = slow.expect_close(timeout=10)
        except TimeoutError:
            self.fail("the slow client was never closed (it read %d of %d messages, then "
                      "nothing for 10 s)" % (len(slow.messages), total))
        except ConnectionLost as e:
            self.fail("the slow client's connection ended without a close frame after %d "
                      "messages: %s" % (len(slow.messages), e))
        seen = [m["data"]["n"] for m in slow.messages if isinstance(m.get("data"), dict)]
        sys.stderr.write("\n[observed] slow client read %d of %d messages, then close %r %r\n"
                         % (len(seen), total, code, reason))
        self.assertEqual(seen, list(range(len(seen))), "slow client must see a prefix, in order")
        self.assertLess(len(seen), total, "slow client cannot have received everything")
        self.assertEqual((code, reason), (4008, "slow consumer"))

        wait_until(lambda: gw.metric("wsgate_connections") == 1, T(5),
                   what="wsgate_connections == 1 after the eviction")
        m = gw.metrics()
        self.assertEqual(m.get(SHED), 1, SHED)
        wait_until(lambda: gw.metric("wsgate_outbound_queue_bytes") == 0, T(5),
                   what="wsgate_outbound_queue_bytes == 0 once the healthy client caught up")
        # No frame is left alive once every queue is empty (the metric is optional).
        wait_until(lambda: gw.metrics().get("wsgate_frames_live", 0) == 0, T(5),
                   what="wsgate_frames_live == 0")
        # The healthy client is still subscribed and serviceable.
        self.assertEqual(healthy.ping().get("type"), "pong")
        self.assertEqual(redis.publish("gw:" + ch, '"after"'), 1)
        self.assertEqual(healthy.recv_message(timeout=5)["data"], "after")
        self.assertEqual(gw.terminate(), 0)

    def test_slow_consumer_evicted_by_bytes(self):
        # ~1 KB messages: --queue-max-bytes 65536 is the limit hit first.
        self.run_scenario(total=3000, pad=1000, batch=20)

    def test_slow_consumer_evicted_by_count(self):
        # ~100 B messages: --queue-max-messages 64 is the limit hit first, once the
        # kernel buffers are full. A client with a backlog gets up to 64 KiB per write,
        # so the stream must be several MB (here ~6 MB) to outgrow those buffers. A batch
        # arrives at the healthy client's queue in one burst: keep it under 64 messages.
        self.run_scenario(total=60000, pad=60, batch=50)

    def test_socket_sndbuf_caps_what_the_kernel_absorbs(self):
        # 400 messages of ~1 KB (~400 KB) fit in an autotuned kernel send buffer, so
        # without a cap the slow client would never be shed. With --socket-sndbuf 16384
        # the kernel holds only a few KB and the node's own 64 KiB queue overflows.
        self.run_scenario(total=400, pad=1000, batch=20, extra=["--socket-sndbuf", "16384"])


if __name__ == "__main__":
    unittest.main()
