"""A slot that changes master while the cluster link is live (issue 19 items 2 and 4;
gateway/clink.c's diff of a new map), on a real 6-node cluster with two wsgate nodes, each
with a client subscribed to two channels on every master, while a backend publishes to all
of them steadily through FCALL wsgate_publish ... shard (a cluster-aware client that follows
MOVED and ASK):

- a slot of a live channel migrated by hand to another master (SETSLOT IMPORTING/MIGRATING,
  MIGRATE, a pause during which the backend's publishes get ASK and land on the importing
  master while the nodes' subscriptions are still on the source, SETSLOT NODE);
- a CLUSTER FAILOVER on the replica of one master.

Each node delivers every message of every channel exactly once, with the offset and epoch
the backend's call returned (0 lost, 0 duplicated, the gap repaired from the stream); the
channels of every master but the one that lost slots are never later than BOUND over their
own median latency (the link is not reset: no reconnect); the subscriptions follow the slot;
/metrics shows the masters of the new map live, per master, and the moves counted.

Run alone: WSGATE_BIN=build-test/gateway/wsgate /usr/bin/python3 -m unittest -v \\
    test_cluster_moves
"""

import os
import statistics
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import GatewayTestCase, T, wait_until  # noqa: E402
from wsgate_cluster import ClusterPublisher, RedisCluster  # noqa: E402

PREFIX = "gw:"
RATE = 40  # messages/s per channel
COUNT = 160  # 4 s of traffic per channel
BOUND = 0.1  # s: the most a message of an untouched master may be late over the usual


class Reader(threading.Thread):
    """Reads a client's messages, stamping each arrival; bounded by `limit` seconds."""

    def __init__(self, client, want, limit):
        super().__init__(daemon=True)
        self.client, self.want, self.limit = client, want, limit
        self.got = {}  # channel -> [(arrival, n, offset, epoch)]
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                m = self.client.recv_message(timeout=0.5)
            except TimeoutError:
                continue
            if m.get("data") is not None:
                self.got.setdefault(m["channel"], []).append(
                    (time.monotonic(), m["data"]["n"], m.get("offset"), m.get("epoch")))

    def count(self):
        return sum(len(v) for v in self.got.values())


class SlotMovesTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
        cls.addClassCleanup(cls.cluster.stop)

    def pick_channels(self, stem, per_master=2):
        """{master port: [channel names]}, per_master channels on each master."""
        masters = self.cluster.masters()
        out = {m.port: [] for m in masters}
        i = 0
        while any(len(v) < per_master for v in out.values()):
            name = "%s%d" % (stem, i)
            port = self.cluster.master_of_key(PREFIX + name).port
            if len(out[port]) < per_master:
                out[port].append(name)
            i += 1
        return out

    def metrics_by_port(self, gw):
        """{master port: {series: value}} from gw's per-master series."""
        m = gw.metrics()
        out = {}
        for k, v in m.items():
            if not k.startswith("wsgate_redis_master_port{"):
                continue
            idx = k[k.index('"') + 1:k.rindex('"')]
            series = {"up": m['wsgate_redis_master_up{master="%s"}' % idx],
                      "live": m['wsgate_redis_master_state{master="%s",state="live"}' % idx],
                      "redirects": m['wsgate_redis_master_redirects_total{master="%s"}' % idx],
                      "reconnects": m['wsgate_redis_master_reconnects_total{master="%s"}' % idx]}
            out[int(v)] = series
        return out

    def run_change(self, stem, change, moved):
        """Two nodes, a client on each subscribed to every channel, a backend publisher
        per channel; change() runs after a second of traffic. moved(channels) names the
        channels whose master the change touches (exempt from the latency bound).
        Returns (nodes, publishers by channel, readers)."""
        chans = self.pick_channels(stem)
        names = sorted(n for v in chans.values() for n in v)
        seeds = "redis+cluster://" + ",".join(m.addr for m in self.cluster.masters())
        nodes = [self.start_gateway(None, extra_args=["--redis-url", seeds], name=nm, ready=True)
                 for nm in ("a", "b")]
        readers = []
        for gw in nodes:
            c = self.client(gw.port, timeout=10)
            for ch in names:
                self.assertEqual(c.subscribe(ch)["type"], "ack", ch)
            readers.append(Reader(c, names, T(60)))
        for r in readers:
            r.start()
        pubs = {ch: ClusterPublisher(self.cluster, PREFIX + ch, COUNT, RATE, limit=60) for ch in names}
        for p in pubs.values():
            p.start()
        try:
            time.sleep(1.0)
            exempt = moved(chans)
            change(chans)
        finally:
            for p in pubs.values():
                p.join(T(70))
            total = sum(len(p.acked) for p in pubs.values())
            try:
                wait_until(lambda: all(r.count() >= total for r in readers), T(20),
                           what="every acked message delivered on both nodes")
            finally:
                time.sleep(0.3)  # a duplicate would come now
                for r in readers:
                    r.stop.set()
                    r.join(T(5))

        late = {}
        for gw, r in zip(nodes, readers):
            for ch in names:
                acked = {n: (o, e) for _, n, o, e in pubs[ch].acked}
                self.assertEqual(sorted(acked), list(range(1, COUNT + 1)), (ch, pubs[ch].errors[-3:]))
                got = r.got.get(ch, [])
                ns = [n for _, n, _, _ in got]
                # 0 lost, 0 duplicated, each with the position Redis gave it.
                self.assertEqual(sorted(ns), list(range(1, COUNT + 1)), (gw.name, ch))
                for _, n, o, e in got:
                    self.assertEqual((o, e), acked[n], (gw.name, ch, n))
                sent = {n: t for t, n, _, _ in pubs[ch].acked}
                lat = [t - sent[n] for t, n, _, _ in got]
                late[(gw.name, ch)] = max(lat) - statistics.median(lat)
        sys.stderr.write("\n%s: worst lateness over the median per node and channel (s): %s; moved %s\n"
                         % (self.id(), {"%s/%s" % k: round(v, 3) for k, v in sorted(late.items())},
                            sorted(exempt)))
        for (node, ch), v in late.items():
            if ch not in exempt:
                self.assertLess(v, T(BOUND), (node, ch, late))
        for gw in nodes:
            # No link reset and no master reconnected: the diff of the new map.
            self.assertEqual(gw.metric("wsgate_redis_reconnects_total"), 0, gw.name)
            self.assertGreaterEqual(gw.metric("wsgate_redis_slot_moves_total"), 1, gw.name)
        return nodes, pubs, readers

    def test_migrated_slot_moves_its_channels_alone(self):
        state = {}

        def moved(chans):
            src_port = sorted(chans)[0]
            state["ch"] = chans[src_port][0]
            return {state["ch"]}

        def change(chans):
            key = PREFIX + state["ch"]
            slot = self.cluster.keyslot(key)
            src = self.cluster.master_of_slot(slot)
            dst = [m for m in self.cluster.masters() if m is not src][0]
            state.update(key=key, src=src, dst=dst)
            self.cluster.begin_migration(slot, src, dst)
            self.assertGreater(self.cluster.move_keys(slot, src, dst), 0)
            # The keys are on dst, the slot still src's: the backend's publishes get ASK
            # and land on dst while every subscription is on src.
            time.sleep(0.4)
            self.cluster.finish_migration(slot, src, dst)

        nodes, pubs, _ = self.run_change("mig", change, moved)
        key, src, dst = state["key"], state["src"], state["dst"]
        self.assertGreater(pubs[state["ch"]].asks, 0, "no publish was redirected with ASK")
        self.assertIs(self.cluster.master_of_key(key), dst)
        # Both nodes' sharded subscriptions followed the slot.
        self.assertEqual(dst.command("PUBSUB", "SHARDNUMSUB", key), [key.encode(), 2])
        self.assertEqual(src.command("PUBSUB", "SHARDNUMSUB", key), [key.encode(), 0])
        # /metrics per master: every master of the map live on both nodes, none
        # reconnected; src dropped the moved subscriptions (an unsolicited sunsubscribe,
        # counted on src) on at least one node.
        redirects = 0
        for gw in nodes:
            per = self.metrics_by_port(gw)
            self.assertEqual(sorted(per), sorted(m.port for m in self.cluster.masters()), gw.name)
            for port, s in per.items():
                self.assertEqual((s["up"], s["live"], s["reconnects"]), (1, 1, 0), (gw.name, port))
            redirects += per[src.port]["redirects"]
        self.assertGreaterEqual(redirects, 1)

    def test_cluster_failover_moves_one_masters_channels(self):
        state = {}

        def moved(chans):
            state["victim"] = self.cluster.node_by_port(sorted(chans)[-1])
            return set(chans[state["victim"].port])

        def change(chans):
            replica = self.cluster.replicas_of(state["victim"])[0]
            state["replica"] = replica
            self.cluster.failover(replica)

        nodes, pubs, _ = self.run_change("fo", change, moved)
        # The promoted replica is a master of both nodes' links, live; the demoted
        # master has no series any more.
        for gw in nodes:
            per = self.metrics_by_port(gw)
            self.assertIn(state["replica"].port, per, gw.name)
            self.assertNotIn(state["victim"].port, per, gw.name)
            self.assertEqual(per[state["replica"].port]["live"], 1, gw.name)


if __name__ == "__main__":
    unittest.main()
