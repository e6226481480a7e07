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
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, RedisServer, T, fcall_publish,  # noqa: E402
                            free_port, uniq, wait_until)

CA_CNF = """
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ server ]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[ client ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
"""


class Pki:
    """Two CAs (the right one and a stranger) and certificates signed by the first."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsgate-tls-")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        for ca in ("ca", "other-ca"):
            self.openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                         "-subj", "/CN=wsgate test " + ca)
        self.issue("server", "server", "-days", "2")
        self.issue("expired", "server", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        self.issue("client", "client", "-days", "2")

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], p.stderr))

    def issue(self, name, ext, *validity):
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        self.openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                     "-in", name + ".csr", "-out", name + ".crt", "-extensions", ext, *validity)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedis(RedisServer):
    """redis-server with a plain port (for the test's own commands) and a TLS port."""

    def __init__(self, pki, cert="server", auth_clients="no"):
        self.pki, self.cert, self.auth_clients = pki, cert, auth_clients
        self.tls_port = free_port()
        super().__init__()

    def _spawn(self):
        p = self.pki.path
        cmd = [self.binary, "--port", str(self.port), "--tls-port", str(self.tls_port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
               "--tls-cert-file", p(self.cert + ".crt"), "--tls-key-file", p(self.cert + ".key"),
               "--tls-ca-cert-file", p("ca.crt"), "--tls-auth-clients", self.auth_clients]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)


def have_tls_redis():
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary or not shutil.which("openssl"):
        return False
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return "build=" in out  # any Debian build; TLS support is checked by starting it


@unittest.skipUnless(have_tls_redis(), "needs redis-server and openssl")
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
        r = TlsRedis(self.pki, **kw)
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

    def test_expired_server_certificate_is_refused(self):
        r = self.tls_redis(cert="expired")
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), ready=False)
        self.assert_refused(g, "certificate verify failed: certificate has expired")

    def test_wrong_host_name_is_refused(self):
        r = self.tls_redis()
        g = self.node(r, "--redis-tls-ca-file", self.pki.path("ca.crt"), "--redis-tls-server-name",
                      "redis.example.com", ready=False)
        self.assert_refused(g, "certificate verify failed: hostname mismatch")

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
