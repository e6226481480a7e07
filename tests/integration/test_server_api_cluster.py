"""The server API's control plane in Redis Cluster mode when the shard that holds it is down
(issue 21 "in every Redis mode", issue 19 §4): a 6-node cluster (3 masters + 3 replicas), two
wsgate nodes. Every node-wide key of the control plane shares the {wsgate} hash tag, hence
one master (docs/PROTOCOL.md, "Control plane per Redis mode"). With that master and its
replica SIGKILLed (no failover possible):
- POST /api/disconnect, /api/unsubscribe and /api/revoke answer 503 unavailable at once;
- an idempotent publish whose key's slot is on that master answers 503 and delivers nothing;
- the other shards never stop: a publish on a channel of another master is delivered across
  nodes, an idempotent publish whose key lives elsewhere is delivered once (a retry on the
  other node answers the first answer), both nodes stay ready, new connections authenticate;
- when that master returns (restarted, same node id: no new slot map) each node subscribes the
  control channels on it again and the control plane answers with the right counts.

The whole test_server_api suite also runs in cluster mode (integration_server_api_cluster).

Run alone: WSGATE_BIN=build-test/gateway/wsgate /usr/bin/python3 -m unittest -v \\
    test_server_api_cluster
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import T, free_port, wait_until  # noqa: E402
from wsgate_cluster import RedisCluster  # noqa: E402
from test_server_api import ServerApiBase, api  # noqa: E402

TAG = "{wsgate}"


class ControlShardDown(ServerApiBase):
    @classmethod
    def setUpClass(cls):
        cls.make_files()
        cls.cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
        cls.addClassCleanup(cls.cluster.stop)
        masters = cls.cluster.masters()
        cls.url = "redis+cluster://" + ",".join(m.addr for m in masters)
        cls.ctl_master = cls.cluster.master_of_key(TAG)
        cls.ctl_replicas = cls.cluster.replicas_of(cls.ctl_master)
        cls.assertTrue(cls, len(cls.ctl_replicas) == 1)
        cls.other = next(m for m in masters if m is not cls.ctl_master)
        cls.a = cls.start_class_gateway(None, cls.args(workers=2) + ["--redis-url", cls.url])
        cls.b = cls.start_class_gateway(None, cls.args() + ["--redis-url", cls.url])
        cls.a.wait_ready()
        cls.b.wait_ready()

    def name_on(self, master, fmt):
        """The first fmt % i whose slot master serves."""
        for i in range(10000):
            name = fmt % i
            if self.cluster.master_of_key(name) is master:
                return name
        raise AssertionError("no name on %r" % master)

    def test_control_master_down_then_back(self):
        ch = self.name_on(self.other, "room:live%d")  # no channel prefix: the key is the name
        idem_elsewhere = self.name_on(self.other, "wsgate:idem:k%d")[len("wsgate:idem:"):]
        idem_down = self.name_on(self.ctl_master, "wsgate:idem:k%d")[len("wsgate:idem:"):]
        sub = "alice-%d" % time.monotonic_ns()
        mine = [self.user(self.a, sub), self.user(self.b, sub)]
        st, body = api(self.a.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 2, "nodes": 2, "answered": 2}))
        for c in mine:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))

        reader = self.user(self.b, "reader")
        self.assertEqual(reader.subscribe(ch).get("type"), "ack")
        for n in self.ctl_replicas + [self.ctl_master]:  # the replica first: no failover
            n.kill()

        def refused():
            st, body = api(self.a.port, "/api/disconnect", {"user": "nobody"})
            return st == 503 and body.get("error") == "unavailable"
        wait_until(refused, T(10), what="disconnect answered 503 with the {wsgate} master down")
        t0 = time.monotonic()
        for gw in (self.a, self.b):
            for path, req in [("/api/disconnect", {"user": sub}), ("/api/revoke", {"user": sub}),
                              ("/api/unsubscribe", {"user": sub, "channel": ch})]:
                st, body = api(gw.port, path, req)
                self.assertEqual((st, body.get("error")), (503, "unavailable"), (path, body))
        self.assertLess(time.monotonic() - t0, T(2), "503s answered at once, not after a wait")
        st, body = api(self.a.port, "/api/publish", {"channel": ch, "data": "x", "idempotency_key": idem_down})
        self.assertEqual((st, body.get("error")), (503, "unavailable"), body)

        # The other shards never stop.
        for gw in (self.a, self.b):
            self.assertEqual(gw.readyz(), 200)
        st, body = api(self.a.port, "/api/publish", {"channel": ch, "data": "plain"})
        self.assertEqual(st, 200, body)
        self.assertEqual(reader.recv_message(timeout=5)["data"], "plain")
        once = {"channel": ch, "data": "once", "idempotency_key": idem_elsewhere}
        st, first = api(self.a.port, "/api/publish", once)
        self.assertEqual(st, 200, first)
        self.assertEqual(reader.recv_message(timeout=5)["data"], "once")
        self.assertEqual(api(self.b.port, "/api/publish", once), (200, first))
        reader.expect_nothing(0.5)
        self.user(self.a, "newcomer")  # authentication needs no Redis (the node's copy)

        # Back: same node ids, same slots; each node resubscribes the control channels.
        self.ctl_master.start()
        for n in self.ctl_replicas:
            n.start()
        self.cluster.wait_ok(T(30))
        again = [self.user(self.a, sub), self.user(self.a, sub), self.user(self.b, sub)]

        def answered():
            st, body = api(self.b.port, "/api/disconnect", {"user": "nobody"})
            return st == 200 and body.get("nodes") == 2 and body.get("answered") == 2
        wait_until(answered, T(20), what="the control plane back on both nodes")
        st, body = api(self.b.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 3, "nodes": 2, "answered": 2}))
        for c in again:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))
        st, body = api(self.a.port, "/api/revoke", {"user": sub})
        self.assertEqual((st, body.get("nodes"), body.get("answered")), (200, 2, 2), body)
        self.assertEqual(self.ctl_master.command("HEXISTS", TAG + ":revoked", sub), 1)
        self.assertTrue(self.a.log_text().count("control plane master live again") >= 1)


if __name__ == "__main__":
    unittest.main()
