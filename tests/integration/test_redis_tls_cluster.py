"""Redis Cluster over TLS (rediss+cluster://, issue 19): a real 6-node cluster (3 masters,
3 replicas) whose clients, cluster bus and replication all speak TLS (tls-port,
tls-cluster yes, tls-replication yes) with certificates minted by `openssl` at test time
(wsgate_tls.Pki), client certificates required (tls-auth-clients yes), requirepass and
masterauth set, and an ACL user for the gateways. Two wsgate nodes get only
`rediss+cluster://wsgate:<password>@<seeds>` (the first seed dead) with the CA file and a
client certificate, as for rediss://:

- every connection a node holds is on a master's TLS port and authenticated as the ACL
  user, two per master; the wsgate library is on every master;
- channels on every shard subscribed on one node and published on the other, with their
  offsets; a backend's FCALL wsgate_publish ... shard and a POST /api/publish reach them;
  history reads and a reconnecting client's recovery (`since`) come back over TLS;
- a CLUSTER FAILOVER (over TLS replication) moves one shard: the node follows it to the
  promoted replica's TLS port and delivery goes on;
- a wrong password, or no client certificate, is refused with a clear log line, /readyz
  503 and no crash.

Run alone: WSGATE_BIN=build-test/gateway/wsgate /usr/bin/python3 -m unittest -v \\
    test_redis_tls_cluster
"""

import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import GatewayTestCase, Pki, T, free_port, wait_until  # noqa: E402
from wsgate_cluster_tls import TlsRedisCluster  # noqa: E402
from wsgate_pub import fn_keys  # noqa: E402

PREFIX = "gw:"
ADMIN_PW = "admin-pw-7f3a"  # requirepass / masterauth: the harness' own commands
GW_USER, GW_PW = "wsgate", "gw-pw-91c2"  # the ACL user the gateways log in as


@unittest.skipUnless(shutil.which("openssl"), "needs openssl to mint the certificates")
class TlsClusterTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        cls.cluster = TlsRedisCluster(cls.pki, masters=3, replicas=1, node_timeout_ms=1000,
                                      password=ADMIN_PW, acl_user=(GW_USER, GW_PW))
        cls.addClassCleanup(cls.cluster.stop)
        masters = cls.cluster.masters()
        # "localhost" seeds: the name the server certificate carries; the masters found
        # by discovery are then reached by the address CLUSTER SHARDS gives (127.0.0.1,
        # also in the certificate).
        cls.seeds = ",".join(["localhost:%d" % free_port()] + ["localhost:%d" % m.tls_port for m in masters])

    def node(self, name, user=GW_USER, password=GW_PW, cert=True, ready=True, extra=()):
        p = self.pki.path
        args = ["--redis-url", "rediss+cluster://%s:%s@%s" % (user, password, self.seeds),
                "--redis-tls-ca-file", p("ca.crt")] + list(extra)
        if cert:
            args += ["--redis-tls-cert-file", p("client.crt"), "--redis-tls-key-file", p("client.key")]
        return self.start_gateway(None, extra_args=args, name=name, ready=ready)

    def names(self, stem):
        """One channel per master (stem0, stem1, ...: the first whose slot each owns), so
        the load spreads over every shard; each test has its own stem."""
        found = {}
        i = 0
        while len(found) < len(self.cluster.masters()):
            name = "%s%d" % (stem, i)
            found.setdefault(self.cluster.master_of_key(PREFIX + name).port, name)
            i += 1
        return sorted(found.values())

    @staticmethod
    def gateway_conns(master):
        """CLIENT LIST lines of the ACL user's connections on master (the gateways' only)."""
        lines = master.command("CLIENT", "LIST").decode().splitlines()
        return [ln for ln in lines if " user=%s " % GW_USER in ln + " "]

    def test_pubsub_history_and_recovery_over_tls_on_every_shard(self):
        from test_api import KEY1, key_file, post  # imported here: test_api is a suite
        a = self.node("a")
        b = self.node("b", extra=["--api-key-file", key_file(self, KEY1 + "\n")])
        self.assertIn("TLS handshake done", a.log_text())
        masters = self.cluster.masters()
        for m in masters:
            self.assertEqual(m.command("FCALL_RO", "wsgate_version", "0"), 7, m.addr)
            conns = self.gateway_conns(m)
            # Two per node (a sharded subscriber, a command connection), each on the
            # master's TLS port: nothing reached the plain port, nothing a replica.
            self.assertEqual(len(conns), 4, (m.addr, conns))
            for ln in conns:
                self.assertIn(" laddr=%s " % m.tls_addr, ln)
        for n in self.cluster.running_nodes():
            if n not in masters:
                self.assertEqual(self.gateway_conns(n), [], "no connection to replica %r" % n)

        names = self.names("tlsroom")
        sub = self.client(a.port)
        for ch in names:
            self.assertEqual(sub.subscribe(ch)["type"], "ack")
        pub = self.client(b.port)
        for n in range(1, 6):
            for ch in names:
                r = pub.publish(ch, {"n": n})
                self.assertEqual(r["type"], "ack", r)
                self.assertEqual(r["offset"], n, r)
        got = {}
        for msg in sub.recv_messages(5 * len(names), timeout=T(10)):
            got.setdefault(msg["channel"], []).append(msg)
        epochs = {}
        for ch in names:
            self.assertEqual([(m["offset"], m["data"]["n"]) for m in got[ch]], [(n, n) for n in range(1, 6)], ch)
            epochs[ch] = got[ch][0]["epoch"]
            # A backend through the Function on the channel's master (sharded publish).
            key = PREFIX + ch
            r = self.cluster.command_for_key(key, "FCALL", "wsgate_publish", "2", *fn_keys(key), key,
                                             '{"n":6}', "", "", "shard")
            self.assertEqual(r[0], 6)
            m = sub.recv_message(timeout=T(5))
            self.assertEqual((m["channel"], m["offset"], m["data"]), (ch, 6, {"n": 6}))
            # A backend through the HTTP API of the other node.
            status, _, body = post(b.port, {"channel": ch, "data": {"n": 7}})
            self.assertEqual((status, body.get("offset")), (200, 7), body)
            m = sub.recv_message(timeout=T(5))
            self.assertEqual((m["channel"], m["offset"], m["data"]), (ch, 7, {"n": 7}))
            # History, read from the channel's master over the node's TLS link.
            h = pub.request({"type": "history", "channel": ch, "limit": 2})
            self.assertEqual([x["offset"] for x in h["messages"]], [6, 7], (ch, h))

        # A client that saw up to offset 3 comes back on the other node and recovers the rest.
        late = self.client(b.port)
        for ch in names:
            ack = late.request({"type": "subscribe", "channel": ch, "id": late.new_id(),
                                "since": {"offset": 3, "epoch": epochs[ch]}}, T(5))
            self.assertEqual(ack.get("type"), "ack", ack)
            self.assertTrue(ack.get("recovered"), ack)
            self.assertEqual([(m["channel"], m["offset"]) for m in late.recv_messages(4, timeout=T(5))],
                             [(ch, 4), (ch, 5), (ch, 6), (ch, 7)])
        self.assertEqual(a.metric("wsgate_redis_connected"), 1)
        self.assertEqual(a.metric("wsgate_redis_reconnects_total"), 0)

    def test_failover_over_tls_replication(self):
        a, b = self.node("a"), self.node("b")
        ch = self.names("tlsfail")[0]
        sub, pub = self.client(a.port), self.client(b.port)
        self.assertEqual(sub.subscribe(ch)["type"], "ack")
        self.assertEqual(pub.publish(ch, {"n": 1})["type"], "ack")
        self.assertEqual(sub.recv_message(timeout=T(5))["data"], {"n": 1})
        victim = self.cluster.master_of_key(PREFIX + ch)
        replica = self.cluster.replicas_of(victim)[0]
        self.assertEqual(replica.info("replication").get("master_link_status"), "up")
        self.cluster.failover(replica)
        self.assertIs(self.cluster.master_of_key(PREFIX + ch), replica)
        # The node follows the slot to the promoted replica's TLS port.
        wait_until(lambda: len(self.gateway_conns(replica)) == 4, T(15),
                   what="both nodes' two connections on the promoted master")
        for ln in self.gateway_conns(replica):
            self.assertIn(" laddr=%s " % replica.tls_addr, ln)
        a.wait_ready(T(10))
        b.wait_ready(T(10))
        deadline = time.monotonic() + T(15)
        while True:  # publishes may answer unavailable for the few ms of the link's reset
            r = pub.publish(ch, {"n": 2})
            if r.get("type") == "ack" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r.get("type"), "ack", r)
        m = sub.recv_message(timeout=T(5))
        self.assertEqual(m["data"], {"n": 2})
        # The slots moved to the promoted master without a reset of the whole link.
        self.assertGreaterEqual(a.metric("wsgate_redis_slot_moves_total"), 1)
        self.assertEqual(a.metric("wsgate_redis_reconnects_total"), 0)

    def assert_refused(self, g, needle):
        wait_until(lambda: needle in g.log_text(), T(10), what="log line with %r" % needle)
        time.sleep(0.5)  # a retry or two meanwhile: still alive, still not ready
        self.assertIsNone(g.proc.poll(), "the node must not exit")
        self.assertEqual(g.readyz(), 503)

    def test_wrong_password_is_refused(self):
        g = self.node("badpw", password="not-" + GW_PW, ready=False)
        self.assert_refused(g, "WRONGPASS")
        logged = [ln for ln in g.log_text().splitlines() if not ln.startswith("=== start:")]
        self.assertNotIn("not-" + GW_PW, "\n".join(logged), "the password is never logged")

    def test_missing_client_certificate_is_refused(self):
        g = self.node("nocert", cert=False, ready=False)
        self.assert_refused(g, "certificate required")


if __name__ == "__main__":
    unittest.main()
