"""The HTTP edge under attack (issue 15, docs/SECURITY.md "HTTP edge"): sequences of bytes that
wedged a worker inside lws, a generated mix of pipelined requests, framing and path tricks, the
browser headers and the demo page switch. Real wsgate processes, raw sockets.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_security_http
"""

import os
import random
import socket
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from wsgate_harness import (NO_RATE_LIMIT, GatewayTestCase, T, free_port, http_get, read_until_close,  # noqa: E402
                            uniq, wait_until)

KEY = "sec-http-key-0c1d2e3f4a5b6c7d"
WRONG = "sec-http-wrong-key-00000000000"

PATHS = ["/healthz", "/readyz", "/metrics", "/", "/index.html", "/sdk/wsgate.js", "/ws",
         "/api/publish", "/admin", "/admin/api/cluster", "/nope"]


def exchange(port, parts, timeout=2.0, pause=0.05):
    """Sends each part of parts (bytes) on one connection, pause seconds apart, then reads
    until the server closes or timeout. Returns (bytes read, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=T(timeout))
    buf, closed = b"", False
    try:
        for i, p in enumerate(parts):
            if i:
                time.sleep(pause)
            try:
                s.sendall(p)
            except OSError:  # the server answered and closed: what it wrote is still read below
                break
        buf, closed = read_until_close(s, T(timeout))
    finally:
        s.close()
    return buf, closed


def statuses(raw):
    """The status codes of the responses in raw, in order."""
    out = []
    for line in raw.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            out.append(int(line.split()[1]))
    return out


def req(method, path, body=None, key=None, extra=b""):
    head = b"%s %s HTTP/1.1\r\nHost: x\r\n" % (method.encode(), path.encode())
    if key:
        head += b"Authorization: Bearer " + key.encode() + b"\r\n"
    if body is not None:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + (body or b"")


def publish_body(ch="demo-sec"):
    return b'{"channel":"%s","data":1}' % ch.encode()


class Node(GatewayTestCase):
    def node(self, workers, extra=()):
        d = tempfile.mkdtemp(prefix="wsgate-sec-")
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        self.addCleanup(lambda: (os.unlink(keys), os.rmdir(d)))
        redis = self.start_redis()
        return self.start_gateway(redis.port, NO_RATE_LIMIT + ["--workers", str(workers), "--api-key-file", keys,
                                                              "--drain-timeout", "2"] + list(extra))

    def assert_responsive(self, gw, ws, what):
        """/healthz answers within 1 s on fresh connections (enough of them to reach every
        worker), and an open WebSocket still gets its ping answered."""
        for _ in range(4):
            t0 = time.monotonic()
            try:
                status = http_get(gw.port, "/healthz", timeout=T(1))[0]
            except OSError as e:
                self.fail("%s: /healthz did not answer within 1 s (%s)" % (what, e))
            self.assertEqual(status, 200, what)
            self.assertLess(time.monotonic() - t0, T(1), what)
        self.assertEqual(ws.ping(timeout=T(1)).get("type"), "pong", what)

    def assert_slots_given_back(self, gw):
        """Every plain-HTTP slot comes back: only the scrape's own is held."""
        wait_until(lambda: gw.metric("wsgate_http_connections") == 1, T(8),
                   what="wsgate_http_connections back to 1 (the scrape)")

    def assert_terminates(self, gw):
        # --drain-timeout 2: a wedged worker kept the node alive past it (issue 15, finding 1).
        self.assertEqual(gw.terminate(timeout=T(6)), 0)


class WedgeTest(Node):
    """Finding 1: one pipelined request with a body wedged a worker for good."""

    def sequences(self, path):
        body = publish_body()
        return {
            "get+post(body)": [req("GET", path) + req("POST", path, b"x")],
            "post(body)+post(body)": [req("POST", path, b"x") + req("POST", path, b"x")],
            "post(body)+post(body), wrong key": [req("POST", path, body, WRONG) + req("POST", path, body, WRONG)],
            "post(body)+post(body), valid key": [req("POST", path, body, KEY) + req("POST", path, body, KEY)],
            "post(no body)+get": [req("POST", path) + req("GET", "/healthz")],
            "put/patch(no body)+post(body)": [req("PUT", path) + req("PATCH", path) + req("POST", path, b"x")],
            "post(body), then more later": [req("POST", path, body, KEY), req("POST", path, b"x"), b"GET / HTTP/1.1\r\n"],
        }

    def run_all(self, workers):
        gw = self.node(workers)
        ws = self.client(gw.port)
        for path in PATHS:
            for name, parts in self.sequences(path).items():
                what = "%s on %s, --workers %d" % (name, path, workers)
                with self.subTest(what):
                    # Twice, so that with two workers both are likely to have met it.
                    for _ in range(2):
                        raw, closed = exchange(gw.port, parts, timeout=1.5)
                        self.assertTrue(closed, "%s: the connection ends after its answer" % what)
                        self.assertLessEqual(len(statuses(raw)), 1, "%s: one answer per connection" % what)
                    self.assert_responsive(gw, ws, what)
        self.assert_slots_given_back(gw)
        self.assert_terminates(gw)

    def test_one_worker(self):
        self.run_all(1)

    def test_api_port(self):
        # --api-listen: the API's own port (worker 0) gets the same sequences.
        api_port = free_port()
        gw = self.node(2, ["--api-listen", "127.0.0.1:%d" % api_port])
        ws = self.client(gw.port)
        for path in ["/api/publish", "/healthz", "/admin", "/nope"]:
            for name, parts in self.sequences(path).items():
                what = "%s on %s, API port" % (name, path)
                with self.subTest(what):
                    raw, closed = exchange(api_port, parts, timeout=1.5)
                    self.assertTrue(closed, what)
                    self.assertLessEqual(len(statuses(raw)), 1, what)
                    self.assert_responsive(gw, ws, what)
                    raw, _ = exchange(api_port, [req("POST", "/api/publish", publish_body(), KEY)])
                    self.assertEqual(statuses(raw), [200], what)
        self.assert_slots_given_back(gw)
        self.assert_terminates(gw)

    def test_two_workers(self):
        self.run_all(2)


class PipelinedMixTest(Node):
    """A generated, seeded mix of pipelined requests (bounded: 150 connections, 60 s)."""

    SEED = 1515
    METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    def one(self, rng):
        out = b""
        for _ in range(rng.randint(1, 4)):
            method, path = rng.choice(self.METHODS), rng.choice(PATHS + ["/api/publish"] * 3)
            key = rng.choice([None, KEY, WRONG])
            kind = rng.randint(0, 5)
            if kind == 0:
                out += req(method, path, key=key)
            elif kind == 1:
                out += req(method, path, publish_body() if path == "/api/publish" else b"y" * rng.randint(0, 300), key)
            elif kind == 2:  # announces more than it sends
                out += req(method, path, key=key, extra=b"Content-Length: %d\r\n" % rng.randint(1, 5000)) + b"z"
            elif kind == 3:
                out += req(method, path, key=key, extra=b"Transfer-Encoding: chunked\r\n") + b"3\r\nabc\r\n0\r\n\r\n"
            elif kind == 4:
                out += req(method, path, b"0123456789", key, extra=b"Transfer-Encoding: chunked\r\n")
            else:  # cut short
                r = req(method, path, b"q" * 20, key)
                out += r[:rng.randint(1, len(r))]
        cuts = sorted(rng.sample(range(1, len(out)), min(len(out) - 1, rng.randint(0, 2))))
        return [out[a:b] for a, b in zip([0] + cuts, cuts + [len(out)])]

    def test_mix_one_and_two_workers(self):
        rng = random.Random(self.SEED)
        for workers in (1, 2):
            gw = self.node(workers)
            ws = self.client(gw.port)
            start = time.monotonic()
            for i in range(150):
                if time.monotonic() - start > T(60):
                    self.fail("mix took over 60 s (at connection %d)" % i)
                parts = self.one(rng)
                exchange(gw.port, parts, timeout=0.5, pause=0.01)
                if i % 10 == 9:
                    self.assert_responsive(gw, ws, "seed %d, connection %d, --workers %d" % (self.SEED, i, workers))
            self.assert_responsive(gw, ws, "after the mix, --workers %d" % workers)
            self.assert_slots_given_back(gw)
            self.assert_terminates(gw)


class FramingTest(Node):
    """Findings 4 and 8: framing is judged before anything is read."""

    def test_content_length_with_transfer_encoding_is_400(self):
        gw = self.node(1)
        for path in ["/healthz", "/api/publish"]:
            raw, closed = exchange(gw.port, [req("POST", path, publish_body(), KEY, b"Transfer-Encoding: chunked\r\n")])
            self.assertEqual(statuses(raw), [400], raw)
            self.assertTrue(closed)

    def test_methods_a_path_does_not_serve_get_405(self):
        gw = self.node(1)
        for method in ["POST", "PUT", "PATCH", "DELETE"]:
            for path in ["/healthz", "/metrics", "/"]:
                raw, closed = exchange(gw.port, [req(method, path)])
                self.assertEqual(statuses(raw), [405], (method, path, raw))
                self.assertIn(b"\r\nallow: get\r\n", raw.lower())
                self.assertTrue(closed)

    def test_body_less_post_is_answered_and_the_connection_ends(self):
        # Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 6.3); the
        # node answers it and closes, so nothing behind it on the connection is read as a body.
        gw = self.node(1)
        t0 = time.monotonic()
        raw, closed = exchange(gw.port, [req("POST", "/healthz")], timeout=3)
        self.assertEqual(statuses(raw), [405])
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - t0, T(1))


class BrowserHeadersTest(Node):
    """Finding 7: every response carries nosniff, no framing and a CSP; pages run only the
    node's own scripts; the demo page can be switched off."""

    def test_every_response_carries_the_headers(self):
        gw = self.node(1)
        for path in PATHS + ["/demo.js", "/admin.js"]:
            for method in ["GET", "POST"]:
                with self.subTest(path=path, method=method):
                    raw, _ = exchange(gw.port, [req(method, path, key=KEY)])
                    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower() + "\r\n"
                    self.assertIn("\r\nx-content-type-options: nosniff\r\n", head)
                    self.assertIn("\r\nx-frame-options: deny\r\n", head)
                    self.assertIn("frame-ancestors 'none'", head)
                    self.assertIn("\r\ncontent-security-policy: default-src 'none'", head)
                    self.assertIn("\r\nconnection: close\r\n", head)

    def test_pages_have_no_inline_script_and_no_foreign_server(self):
        gw = self.node(1)
        for path, script in [("/", "/demo.js"), ("/admin", "/admin.js")]:
            status, headers, body = http_get(gw.port, path)
            self.assertEqual(status, 200)
            csp = headers["content-security-policy"]
            self.assertIn("script-src 'self'", csp)
            self.assertIn("connect-src 'self'", csp)
            self.assertNotIn("unsafe-inline'; connect", csp.replace("style-src 'self' 'unsafe-inline'", ""))
            text = body.decode()
            self.assertIn('src="%s"' % script, text)
            self.assertNotIn("<script>", text)
            self.assertNotRegex(text, r"<script[^>]*>[^<]+</script>")
        demo = http_get(gw.port, "/demo.js")[2].decode()
        self.assertNotIn('params.get("ws")', demo, "the demo page takes no ?ws= server")
        admin = http_get(gw.port, "/admin.js")[2].decode()
        self.assertNotIn("sessionStorage.", admin, "the admin key is kept in memory only")
        self.assertNotIn("localStorage.", admin)

    def test_demo_page_can_be_switched_off(self):
        gw = self.node(1, ["--demo-page", "0"])
        for path in ["/", "/index.html", "/demo.js"]:
            self.assertEqual(http_get(gw.port, path)[0], 404, path)
        self.assertEqual(http_get(gw.port, "/healthz")[0], 200)
        self.assertEqual(http_get(gw.port, "/sdk/wsgate.js")[0], 200)


if __name__ == "__main__":
    unittest.main()


class CanonicalPathTest(Node):
    """Finding 8: lws folds %2f, //, /./ and /../ into the path it routes, so these reached the
    publish API; the raw path is judged before lws sees it."""

    def test_non_canonical_paths_are_refused_and_publish_nothing(self):
        gw = self.node(1)
        ch = uniq("demo-canon")
        ws = self.client(gw.port)
        self.assertEqual(ws.subscribe(ch).get("type"), "ack")
        body = publish_body(ch)
        before = gw.metric('wsgate_http_refused_total{reason="bad_request"}', 0)
        paths = ["/api%2fpublish", "/api%2Fpublish", "//api/publish", "/x/../api/publish", "/./api/publish",
                 "/api/publish;x", "/api/publish&x", "/api/publish/.", "/api/./publish"]
        for path in paths:
            with self.subTest(path=path):
                raw, closed = exchange(gw.port, [req("POST", path, body, KEY)])
                self.assertEqual(statuses(raw), [400], raw)
                self.assertIn(b"not canonical", raw)
                self.assertTrue(closed)
        ws.expect_nothing(timeout=0.5)
        self.assertEqual(gw.metric('wsgate_http_refused_total{reason="bad_request"}', 0), before + len(paths))
        # The canonical one still publishes.
        raw, _ = exchange(gw.port, [req("POST", "/api/publish", body, KEY)])
        self.assertEqual(statuses(raw), [200], raw)
        self.assertEqual(ws.recv_message(timeout=T(2))["data"], 1)

    def test_ambiguous_framing_is_refused_before_lws(self):
        gw = self.node(1)
        cases = [
            req("POST", "/api/publish", publish_body(), KEY, b"Content-Length: 5\r\n"),  # two lengths
            req("POST", "/api/publish", None, KEY, b"Content-Length: 1, 1\r\n") + b"x",
            b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n folded\r\n\r\nx",
            b"GET /healthz HTTP/1.1\n\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host
            # lws would switch to HTTP/2 (and hold the connection with no deadline) or answer
            # an unknown upgrade itself, without the node's headers.
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
            b"CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ]
        for raw_req in cases:
            with self.subTest(req=raw_req):
                raw, closed = exchange(gw.port, [raw_req])
                self.assertEqual(statuses(raw), [400], raw)
                self.assertTrue(closed)


class SlowConnectionTest(Node):
    """Finding 5: a total deadline for head and body, connections counted per address and per
    node, accept errors backing off."""

    def test_slow_head_and_slow_body_end_at_the_deadline(self):
        gw = self.node(1, ["--http-timeout", "2"])
        head = req("POST", "/api/publish", None, KEY, b"Content-Length: 65536\r\n")
        for name, first, drip in [("head", head[:20], head[20:]), ("body", head, b"x" * 100)]:
            with self.subTest(name):
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=T(1))
                t0 = time.monotonic()
                s.sendall(first)
                closed_at = None
                for b in drip:  # one byte every 0.3 s: lws' own timeout would restart each time
                    time.sleep(0.3)
                    try:
                        s.sendall(bytes([b]))
                        s.setblocking(False)
                        try:
                            if s.recv(4096, socket.MSG_PEEK) == b"":
                                closed_at = time.monotonic()
                                break
                        except BlockingIOError:
                            pass
                        s.setblocking(True)
                    except OSError:
                        closed_at = time.monotonic()
                        break
                    if time.monotonic() - t0 > T(8):
                        break
                s.close()
                self.assertIsNotNone(closed_at, "%s: the connection outlived its deadline" % name)
                self.assertLess(closed_at - t0, T(3.5), name)
                self.assertGreater(closed_at - t0, 1.5, name)
        self.assertGreaterEqual(gw.metric('wsgate_http_refused_total{reason="timeout"}', 0), 2)

    def idle(self, port, n, source="127.0.0.1"):
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            socks.append(s)
            self.addCleanup(s.close)
        return socks

    def refused_at_once(self, port, source="127.0.0.1"):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(T(1))
        s.connect(("127.0.0.1", port))
        try:
            data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            data = None
        finally:
            s.close()
        return data is not None and statuses(data) in ([503], [])

    def test_plain_http_connections_are_bounded_per_address_and_per_node(self):
        # One worker: its one backlog accepts in connect order, so the ninth comes after the
        # eight (with two, a busy worker may still hold one of them unaccepted).
        gw = self.node(1, ["--max-http-connections-per-ip", "5", "--max-http-connections", "8"])
        held = self.idle(gw.port, 3) + [self.publish_in_progress(gw.port) for _ in range(2)]
        self.assertTrue(self.refused_at_once(gw.port), "a sixth connection from the address")
        # Other addresses still get in, up to the node's 8.
        others = self.idle(gw.port, 3, "127.0.0.2")
        self.assertTrue(self.refused_at_once(gw.port, "127.0.0.3"), "a ninth connection on the node")
        for s in held + others:
            s.close()
        time.sleep(0.3)
        # (The scrape itself needs a slot: only now.)
        self.assertEqual(http_get(gw.port, "/healthz", timeout=T(1))[0], 200)
        self.assertEqual(gw.metric('wsgate_http_refused_total{reason="per_ip"}', 0), 1)
        self.assertEqual(gw.metric('wsgate_http_refused_total{reason="limit"}', 0), 1)

    def publish_in_progress(self, port):
        """A publish whose head is in (lws has it) and whose body is not: still counted."""
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req("POST", "/api/publish", None, KEY, b"Content-Length: 1000\r\n") + b"{")
        self.addCleanup(s.close)
        time.sleep(0.1)
        return s

    def test_accept_errors_back_off_and_log_once_a_second(self):
        # 48 descriptors: the node's own take about 20, so idle connections soon make accept4
        # fail with EMFILE. It used to spin on the readable listen socket, logging each failure
        # (2.0 M lines in 12 s).
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--log-level", "info"],
                                wrapper=["prlimit", "--nofile=48:48"])
        socks = []
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", gw.port))
            socks.append(s)
            self.addCleanup(s.close)
        wait_until(lambda: "accept failed" in gw.log_text(), T(5), what="an accept error")
        cpu0 = self.cpu(gw.proc.pid)
        lines0 = gw.log_text().count("accept failed")
        time.sleep(3)
        cpu = self.cpu(gw.proc.pid) - cpu0
        lines = gw.log_text().count("accept failed") - lines0
        self.assertLessEqual(lines, 4, "log lines of accept errors in 3 s")
        self.assertLess(cpu, 0.6, "CPU seconds the node used in 3 s of EMFILE")
        for s in socks:
            s.close()
        wait_until(lambda: http_get(gw.port, "/healthz", timeout=T(1))[0] == 200, T(5), what="accepting again")
        self.assertGreater(gw.metric('wsgate_http_refused_total{reason="accept_error"}', 0), 0)

    @staticmethod
    def cpu(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
