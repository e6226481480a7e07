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
Also: an idempotency key whose slot is migrating follows ASK; a failover of the {wsgate}
master (replica promoted) brings the control plane back with its revocations.

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
        cls.a = cls.start_class_gateway(None, cls.args(workers=2) + ["--redis-url", cls.url])
        cls.b = cls.start_class_gateway(None, cls.args() + ["--redis-url", cls.url])
        cls.a.wait_ready()
        cls.b.wait_ready()

    @property
    def ctl_master(self):
        """The master of the {wsgate} slot now (a test below fails it over)."""
        return self.cluster.master_of_key(TAG)

    @property
    def other(self):
        return next(m for m in self.cluster.masters() if m is not self.ctl_master)

    def name_on(self, master, fmt):
        """The first fmt % i whose slot master serves."""
        for i in range(10000):
            name = fmt % i
            if self.cluster.master_of_key(name) is master:
                return name
        raise AssertionError("no name on %r" % master)

    def test_control_master_down_then_back(self):
        ctl_master, other = self.ctl_master, self.other
        ctl_replicas = self.cluster.replicas_of(ctl_master)
        self.assertEqual(len(ctl_replicas), 1)
        ch = self.name_on(other, "room:live%d")  # no channel prefix: the key is the name
        idem_elsewhere = self.name_on(other, "wsgate:idem:k%d")[len("wsgate:idem:"):]
        idem_down = self.name_on(ctl_master, "wsgate:idem:k%d")[len("wsgate:idem:"):]
        sub = "alice-%d" % time.monotonic_ns()
        mine = [self.user(self.a, sub), self.user(self.b, sub)]
        st, body = api(self.a.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 2, "nodes": 2, "answered": 2}))
        for c in mine:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))

        reader = self.user(self.b, "reader")
        self.assertEqual(reader.subscribe(ch).get("type"), "ack")
        for n in ctl_replicas + [ctl_master]:  # the replica first: no failover
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
        c = self.client(self.a.port)  # authentication needs no Redis (the node's copy)
        r = c.request({"type": "auth", "token": self.mint("newcomer"), "id": c.new_id()})
        self.assertEqual(r.get("type"), "ack", r)

        # Back: same node ids, same slots; each node resubscribes the control channels.
        ctl_master.start()
        for n in ctl_replicas:
            n.start()
        self.cluster.wait_ok(T(30))

        def answered():
            st, body = api(self.b.port, "/api/disconnect", {"user": "nobody"})
            return st == 200 and body.get("nodes") == 2 and body.get("answered") == 2
        wait_until(answered, T(20), what="the control plane back on both nodes")
        again = [self.user(self.a, sub), self.user(self.a, sub), self.user(self.b, sub)]
        st, body = api(self.b.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 3, "nodes": 2, "answered": 2}))
        for c in again:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))
        st, body = api(self.a.port, "/api/revoke", {"user": sub})
        self.assertEqual((st, body.get("nodes"), body.get("answered")), (200, 2, 2), body)
        self.assertEqual(ctl_master.command("HEXISTS", TAG + ":revoked", sub), 1)
        self.assertTrue(self.a.log_text().count("control plane master live again") >= 1)

    def test_idempotency_key_follows_ask_during_a_migration(self):
        """The slot of an idempotency key is being migrated (SETSLOT MIGRATING/IMPORTING):
        its commands get ASK from the source and go to the importing master (ASKING); the
        publish is delivered once, a retry on the other node answers the first answer."""
        self.a.wait_ready()
        self.b.wait_ready()
        src = self.other
        dst = next(m for m in self.cluster.masters() if m is not src and m is not self.ctl_master)
        ikey = self.name_on(src, "wsgate:idem:m%d")
        ch = self.name_on(src, "room:mig%d")
        slot = self.cluster.keyslot(ikey)
        self.assertNotEqual(slot, self.cluster.keyslot(ch))
        reader = self.user(self.b, "mig-reader")
        self.assertEqual(reader.subscribe(ch).get("type"), "ack")
        before = self.a.metric("wsgate_redis_redirects_total", 0) + self.b.metric("wsgate_redis_redirects_total", 0)
        self.cluster.begin_migration(slot, src, dst)
        try:
            body = {"channel": ch, "data": "m", "idempotency_key": ikey[len("wsgate:idem:"):]}
            st, first = api(self.a.port, "/api/publish", body)
            self.assertEqual(st, 200, first)
            self.assertEqual(reader.recv_message(timeout=5)["data"], "m")
            self.assertEqual(api(self.b.port, "/api/publish", body), (200, first))
            reader.expect_nothing(0.5)
            with dst.client() as c:  # stored on the importing master
                c.command("ASKING")
                self.assertEqual(c.command("GET", ikey).decode(), "%d %s" % (first["offset"], first["epoch"]))
            after = self.a.metric("wsgate_redis_redirects_total", 0) + self.b.metric("wsgate_redis_redirects_total", 0)
            self.assertGreaterEqual(after - before, 4)  # claim, store, claim, read: each an ASK
        finally:
            self.cluster.finish_migration(slot, src, dst)

    def test_failover_of_the_control_master(self):
        """The {wsgate} master SIGKILLed with its replica alive: the replica is promoted (a new
        slot map: each node's link resets), and the control plane is back on it with the
        right counts; a revocation made before (replicated) still holds on both nodes and on
        a node started after. The killed master stays down (the next test uses the masters
        left)."""
        self.a.wait_ready()
        self.b.wait_ready()
        ctl_master = self.ctl_master
        replica = self.cluster.replicas_of(ctl_master)[0]
        sub = "fo-%d" % time.monotonic_ns()
        old = self.mint(sub, iat=int(time.time()) - 5)
        st, body = api(self.a.port, "/api/revoke", {"user": sub})
        self.assertEqual((st, body.get("nodes"), body.get("answered")), (200, 2, 2), body)

        def replicated():
            with replica.client() as c:
                c.command("READONLY")
                return c.command("HEXISTS", TAG + ":revoked", sub) == 1
        wait_until(replicated, T(5), what="the revocation on the replica")
        self.cluster.kill_master(ctl_master)
        self.assertIs(self.ctl_master, replica)

        def answered():
            st, body = api(self.a.port, "/api/disconnect", {"user": "nobody"})
            return st == 200 and body.get("nodes") == 2 and body.get("answered") == 2
        wait_until(answered, T(20), what="the control plane on the promoted master")
        # Both nodes are on the new map now (each answered from its link on the new master).
        user = "fo-user-%d" % time.monotonic_ns()
        conns = [self.user(self.a, user), self.user(self.b, user)]
        st, body = api(self.b.port, "/api/disconnect", {"user": user})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 2, "nodes": 2, "answered": 2}))
        for c in conns:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))
        late = self.start_gateway(None, self.args() + ["--redis-url", self.url])
        for gw in (self.a, self.b, late):
            c = self.client(gw.port)
            r = c.request({"type": "auth", "token": old, "id": c.new_id()})
            self.assertEqual((r.get("type"), r.get("code")), ("error", "unauthorized"), r)


if __name__ == "__main__":
    unittest.main()
