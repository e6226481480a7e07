"""HTTP side of a node: /healthz, /readyz, /metrics (format and values), the demo page,
404s, standalone mode, and the command line (--help, invalid values, env vars).

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_http
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (run_wsgate, NO_RATE_LIMIT, GatewayTestCase, T, free_port, http_status,  # noqa: E402
                            metric_meta, parse_metrics, uniq, wait_until, wsgate_bin)


REQUIRED = {
    # name: (type, sample that must be present)
    "wsgate_connections": ("gauge", "wsgate_connections"),
    "wsgate_connections_accepted_total": ("counter", "wsgate_connections_accepted_total"),
    "wsgate_subscriptions": ("gauge", "wsgate_subscriptions"),
    "wsgate_channels": ("gauge", "wsgate_channels"),
    "wsgate_redis_messages_received_total": ("counter", "wsgate_redis_messages_received_total"),
    "wsgate_messages_delivered_total": ("counter", "wsgate_messages_delivered_total"),
    "wsgate_client_publishes_total": ("counter", 'wsgate_client_publishes_total{result="ok"}'),
    "wsgate_clients_shed_total": ("counter", 'wsgate_clients_shed_total{reason="slow_consumer"}'),
    "wsgate_outbound_queue_bytes": ("gauge", "wsgate_outbound_queue_bytes"),
    "wsgate_redis_connected": ("gauge", "wsgate_redis_connected"),
    "wsgate_redis_reconnects_total": ("counter", "wsgate_redis_reconnects_total"),
    "wsgate_ready": ("gauge", "wsgate_ready"),
    "wsgate_draining": ("gauge", "wsgate_draining"),
    "wsgate_client_errors_total": ("counter", 'wsgate_client_errors_total{code="bad_json"}'),
}


class HttpTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(cls.redis.port, NO_RATE_LIMIT, name="http")
        cls.gw.wait_ready()

    def test_healthz_and_readyz(self):
        status, _, _ = self.gw.http_get("/healthz")
        self.assertEqual(status, 200)
        status, _, _ = self.gw.http_get("/readyz")
        self.assertEqual(status, 200)

    def test_unknown_path_404(self):
        for path in ["/nope", "/healthz/x", "/metricsx", "/index.html.bak"]:
            with self.subTest(path=path):
                self.assertEqual(self.gw.http_get(path)[0], 404)

    def test_demo_page(self):
        status, headers, body = self.gw.http_get("/")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/html"), headers)
        text = body.decode("utf-8")
        self.assertIn("<script", text)
        self.assertIn("WebSocket", text)

    def test_sdk_module(self):
        # The demo page imports the SDK from the node; it must be the SDK's one source.
        status, headers, body = self.gw.http_get("/sdk/wsgate.js")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/javascript"), headers)
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "js", "src", "wsgate.js")
        with open(src, "rb") as f:
            self.assertEqual(body, f.read())

    def test_metrics_format_on_a_fresh_node(self):
        status, headers, body = self.gw.http_get("/metrics")
        self.assertEqual(status, 200)
        ctype = headers.get("content-type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        text = body.decode("utf-8")
        samples = parse_metrics(text)
        helps, types = metric_meta(text)
        for name, (mtype, sample) in REQUIRED.items():
            with self.subTest(metric=name):
                self.assertIn(name, helps, "# HELP %s" % name)
                self.assertEqual(types.get(name), mtype, "# TYPE %s" % name)
                self.assertIn(sample, samples, "sample %s" % sample)
        # Every sample belongs to a declared family.
        for key in samples:
            base = key.split("{", 1)[0]
            fam = base
            for suffix in ("_bucket", "_sum", "_count"):
                if base.endswith(suffix) and base[: -len(suffix)] in types:
                    fam = base[: -len(suffix)]
            self.assertIn(fam, types, "sample %s has no # TYPE" % key)
        self.assertEqual(samples["wsgate_ready"], 1)
        self.assertEqual(samples["wsgate_draining"], 0)
        self.assertEqual(samples["wsgate_redis_connected"], 1)
        # Every error slug is pre-declared, so rate() works from the first scrape.
        for code in ["bad_json", "bad_request", "unknown_type", "bad_channel",
                     "too_many_subscriptions", "message_too_large", "binary_not_supported",
                     "unavailable", "rate_limited"]:
            self.assertIn('wsgate_client_errors_total{code="%s"}' % code, samples)


class MetricsValuesTest(GatewayTestCase):
    def test_values_follow_actions(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, NO_RATE_LIMIT)
        m0 = gw.metrics()
        a = self.client(gw.port)
        b = self.client(gw.port)
        ch = uniq("h")
        self.assertEqual(a.subscribe(ch).get("type"), "ack")
        self.assertEqual(b.subscribe(ch).get("type"), "ack")
        m1 = gw.metrics()
        self.assertEqual(m1["wsgate_connections"], m0["wsgate_connections"] + 2)
        self.assertEqual(m1["wsgate_connections_accepted_total"],
                         m0["wsgate_connections_accepted_total"] + 2)
        self.assertEqual(m1["wsgate_subscriptions"], m0["wsgate_subscriptions"] + 2)
        self.assertEqual(m1["wsgate_channels"], m0["wsgate_channels"] + 1)

        # N backend messages, 2 subscribers: exactly 2N deliveries and N received.
        n = 25
        rc = redis.client()
        self.addCleanup(rc.close)
        self.assertEqual(rc.pipeline([("PUBLISH", "gw:" + ch, '{"n":%d}' % i) for i in range(n)]),
                         [1] * n)
        for c in (a, b):
            self.assertEqual(len(c.recv_messages(n, timeout=5)), n)
        key_d = "wsgate_messages_delivered_total"
        wait_until(lambda: gw.metrics()[key_d] >= m1[key_d] + 2 * n, T(3), what=key_d)
        m2 = gw.metrics()
        self.assertEqual(m2[key_d], m1[key_d] + 2 * n, key_d)
        self.assertEqual(m2["wsgate_redis_messages_received_total"],
                         m1["wsgate_redis_messages_received_total"] + n)

        # Client publishes.
        key_p = 'wsgate_client_publishes_total{result="ok"}'
        for i in range(5):
            self.assertEqual(a.publish(ch, i).get("type"), "ack")
        for c in (a, b):
            c.recv_messages(5, timeout=5)
        m3 = gw.metrics()
        self.assertEqual(m3[key_p], m2[key_p] + 5, key_p)
        self.assertEqual(m3["wsgate_redis_messages_received_total"],
                         m2["wsgate_redis_messages_received_total"] + 5)

        # An error is counted under its slug.
        key_e = 'wsgate_client_errors_total{code="bad_json"}'
        a.send_text("{nope")
        self.assertEqual(a.recv_json(timeout=5).get("code"), "bad_json")
        self.assertEqual(gw.metrics()[key_e], m3.get(key_e, 0) + 1)

        # Disconnects bring the gauges back.
        self.assertEqual(a.unsubscribe(ch).get("type"), "ack")
        self.assertEqual(gw.metrics()["wsgate_subscriptions"], m0["wsgate_subscriptions"] + 1)
        a.close()
        b.abort()
        wait_until(lambda: gw.metrics()["wsgate_connections"] == m0["wsgate_connections"], T(5),
                   what="wsgate_connections back to its start value")
        m4 = gw.metrics()
        self.assertEqual(m4["wsgate_subscriptions"], m0["wsgate_subscriptions"])
        wait_until(lambda: gw.metrics()["wsgate_channels"] == m0["wsgate_channels"], T(5),
                   what="wsgate_channels back to its start value")
        self.assertEqual(m4["wsgate_connections_accepted_total"],
                         m0["wsgate_connections_accepted_total"] + 2)
        self.assertEqual(m4["wsgate_outbound_queue_bytes"], 0)
        wait_until(lambda: gw.metrics().get("wsgate_frames_live", 0) == 0, T(5),
                   what="wsgate_frames_live == 0 once every client is gone")


class StandaloneTest(GatewayTestCase):
    def test_standalone_ready_and_delivers_in_process(self):
        t0 = time.monotonic()
        gw = self.start_gateway(None, NO_RATE_LIMIT, ready=False)
        gw.wait_readyz(200, T(3))
        sys.stderr.write("\n[observed] standalone ready %.2fs after start\n" % (time.monotonic() - t0))
        a = self.client(gw.port)
        b = self.client(gw.port)
        ch = uniq("h")
        self.assertEqual(a.subscribe(ch).get("type"), "ack")
        self.assertEqual(b.subscribe(ch).get("type"), "ack")
        for i in range(10):
            self.assertEqual(a.publish(ch, {"i": i}).get("type"), "ack")
        for c in (a, b):
            got = [m["data"] for m in c.recv_messages(10, timeout=5)]
            self.assertEqual(got, [{"i": i} for i in range(10)])
        self.assertEqual(b.unsubscribe(ch).get("type"), "ack")
        self.assertEqual(a.publish(ch, "last").get("type"), "ack")
        self.assertEqual(a.recv_message(timeout=5)["data"], "last")
        b.expect_nothing(0.3)
        self.assertEqual(gw.metrics()["wsgate_ready"], 1)
        self.assertEqual(gw.terminate(), 0)


class CommandLineTest(GatewayTestCase):
    def run_bin(self, args, env=None, timeout=5):
        return run_wsgate(args, env=env, timeout=timeout)

    def test_help(self):
        p = self.run_bin(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = (p.stdout + p.stderr).decode()
        for word in ["--listen", "--redis-url", "--channel-prefix", "WSGATE_LISTEN",
                     "--max-frame-bytes", "--drain-timeout"]:
            self.assertIn(word, out)

    def test_version(self):
        p = self.run_bin(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue((p.stdout + p.stderr).strip())

    def test_invalid_values_exit_nonzero_with_message(self):
        listen = ["--listen", "127.0.0.1:%d" % free_port()]
        cases = [
            (["--workers", "abc"] + listen, "workers"),
            (["--redis-url", "http://x"] + listen, "redis"),
            (["--redis-url", "redis://localhost:6379", "--redis-tls-ca-file", "/ca.pem"] + listen, "rediss"),
            (["--max-frame-bytes", "12x"] + listen, "max-frame-bytes"),
            (["--listen", "nonsense"], "listen"),
            (["--listen", "127.0.0.1:99999"], "listen"),
            (["--no-such-flag"] + listen, "no-such-flag"),
            (listen + ["--redis-url"], "redis-url"),
            (["--log-level", "loud"] + listen, "log"),
        ]
        for args, word in cases:
            with self.subTest(args=args):
                t0 = time.monotonic()
                p = self.run_bin(args)
                self.assertNotEqual(p.returncode, 0, "accepted %r" % args)
                self.assertLess(time.monotonic() - t0, T(3), "slow to reject %r" % args)
                err = p.stderr.decode()
                self.assertTrue(err.strip(), "no message on stderr for %r" % args)
                self.assertIn(word, err.lower(), "stderr for %r: %s" % (args, err))
                self.assertLess(len(err.splitlines()), 20, "a clear message, not a wall of text")

    def spawn(self, args, env):
        # The development setting the harness gives every Gateway (wsgate_harness).
        dev = {"WSGATE_ANONYMOUS_SUBSCRIBE": "*", "WSGATE_ANONYMOUS_PUBLISH": "*"}
        proc = subprocess.Popen([wsgate_bin()] + args, env=dict(os.environ, **dev, **env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.addCleanup(stop)
        return proc

    def test_env_listen_and_flag_precedence(self):
        p_env = free_port()
        p_flag = free_port()
        bad = self.run_bin([], env={"WSGATE_LISTEN": "not-an-address"})
        self.assertNotEqual(bad.returncode, 0, "invalid WSGATE_LISTEN accepted")
        proc = self.spawn([], {"WSGATE_LISTEN": "127.0.0.1:%d" % p_env})
        wait_until(lambda: http_status(p_env, "/readyz") == 200, T(5),
                   what="standalone node on the WSGATE_LISTEN port")
        proc.terminate()
        self.assertEqual(proc.wait(timeout=T(10)), 0)
        proc2 = self.spawn(["--listen", "127.0.0.1:%d" % p_flag],
                           {"WSGATE_LISTEN": "127.0.0.1:%d" % p_env})
        wait_until(lambda: http_status(p_flag, "/readyz") == 200, T(5),
                   what="node on the --listen port (flag wins over env)")
        self.assertIsNone(http_status(p_env, "/readyz", timeout=1),
                          "the env port must not be used when --listen is given")
        proc2.terminate()
        self.assertEqual(proc2.wait(timeout=T(10)), 0)

if __name__ == "__main__":
    unittest.main()
