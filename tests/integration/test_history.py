"""History, offsets and recovery (docs/PROTOCOL.md, "History and recovery") against real
redis-server and wsgate processes. Every client checks the exact sequence of offsets and
payloads it ends with: 1..N once each, in order, whatever the fault was.

- a slow client shed with 4008 reconnects with `since` and ends with the full sequence
- a node SIGKILLed mid-stream: its clients reconnect to another node with `since`
- CLIENT KILL TYPE pubsub, CLIENT PAUSE 4000 ALL and Redis SIGSTOP for 5 s while a
  backend publishes through the function at a steady rate: clients that never reconnect
  still end with the full sequence (node-side repair, counted in the metrics)
- Redis restarted without persistence: recovered:false and a new epoch
- history trimmed past the client's offset: recovered:false
- three nodes publishing to one channel at once: one order everywhere, no duplicates
- 1,000 clients recovering 100 missed messages each at once
- the history request, the position-only subscribe, the gap notice

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_history
"""

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, Publisher, T, fcall_publish,  # noqa: E402
                            fn_keys, uniq, wait_until)


class Tracker:
    """What one client has of one channel: every message's (offset, n), and the position
    to recover from."""

    def __init__(self, client, channel):
        self.c, self.channel = client, channel
        self.got = []  # (offset, n)
        self.epoch = None
        self.offset = 0

    def take(self, msgs):
        for m in msgs:
            if m.get("channel") != self.channel:
                continue
            self.got.append((m["offset"], m["data"]["n"]))
            self.epoch, self.offset = m["epoch"], m["offset"]

    def drain(self, until_offset, timeout):
        """Reads until a message with until_offset arrived (or timeout)."""
        self.take(list(self.c.messages))
        self.c.messages.clear()
        deadline = time.monotonic() + T(timeout)
        while self.offset < until_offset and time.monotonic() < deadline:
            try:
                self.take([self.c.recv_message(timeout=max(0.05, deadline - time.monotonic()))])
            except TimeoutError:
                break

    def subscribe(self, recover=True):
        req = {"type": "subscribe", "channel": self.channel}
        if self.epoch is not None:
            req["since"] = {"offset": self.offset, "epoch": self.epoch}
        elif recover:
            req["recover"] = True
        ack = self.c.request(req, timeout=10)
        if ack.get("type") == "ack" and "epoch" in ack and self.epoch is None:
            self.epoch, self.offset = ack["epoch"], ack["offset"]
        return ack


class HistoryCase(GatewayTestCase):
    def node(self, redis, *extra, name="gw"):
        return self.start_gateway(redis.port, NO_RATE_LIMIT + list(extra), name=name)

    def assert_full(self, tracker, n, label):
        want = [(i, i) for i in range(1, n + 1)]
        self.assertEqual(tracker.got, want, "%s: got %d messages, first differences: %r" % (
            label, len(tracker.got), [(a, b) for a, b in zip(tracker.got, want) if a != b][:5]))


class RecoveryOnReconnectTest(HistoryCase):
    def test_shed_client_recovers_exactly(self):
        redis = self.start_redis()
        # A small send buffer keeps the kernel from hiding the slow reader for long; the
        # healthy client's queue holds three seconds of traffic.
        gw = self.node(redis, "--queue-max-messages", "1024", "--queue-max-bytes", "4194304",
                       "--max-message-bytes", "16384", "--socket-sndbuf", "32768",
                       "--recovery-max-messages", "2000")
        ch = uniq("shed")
        slow = Tracker(self.client(gw.port, rcvbuf=4096), ch)
        healthy = Tracker(self.client(gw.port), ch)
        self.assertEqual(slow.subscribe().get("type"), "ack")
        self.assertEqual(healthy.subscribe().get("type"), "ack")
        self.assertEqual((slow.offset, slow.epoch), (0, ""))  # no history yet
        total = 1500
        pub = Publisher(redis, ch, total, rate=300, pad=4000, history="5000")
        pub.start()
        # The healthy client reads as it goes; the slow one reads nothing until the node
        # sheds it (then it reads up to the close frame, within the close grace).
        shed = 'wsgate_clients_shed_total{reason="slow_consumer"}'
        deadline = time.monotonic() + T(30)
        while gw.metric(shed) == 0 and time.monotonic() < deadline:
            healthy.drain(len(pub.offsets), 0.1)
        self.assertEqual(gw.metric(shed), 1, "the slow client must be shed")
        code, _ = slow.c.expect_close(timeout=10)
        self.assertEqual(code, 4008)
        while pub.is_alive() and time.monotonic() < deadline:
            healthy.drain(len(pub.offsets), 0.1)
        pub.join(T(30))
        slow.take(list(slow.c.messages))
        shed_at = slow.offset
        self.assertEqual(len(pub.offsets), total)
        # Reconnect with since: exactly what it missed, then live.
        slow.c = self.client(gw.port)
        ack = slow.subscribe()
        self.assertEqual((ack["type"], ack["recovered"]), ("ack", True), ack)
        self.assertEqual(ack["offset"], total)
        slow.drain(total, 10)
        healthy.drain(total, 10)
        sys.stderr.write("\n[observed] shed after %d messages; recovered %d\n"
                         % (shed_at, total - shed_at))
        self.assert_full(slow, total, "shed client")
        self.assert_full(healthy, total, "healthy client")
        self.assertEqual(gw.metric('wsgate_recoveries_total{result="recovered"}'), 1)

    def test_node_killed_clients_recover_on_another_node(self):
        redis = self.start_redis()
        a, b = self.node(redis, name="a"), self.node(redis, name="b")
        ch = uniq("kill")
        clients = [Tracker(self.client(a.port), ch) for _ in range(5)]
        other = Tracker(self.client(b.port), ch)
        for t in clients + [other]:
            self.assertEqual(t.subscribe().get("type"), "ack")
        total = 400
        pub = Publisher(redis, ch, total, rate=200)
        pub.start()
        wait_until(lambda: len(pub.offsets) >= 150, T(10), what="150 published")
        for t in clients:
            t.drain(100, 5)
        a.kill()
        time.sleep(0.3)
        for t in clients:
            t.take(list(t.c.messages))
            t.c = self.client(b.port)
            ack = t.subscribe()
            self.assertTrue(ack.get("recovered"), ack)
        pub.join(T(30))
        for t in clients + [other]:
            t.drain(total, 10)
            self.assert_full(t, total, "client of the killed node")

    def test_drained_node_clients_recover(self):
        redis = self.start_redis()
        a, b = self.node(redis, "--drain-timeout", "2", name="a"), self.node(redis, name="b")
        ch = uniq("drain")
        t = Tracker(self.client(a.port), ch)
        self.assertEqual(t.subscribe().get("type"), "ack")
        pub = Publisher(redis, ch, 300, rate=200)
        pub.start()
        wait_until(lambda: len(pub.offsets) >= 100, T(10), what="100 published")
        a.send_signal(15)
        code, _ = t.c.expect_close(timeout=10)
        self.assertEqual(code, 1001)
        self.assertEqual(a.wait_exit(T(10)), 0)
        t.take(list(t.c.messages))
        t.c = self.client(b.port)
        self.assertTrue(t.subscribe().get("recovered"))
        pub.join(T(30))
        t.drain(300, 10)
        self.assert_full(t, 300, "drained client")


class NodeRepairTest(HistoryCase):
    """Faults between a node and Redis: clients never reconnect, and still end with the
    full sequence because the node reads back what it missed."""

    def run_fault(self, fault, total=600, rate=200, **kw):
        redis = self.start_redis()
        gws = [self.node(redis, name="n%d" % i) for i in range(2)]
        ch = uniq("fault")
        ts = [Tracker(self.client(g.port), ch) for g in gws for _ in range(2)]
        for t in ts:
            self.assertEqual(t.subscribe().get("type"), "ack")
        pub = Publisher(redis, ch, total, rate)
        pub.start()
        wait_until(lambda: len(pub.offsets) >= 100, T(10), what="100 published")
        fault(redis, gws)
        pub.join(T(40))
        self.assertEqual(len(pub.offsets), total, "the publisher must finish")
        for t in ts:
            t.drain(total, 15)
        for i, t in enumerate(ts):
            self.assert_full(t, total, "client %d" % i)
        for t in ts:
            self.assertIsNone(t.c.close_code, "no client may be dropped")
        return redis, gws

    def test_client_kill_pubsub(self):
        def fault(redis, gws):
            redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        redis, gws = self.run_fault(fault)
        repaired = sum(g.metric("wsgate_history_messages_repaired_total", 0) for g in gws)
        gaps = sum(g.metric("wsgate_history_gaps_total", 0) + 0 for g in gws)
        sys.stderr.write("\n[observed] CLIENT KILL TYPE pubsub: %d messages repaired, %d gaps "
                         "read back\n" % (repaired, gaps))
        self.assertGreater(repaired, 0, "the repair metric must count what was read back")
        self.assertEqual(sum(g.metric("wsgate_history_messages_lost_total", 0) for g in gws), 0)

    def test_client_pause_all(self):
        def fault(redis, gws):
            redis.command("CLIENT", "PAUSE", "4000", "ALL")
            time.sleep(4.5)
        self.run_fault(fault)

    def test_redis_sigstop(self):
        def fault(redis, gws):
            redis.pause()
            time.sleep(5)
            redis.resume()
        self.run_fault(fault)


class EpochAndTrimTest(HistoryCase):
    def test_redis_restart_without_persistence_gives_new_epoch(self):
        redis = self.start_redis()
        gw = self.node(redis)
        ch = uniq("epoch")
        rc = redis.client()
        self.addCleanup(rc.close)
        t = Tracker(self.client(gw.port), ch)
        self.assertEqual(t.subscribe().get("type"), "ack")
        for i in range(1, 6):
            fcall_publish(rc, "gw:" + ch, json.dumps({"n": i}))
        t.drain(5, 5)
        old_epoch = t.epoch
        t.c.abort()
        rc.close()
        redis.restart()
        gw.wait_ready(T(10))
        rc2 = redis.client()
        self.addCleanup(rc2.close)
        for i in range(1, 4):
            fcall_publish(rc2, "gw:" + ch, json.dumps({"n": 100 + i}))
        t.c = self.client(gw.port)
        ack = t.subscribe()
        self.assertEqual(ack["recovered"], False, ack)
        self.assertNotEqual(ack["epoch"], old_epoch)
        self.assertEqual(ack["offset"], 3)
        fcall_publish(rc2, "gw:" + ch, json.dumps({"n": 104}))
        m = t.c.recv_message(timeout=5)
        # Live from the new position on, never an old offset applied to the new stream.
        self.assertEqual((m["offset"], m["epoch"], m["data"]["n"]), (4, ack["epoch"], 104))

    def test_trimmed_history_gives_recovered_false(self):
        redis = self.start_redis()
        gw = self.node(redis, "--history-size", "10")
        redis.command("CONFIG", "SET", "stream-node-max-entries", "5")
        ch = uniq("trim")
        t = Tracker(self.client(gw.port), ch)
        self.assertEqual(t.subscribe().get("type"), "ack")
        self.assertEqual(t.c.publish(ch, {"n": 1}).get("offset"), 1)
        t.drain(1, 5)
        t.c.abort()
        pub = self.client(gw.port)
        for i in range(2, 61):  # the stream keeps about the last 10
            self.assertEqual(pub.publish(ch, {"n": i})["offset"], i)
        t.c = self.client(gw.port)
        ack = t.subscribe()
        self.assertEqual((ack["recovered"], ack["offset"]), (False, 60), ack)
        t.c.expect_nothing(0.3)  # nothing replayed
        # Within what is kept, recovery works.
        t.offset = 55
        t.c = self.client(gw.port)
        ack = t.subscribe()
        self.assertTrue(ack["recovered"], ack)
        self.assertEqual([m["offset"] for m in t.c.recv_messages(5, timeout=5)], [56, 57, 58, 59, 60])


class OrderTest(HistoryCase):
    def test_three_nodes_publishing_concurrently_share_one_order(self):
        redis = self.start_redis()
        gws = [self.node(redis, name="n%d" % i) for i in range(3)]
        ch = uniq("order")
        readers = [Tracker(self.client(g.port), ch) for g in gws]
        for r in readers:
            self.assertEqual(r.subscribe().get("type"), "ack")
        per = 150
        acks = [[] for _ in gws]

        def publish(k):
            c = self.client(gws[k].port)
            for i in range(per):
                c.send_json({"type": "publish", "channel": ch, "data": {"n": k * 1000 + i},
                             "id": i + 1})
            acks[k] = [c.wait_reply(i + 1, timeout=10) for i in range(per)]

        threads = [threading.Thread(target=publish, args=(k,)) for k in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(T(30))
        seqs = []
        for r in readers:
            msgs = r.c.recv_messages(3 * per, timeout=10)
            seqs.append([(m["offset"], m["data"]["n"]) for m in msgs])
        offsets = [o for o, _ in seqs[0]]
        self.assertEqual(offsets, list(range(1, 3 * per + 1)), "strictly increasing, no gap")
        self.assertEqual(seqs[1], seqs[0])
        self.assertEqual(seqs[2], seqs[0])
        # Each publisher's acks carry the offsets its messages got.
        by_n = {n: o for o, n in seqs[0]}
        for k in range(3):
            self.assertEqual([a["offset"] for a in acks[k]], [by_n[k * 1000 + i] for i in range(per)])


class MassRecoveryTest(HistoryCase):
    def test_thousand_clients_recover_at_once(self):
        redis = self.start_redis()
        gw = self.node(redis)
        ch = uniq("mass")
        rc = redis.client()
        self.addCleanup(rc.close)
        fcall_publish(rc, "gw:" + ch, json.dumps({"n": 0}))
        epoch = rc.command("HGET", fn_keys("gw:" + ch)[0], "epoch").decode()
        for i in range(1, 101):
            fcall_publish(rc, "gw:" + ch, json.dumps({"n": i}))
        n = 1000
        clients = [self.client(gw.port) for _ in range(n)]
        start = time.monotonic()
        for i, c in enumerate(clients):
            c.send_json({"type": "subscribe", "channel": ch, "id": 1,
                         "since": {"offset": 1, "epoch": epoch}})
        recovered = 0
        for c in clients:
            ack = c.wait_reply(1, timeout=30)
            msgs = c.recv_messages(100 if ack.get("recovered") else 0, timeout=30)
            if ack.get("recovered"):
                self.assertEqual([m["offset"] for m in msgs], list(range(2, 102)))
                recovered += 1
        took = time.monotonic() - start
        ping = clients[0].ping(timeout=5)
        sys.stderr.write("\n[observed] %d of %d clients recovered 100 messages each in %.2fs\n"
                         % (recovered, n, took))
        self.assertEqual(ping.get("type"), "pong", "the node stays responsive")
        self.assertEqual(recovered, n)

    def test_over_max_recoveries_answers_recovered_false(self):
        redis = self.start_redis()
        gw = self.node(redis, "--max-recoveries", "1", "--recovery-max-messages", "5")
        ch = uniq("cap")
        pub = self.client(gw.port)
        for i in range(1, 21):
            pub.publish(ch, {"n": i})
        epoch = pub.publish(ch, {"n": 21})["epoch"]
        # More missed than --recovery-max-messages: recovered false, the position given.
        c = self.client(gw.port)
        ack = c.request({"type": "subscribe", "channel": ch,
                         "since": {"offset": 10, "epoch": epoch}})
        self.assertEqual((ack["recovered"], ack["offset"], ack["epoch"]), (False, 21, epoch))
        c.expect_nothing(0.3)
        self.assertEqual(gw.metric('wsgate_recoveries_total{result="missed"}'), 1)


class RequestsTest(HistoryCase):
    def test_history_request_and_position_subscribe(self):
        redis = self.start_redis()
        gw = self.node(redis)
        ch = uniq("hist")
        c = self.client(gw.port)
        empty = c.request({"type": "history", "channel": ch, "limit": 5})
        self.assertEqual((empty["type"], empty["epoch"], empty["offset"], empty["messages"]),
                         ("history", "", 0, []))
        for i in range(1, 11):
            c.publish(ch, {"n": i})
        h = c.request({"type": "history", "channel": ch, "limit": 3})
        self.assertEqual([(m["offset"], m["data"]) for m in h["messages"]],
                         [(8, {"n": 8}), (9, {"n": 9}), (10, {"n": 10})])
        self.assertEqual((h["offset"], h["complete"]), (10, True))
        h = c.request({"type": "history", "channel": ch, "limit": 2,
                       "since": {"offset": 4, "epoch": h["epoch"]}})
        self.assertEqual([m["offset"] for m in h["messages"]], [5, 6])
        h2 = c.request({"type": "history", "channel": ch,
                        "since": {"offset": 4, "epoch": "other"}})
        self.assertEqual((h2["complete"], h2["messages"]), (False, []))
        bad = c.request({"type": "history", "channel": ch, "limit": 0})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"))
        bad = c.request({"type": "subscribe", "channel": ch, "since": {"offset": -1, "epoch": "x"}})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"))
        # Position only: the ack tells where the stream is; nothing is replayed.
        s = self.client(gw.port)
        ack = s.request({"type": "subscribe", "channel": ch, "recover": True})
        self.assertEqual((ack["offset"], ack["epoch"], "recovered" in ack), (10, h["epoch"], False))
        s.expect_nothing(0.3)
        c.publish(ch, {"n": 11})
        self.assertEqual(s.recv_message(timeout=5)["offset"], 11)
        # The position of a channel that had no history yet replays the epoch from 1.
        z = self.client(gw.port)
        ack = z.request({"type": "subscribe", "channel": ch, "since": {"offset": 0, "epoch": ""}})
        self.assertEqual((ack["recovered"], ack["offset"]), (True, 11), ack)
        self.assertEqual([m["offset"] for m in z.recv_messages(11, timeout=5)], list(range(1, 12)))

    def test_history_needs_the_subscribe_right(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--anonymous-subscribe", "open:*",
                                             "--anonymous-publish", "*"])
        c = self.client(gw.port)
        r = c.request({"type": "history", "channel": "secret:1"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"))
        r = c.request({"type": "history", "channel": "open:1"})
        self.assertEqual(r["type"], "history")

    def test_flushed_function_library_is_loaded_again(self):
        redis = self.start_redis()
        gw = self.node(redis)
        self.assertEqual(redis.command("FCALL_RO", "wsgate_version", "0"), 7)  # the node loaded it
        redis.command("FUNCTION", "FLUSH")
        c = self.client(gw.port)
        ch = uniq("flush")
        first = c.publish(ch, {"n": 1})  # refused by Redis: the link resets and reloads
        self.assertEqual((first["type"], first.get("code")), ("error", "unavailable"), first)
        gw.wait_ready(T(10))
        self.assertEqual(redis.command("FCALL_RO", "wsgate_version", "0"), 7)
        self.assertEqual(c.publish(ch, {"n": 2})["offset"], 1)
        self.assertIn("the wsgate function library is missing", gw.log_text())

    def test_plain_publish_has_no_offset(self):
        redis = self.start_redis()
        gw = self.node(redis)
        ch = uniq("plain")
        c = self.client(gw.port)
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        redis.publish("gw:" + ch, '{"x":1}')
        m = c.recv_message(timeout=5)
        self.assertEqual(m, {"type": "message", "channel": ch, "data": {"x": 1}})
        # A reserved payload that is no envelope we read is dropped and counted.
        redis.publish("gw:" + ch, b"\xffwsgate9 1 e\n{}")
        redis.publish("gw:" + ch, '"after"')
        self.assertEqual(c.recv_message(timeout=5)["data"], "after")
        self.assertEqual(gw.metric('wsgate_redis_messages_dropped_total{reason="bad_envelope"}'), 1)

    def test_gap_notice_when_the_node_cannot_repair(self):
        redis = self.start_redis()
        gw = self.node(redis)
        ch = uniq("gap")
        key = "gw:" + ch
        rc = redis.client()
        self.addCleanup(rc.close)
        c = self.client(gw.port)
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        fcall_publish(rc, key, json.dumps({"n": 1}))
        epoch = c.recv_message(timeout=5)["epoch"]
        # Offsets 2..4 are given out but never reach the node, and their stream entries
        # are gone: the node cannot read them back and says so.
        rc.command("HINCRBY", fn_keys(key)[0], "offset", "3")
        fcall_publish(rc, key, json.dumps({"n": 5}))
        gap = None
        deadline = time.monotonic() + T(5)
        while gap is None and time.monotonic() < deadline:
            o = c.recv_json(timeout=5)
            if o.get("type") == "gap":
                gap = o
        self.assertEqual(gap, {"type": "gap", "channel": ch, "epoch": epoch, "from": 2, "to": 4})
        self.assertEqual(c.recv_message(timeout=5)["offset"], 5)
        self.assertEqual(gw.metric("wsgate_history_messages_lost_total"), 3)


if __name__ == "__main__":
    unittest.main()
