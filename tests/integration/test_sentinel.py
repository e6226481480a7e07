"""redis+sentinel:// against a scripted Sentinel (wsgate_sentinel.FakeSentinel) and real
redis-servers: the node uses only an address ROLE confirms as a master, follows a switch it
learns from its periodic question alone (the push never comes), fences publishes from the
moment it sees the switch even though the old master still works, and takes the Sentinels'
AUTH from --redis-sentinel-password, never logging it. The real Sentinel group's failovers
are tests/chaos/test_chaos_sentinel.py.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_sentinel
"""

import time
import unittest

from wsgate_harness import GatewayTestCase, T, fn_keys, uniq, wait_until
from wsgate_sentinel import FakeSentinel, ReplicaServer
from wsgate_tls import TlsRedisServer, shared_pki

PASSWORD = "s3cret-sentinel"


class SentinelLinkTest(GatewayTestCase):
    def setUp(self):
        self.a = self.start_redis()
        self.b = ReplicaServer(self.a.port)
        self.addCleanup(self.b.cleanup)
        wait_until(lambda: b"master_link_status:up" in self.b.command("INFO", "replication"), T(10),
                   what="the replica in sync")
        self.fake = FakeSentinel(("127.0.0.1", self.a.port), password=PASSWORD)
        self.addCleanup(self.fake.stop.set)

    def node(self, password=PASSWORD, ready=True):
        url = "redis+sentinel://127.0.0.1:%d/mymaster" % self.fake.port
        # By the environment, as a Secret would give it: the harness logs the command line.
        env = {"WSGATE_REDIS_SENTINEL_PASSWORD": password} if password is not None else {}
        return self.start_gateway(None, ["--redis-url", url], ready=ready, env=env)

    def test_role_fencing_and_a_switch_without_push(self):
        g = self.node()
        self.assertIn("redis_mode=sentinel", g.log_text())
        self.assertEqual(g.metric('wsgate_redis_connection_ready{role="sentinel"}'), 1)
        ch = uniq("sen")
        sub = self.client(g.port)
        self.assertEqual(sub.subscribe(ch).get("type"), "ack")
        pubc = self.client(g.port)
        first = pubc.publish(ch, {"n": 1})
        self.assertEqual(first.get("type"), "ack", first)
        self.assertEqual(sub.recv_message(timeout=5)["data"], {"n": 1})

        # The Sentinel now names B, still a replica, and sends no +switch-master: the
        # node's periodic question finds it, the link is fenced at once (A is healthy, but
        # no publish goes there any more), and ROLE refuses B.
        asked = self.fake.asked
        self.fake.answer = ("127.0.0.1", self.b.port)
        g.wait_readyz(503, T(2 + 2))
        wait_until(lambda: "sentinel candidate is not a master" in g.log_text(), T(5),
                   what="ROLE refusing the replica")
        self.assertGreater(self.fake.asked, asked)
        r = pubc.publish(ch, {"n": 2})
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unavailable"), r)
        meta, _ = fn_keys("gw:" + ch)
        self.assertEqual(self.a.command("HGET", meta, "offset"), b"1", "nothing reached the old master")

        # B is promoted: the node follows it, counts the switch, and a publish starts a new
        # epoch there (B's master_replid is new), delivered to the subscriber.
        self.assertEqual(self.b.command("REPLICAOF", "NO", "ONE"), "OK")
        g.wait_readyz(200, T(5))
        r = pubc.publish(ch, {"n": 3})
        self.assertEqual(r.get("type"), "ack", r)
        self.assertNotEqual(r.get("epoch"), first.get("epoch"), "a promoted replica starts a new epoch")
        self.assertEqual(r.get("offset"), 1)
        m = sub.recv_message(timeout=5)
        self.assertEqual((m["data"], m["epoch"]), ({"n": 3}, r["epoch"]))
        self.assertEqual(self.b.command("HGET", meta, "epoch").decode(), r["epoch"])
        self.assertEqual(g.metric("wsgate_redis_master_switches_total"), 1)
        self.assertNotIn(PASSWORD, g.log_text())
        self.assertIn('redis_sentinel_password="***"', g.log_text())

    def test_rediss_sentinel(self):
        # rediss+sentinel://: the Sentinel and the master both over TLS, both verified
        # against the run's CA (the Sentinel names the master's TLS port).
        pki = shared_pki()
        master = TlsRedisServer(pki)
        self.addCleanup(master.cleanup)
        fake = FakeSentinel(("127.0.0.1", master.tls_port), password=PASSWORD, pki=pki)
        self.addCleanup(fake.stop.set)
        g = self.start_gateway(None, ["--redis-url", "rediss+sentinel://127.0.0.1:%d/mymaster" % fake.port,
                                      "--redis-tls-ca-file", pki.path("ca.crt")],
                               env={"WSGATE_REDIS_SENTINEL_PASSWORD": PASSWORD})
        self.assertIn("redis_mode=sentinel+tls", g.log_text())
        self.assertGreater(fake.asked, 0)
        ch = uniq("sentls")
        c = self.client(g.port)
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        self.assertEqual(c.publish(ch, {"n": 1}).get("type"), "ack")
        self.assertEqual(c.recv_message(timeout=5)["data"], {"n": 1})
        meta, _ = fn_keys("gw:" + ch)
        self.assertEqual(master.command("HGET", meta, "offset"), b"1")

    def test_wrong_sentinel_password(self):
        g = self.node(password="not-it", ready=False)
        wait_until(lambda: "WRONGPASS" in g.log_text(), T(5), what="the Sentinel's refusal in the log")
        time.sleep(0.5)
        self.assertEqual(g.readyz(), 503)
        self.assertGreater(self.fake.auth_refused, 0)
        self.assertEqual(self.fake.asked, 0)
        self.assertNotIn("not-it", g.log_text())

    def test_no_sentinel_password(self):
        g = self.node(password=None, ready=False)
        wait_until(lambda: "NOAUTH" in g.log_text(), T(5), what="the Sentinel's NOAUTH in the log")
        self.assertEqual(g.readyz(), 503)

    def test_unknown_master_name(self):
        # First a Sentinel that does not answer: the link waits in `resolving` (until the
        # question's deadline), the watcher is not up.
        self.fake.silent = True
        g = self.node(ready=False)
        wait_until(lambda: g.metrics().get('wsgate_redis_link_state{state="resolving"}') == 1, T(5),
                   what="the link resolving")
        self.assertEqual(g.metric('wsgate_redis_connection_ready{role="sentinel"}'), 0)
        self.fake.answer = None
        self.fake.silent = False
        wait_until(lambda: "unknown master name" in g.log_text(), T(5), what="the nil answer in the log")
        self.assertEqual(g.readyz(), 503)
        self.fake.answer = ("127.0.0.1", self.a.port)
        g.wait_readyz(200, T(5))
        self.assertEqual(g.metric("wsgate_redis_master_switches_total"), 0, "a first master is no switch")


if __name__ == "__main__":
    unittest.main()
