"""TLS to Redis (rediss://): a CA, server and client certificates minted with `openssl`
at test time, redis-server with --tls-port, and a node that must serve over it when
everything is right, and fail with one clear log line, /readyz 503 and no crash when the
CA is wrong, the server certificate expired, the name does not match or the client
certificate is missing.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_redis_tls
"""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, Pki, T, TlsRedisServer,  # noqa: E402
                            fcall_publish, free_port, uniq, wait_until)

@unittest.skipUnless(shutil.which("openssl"), "needs openssl to mint the certificates")
class RedisTlsTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()
        super().tearDownClass()

    def tls_redis(self, **kw):
        r = TlsRedisServer(self.pki, **kw)
        self.addCleanup(r.cleanup)
        return r

    def node(self, redis, *args, host="localhost", ready=True):
        url = "rediss://%s:%d" % (host, redis.tls_port)
        return self.start_gateway(None, NO_RATE_LIMIT + ["--redis-url", url] + list(args), ready=ready)

    def assert_refused(self, g, needle):
        """Not ready, alive, and the reason in the log (once per attempt, at warn)."""
        wait_until(lambda: needle in g.log_text(), T(5), what="log line with %r" % needle)
        time.sleep(0.5)  # a retry or two happen meanwhile: still no crash, still 503
        self.assertIsNone(g.proc.poll(), "the node must not exit")
        self.assertEqual(g.readyz(), 503)
        lines = [ln for ln in g.log_text().splitlines() if needle in ln]
        self.assertIn("level=warn", lines[0])
        self.assertIn("to=failed", lines[0])

    def test_verified_tls_with_client_certificate_serves_pubsub_and_history(self):
        r = self.tls_redis(auth_clients="yes")
        p = self.pki.path
        g = self.node(r, "--redis-tls-ca-file", p("ca.crt"), "--redis-tls-cert-file", p("client.crt"),
                      "--redis-tls-key-file", p("client.key"))
        self.assertIn("TLS handshake done", g.log_text())
        ch = uniq("tls")
        sub, pub = self.client(g.port), self.client(g.port)
        self.assertEqual(sub.subscribe(ch).get("type"), "ack")
        for i in range(20):
            self.assertEqual(pub.publish(ch, {"n": i}).get("type"), "ack")
        # A backend publish through the Function on the plain port arrives too.
        rc = r.client()
        self.addCleanup(rc.close)
        fcall_publish(rc, "gw:" + ch, '{"n":20}')
        got = sub.recv_messages(21, timeout=T(5))
        self.assertEqual([m["data"]["n"] for m in got], list(range(21)))
        self.assertEqual([m["offset"] for m in got], list(range(1, 22)))
        # History comes back over the TLS link (FCALL_RO wsgate_history).
        late = self.client(g.port)
        ack = late.request({"type": "subscribe", "channel": ch, "id": late.new_id(),
                            "since": {"offset": 15, "epoch": got[0]["epoch"]}}, T(5))
        self.assertEqual(ack.get("type"), "ack", ack)
        self.assertTrue(ack.get("recovered"), ack)
        self.assertEqual([m["data"]["n"] for m in late.recv_messages(6, timeout=T(5))], list(range(15, 21)))
        self.assertEqual(g.metrics().get("wsgate_redis_reconnects_total"), 0)

    def test_wrong_ca_is_refused(self):
        r = self.tls_redis()
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("other-ca.crt"), ready=False)
        # Redis sends its chain; OpenSSL names the untrusted root it ends in.
        self.assert_refused(g, 'reason="TLS handshake failed" error="certificate verify failed: self-signed certificate in '
                               'certificate chain"')

    def test_verification_is_on_by_default(self):
        # No CA file: the system store, which does not know the test CA.
        r = self.tls_redis()
        g = self.node(r, ready=False)
        self.assert_refused(g, 'reason="TLS handshake failed" error="certificate verify failed: ')

    def test_expired_server_certificate_is_refused(self):
        r = self.tls_redis(cert="expired")
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), ready=False)
        self.assert_refused(g, "certificate verify failed: certificate has expired")

    def test_wrong_host_name_is_refused(self):
        r = self.tls_redis()
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), "--redis-tls-server-name",
                      "redis.example.com", ready=False)
        self.assert_refused(g, "certificate verify failed: hostname mismatch")

    def test_a_replaced_ca_file_is_read_again_on_the_next_attempt(self):
        # The context is built again on every reconnect: fixing (or rotating) the
        # material on disk needs no restart.
        r = self.tls_redis()
        ca = os.path.join(self.pki.dir, "rotating-ca-%d.crt" % os.getpid())
        shutil.copy(self.pki.path("other-ca.crt"), ca)
        self.addCleanup(os.unlink, ca)
        g = self.node(r, "--redis-tls-ca-file", ca, ready=False)
        wait_until(lambda: "certificate verify failed" in g.log_text(), T(5), what="the first refusal")
        shutil.copy(self.pki.path("ca.crt"), ca + ".new")
        os.replace(ca + ".new", ca)
        g.wait_ready(T(10))
        self.assertIsNone(g.proc.poll())

    def test_ip_address_is_verified_against_the_certificate(self):
        r = self.tls_redis()
        self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), host="127.0.0.1")

    def test_missing_client_certificate_is_refused(self):
        r = self.tls_redis(auth_clients="yes")
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), ready=False)
        self.assert_refused(g, "alert certificate required")

    def test_insecure_accepts_any_certificate_and_says_so(self):
        r = self.tls_redis()
        g = self.node(r, "--redis-tls-insecure", "1")
        self.assertIn("redis TLS without verification", g.log_text())

    def test_unreadable_ca_file_stops_the_node_at_startup(self):
        url = "rediss://localhost:%d" % free_port()
        p = subprocess.run([os.environ["WSGATE_BIN"], "--listen", "127.0.0.1:%d" % free_port(), "--redis-url", url,
                            "--anonymous-subscribe", "*", "--redis-tls-ca-file", "/nonexistent/ca.pem"],
                           capture_output=True, text=True, timeout=T(10))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--redis-tls-ca-file /nonexistent/ca.pem", p.stderr)


if __name__ == "__main__":
    unittest.main()
