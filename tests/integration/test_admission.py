"""Who may open a WebSocket (issue 9, items 4 and 6): the Origin check and the per-IP limit.

Origin: with no --allowed-origins a browser page may connect only to its own Host; requests
without an Origin (non-browser clients) are allowed; everything else gets HTTP 403, checked
byte by byte on a raw socket, and is counted in wsgate_upgrades_refused_total{reason="origin"}.
With a list, only the list decides (exact origins and *.domain wildcards).

Per IP: --max-connections-per-ip N counts WebSocket connections per TCP peer address over all
workers. Distinct source addresses come from binding client sockets to 127.0.0.2, 127.0.0.3...
before connecting (all of 127/8 is local on Linux).
"""

import socket
import unittest

from wsgate_harness import (run_wsgate, GatewayTestCase, HandshakeError, NO_RATE_LIMIT, T,
                            WSClient, wait_until, REFUSED, burst_upgrades, upgrade_request)

ORIGIN_KEY = 'wsgate_upgrades_refused_total{reason="origin"}'
PER_IP_KEY = 'wsgate_upgrades_refused_total{reason="per_ip"}'


def raw_exchange(port, request, source=None, timeout=5.0):
    """Sends request on a fresh socket and reads until the server closes it (or until a
    101's headers are complete). Returns (bytes read, closed by server)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(T(timeout))
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
            if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                return data, False
    finally:
        s.close()


class OriginTestBase(GatewayTestCase):
    def assert_upgrades(self, gw, origin, host_header=None):
        host_header = host_header or "127.0.0.1:%d" % gw.port
        extra = {"Origin": origin} if origin is not None else {}
        c = WSClient(gw.port, host_header=host_header, extra_headers=extra, timeout=5)
        try:
            self.assertEqual(c.ping().get("type"), "pong")
        finally:
            c.close()

    def assert_forbidden(self, gw, origin, host_header=None):
        """The upgrade gets exactly our 403, and then the server closes the connection."""
        host_header = host_header or "127.0.0.1:%d" % gw.port
        data, closed = raw_exchange(gw.port, upgrade_request(host_header, origin))
        head, sep, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.assertEqual(lines[0], "HTTP/1.1 403 Forbidden",
                         "Origin %r, Host %r: answer %r" % (origin, host_header, data[:200]))
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                   for l in lines[1:]}
        self.assertEqual(headers.get("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(int(headers.get("content-length", "-1")), len(body))
        self.assertEqual(body, b"origin not allowed\n")
        self.assertTrue(closed, "the server must close the connection after the 403")
        self.assertNotIn("sec-websocket-accept", headers)


class DefaultOriginRuleTest(OriginTestBase):
    """No --allowed-origins: the same-host rule."""

    @classmethod
    def setUpClass(cls):
        cls.gw = cls.start_class_gateway(None, NO_RATE_LIMIT)
        cls.gw.wait_ready()

    def test_same_host_and_absent_origin_allowed_others_refused(self):
        gw, port = self.gw, self.gw.port
        before = gw.metric(ORIGIN_KEY, 0)
        # Allowed: no Origin at all (non-browser client), and the page's own host.
        self.assert_upgrades(gw, None)
        self.assert_upgrades(gw, "http://127.0.0.1:%d" % port)
        self.assert_upgrades(gw, "https://127.0.0.1:%d" % port)
        self.assert_upgrades(gw, "http://LocalHost:%d" % port, host_header="localhost:%d" % port)
        # Behind a TLS proxy: Host without a port, page on https's default port.
        self.assert_upgrades(gw, "https://app.example.com", host_header="app.example.com")
        self.assertEqual(gw.metric(ORIGIN_KEY, 0), before)

        refused = [
            ("http://localhost:%d" % port, None),  # another host name for the same address
            ("http://evil.example", None),
            ("http://127.0.0.1:%d" % (port + 1), None),  # same host, other port
            ("http://127.0.0.1", None),  # default port 80, Host says another
            ("https://app.example.com:8443", "app.example.com"),
            ("https://sub.app.example.com", "app.example.com"),
            # Malformed: refused whatever the Host says.
            ("null", None),
            ("http://127.0.0.1:%d/" % port, None),
            ("http://127.0.0.1:%d/page" % port, None),
            ("127.0.0.1:%d" % port, None),
            ("ftp://127.0.0.1:%d" % port, None),
            ("http://user@127.0.0.1:%d" % port, None),
            ("http://127.0.0.1:%d, http://evil.example" % port, None),
            ("http://" + "a" * 400, None),
        ]
        for origin, host in refused:
            self.assert_forbidden(gw, origin, host)
        wait_until(lambda: gw.metric(ORIGIN_KEY, 0) - before == len(refused), T(5),
                   what="%d origin refusals in /metrics" % len(refused))
        # Refused upgrades hold no connection slot, and the node still serves.
        self.assertEqual(gw.metric("wsgate_connections"), 0)
        self.assertEqual(gw.http_get("/healthz")[0], 200)
        self.assert_upgrades(gw, None)

    def test_refused_origin_is_a_403_for_the_harness_client_too(self):
        with self.assertRaises(HandshakeError) as ctx:
            WSClient(self.gw.port, extra_headers={"Origin": "https://evil.example"})
        self.assertEqual(ctx.exception.status, 403)


class AllowedOriginsListTest(OriginTestBase):
    """--allowed-origins given: exact and wildcard entries; the same-host rule is off."""

    @classmethod
    def setUpClass(cls):
        # Through the environment, as the Helm chart sets it.
        cls.gw = cls.start_class_gateway(
            None, NO_RATE_LIMIT,
            env={"WSGATE_ALLOWED_ORIGINS": "https://app.example.com, https://*.example.org,"
                                           "*.example.net:8443"})
        cls.gw.wait_ready()

    def test_exact_and_wildcard_entries(self):
        gw, port = self.gw, self.gw.port
        before = gw.metric(ORIGIN_KEY, 0)
        for origin in ["https://app.example.com", "https://APP.EXAMPLE.COM:443",
                       "https://a.example.org", "https://a.b.example.org",
                       "https://x.example.net:8443", "http://x.example.net:8443", None]:
            self.assert_upgrades(gw, origin)
        refused = ["http://app.example.com", "https://app.example.com:8443",
                   "https://www.app.example.com", "https://example.org", "http://a.example.org",
                   "https://a.example.org.evil.example", "https://x.example.net",
                   "https://example.net:8443", "http://127.0.0.1:%d" % port, "null"]
        for origin in refused:
            self.assert_forbidden(gw, origin)
        wait_until(lambda: gw.metric(ORIGIN_KEY, 0) - before == len(refused), T(5),
                   what="%d origin refusals in /metrics" % len(refused))


class BadConfigTest(unittest.TestCase):
    def test_malformed_allowed_origins_stop_the_node_at_startup(self):
        r = run_wsgate(["--allowed-origins", "https://app.example.com/"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('--allowed-origins: origin "https://app.example.com/": an origin has no path',
                      r.stderr.decode())


class PerIpLimitTest(GatewayTestCase):
    LIMIT = 3

    def setUp(self):
        self.refusals = 0  # per-IP refusals this test saw, retries included

    def expect_refused(self, port, source):
        with self.assertRaises(REFUSED):
            WSClient(port, source=source, timeout=3).abort()
        self.refusals += 1

    def connect_when_free(self, port, source, what):
        """Connects from source, retrying while the freed slot is not given back yet."""
        def attempt():
            try:
                c = WSClient(port, source=source, timeout=3)
            except REFUSED:
                self.refusals += 1
                return None
            self.addCleanup(c.abort)
            return c
        return wait_until(attempt, T(5), what=what)

    def test_limit_per_source_address(self):
        gw = self.start_gateway(None, ["--max-connections-per-ip", str(self.LIMIT)] + NO_RATE_LIMIT)
        held = [self.client(gw.port, source="127.0.0.2") for _ in range(self.LIMIT)]
        for c in held:
            self.assertEqual(c.ping().get("type"), "pong")
        self.expect_refused(gw.port, "127.0.0.2")
        wait_until(lambda: gw.metric(PER_IP_KEY, 0) == 1, T(5), what="one per_ip refusal counted")
        self.assertEqual(gw.metric('wsgate_upgrades_refused_total{reason="limit"}'), 0)

        # Other addresses have their own slots.
        other = [self.client(gw.port, source="127.0.0.3") for _ in range(self.LIMIT)]
        self.assertEqual(other[-1].ping().get("type"), "pong")
        local = self.client(gw.port)
        self.assertEqual(local.ping().get("type"), "pong")
        self.assertEqual(gw.metric("wsgate_connections"), 2 * self.LIMIT + 1)

        # Closing one frees one slot, exactly one.
        held[0].close()
        wait_until(lambda: gw.metric("wsgate_connections") == 2 * self.LIMIT, T(5),
                   what="the closed client gone")
        again = self.connect_when_free(gw.port, "127.0.0.2", "a slot for 127.0.0.2 again")
        self.assertEqual(again.ping().get("type"), "pong")
        self.expect_refused(gw.port, "127.0.0.2")

        # A connection dropped by a reset gives its slot back too.
        held[1].abort(rst=True)
        wait_until(lambda: gw.metric("wsgate_connections") == 2 * self.LIMIT, T(5),
                   what="the reset client gone")
        self.connect_when_free(gw.port, "127.0.0.2", "a slot for 127.0.0.2 after a reset")
        self.expect_refused(gw.port, "127.0.0.2")
        wait_until(lambda: gw.metric(PER_IP_KEY, 0) == self.refusals, T(5),
                   what="%d per_ip refusals counted" % self.refusals)

        # An upgrade refused for its Origin takes no slot of its address.
        for _ in range(3):
            with self.assertRaises(HandshakeError):
                WSClient(gw.port, source="127.0.0.4", extra_headers={"Origin": "https://evil.example"})
        fresh = [self.client(gw.port, source="127.0.0.4") for _ in range(self.LIMIT)]
        self.assertEqual(fresh[-1].ping().get("type"), "pong")
        self.assertEqual(gw.metric(ORIGIN_KEY), 3)
        self.assertEqual(gw.metric(PER_IP_KEY), self.refusals)

    def test_zero_means_no_limit(self):
        gw = self.start_gateway(None, NO_RATE_LIMIT + ["--max-connections-per-ip", "0"])
        clients = [self.client(gw.port, source="127.0.0.5") for _ in range(20)]
        self.assertEqual(clients[-1].ping().get("type"), "pong")
        self.assertEqual(gw.metric(PER_IP_KEY), 0)




class ConcurrentPerIpLimitTest(GatewayTestCase):
    LIMIT = 10
    PER_SOURCE = 60
    SOURCES = ["127.0.0.6", "127.0.0.7", "127.0.0.8"]
    WORKERS = 2
    ROUNDS = 10

    def test_concurrent_upgrades_on_two_workers_never_exceed_the_limit(self):
        gw = self.start_gateway(None, ["--workers", str(self.WORKERS), "--max-connections-per-ip",
                                       str(self.LIMIT)] + NO_RATE_LIMIT)
        counted_before = 0
        for rnd in range(self.ROUNDS):
            upgraded, refused, undecided = burst_upgrades(gw.port, self.SOURCES, self.PER_SOURCE, 6, T(5))
            try:
                self.assertEqual(undecided, 0, "round %d: upgrades left without an answer" % rnd)
                for src in self.SOURCES:
                    self.assertEqual(len(upgraded[src]), self.LIMIT,
                                     "round %d: %s got %d upgrades with a limit of %d"
                                     % (rnd, src, len(upgraded[src]), self.LIMIT))
                total_refused = sum(refused.values())
                wait_until(lambda: gw.metric(PER_IP_KEY, 0) - counted_before >= total_refused,
                           T(5), what="per_ip refusals in /metrics")
                counted = gw.metric(PER_IP_KEY) - counted_before
                self.assertEqual(counted, total_refused, "round %d: refusals counted" % rnd)
                self.assertEqual(gw.metric("wsgate_connections"), self.LIMIT * len(self.SOURCES))
                counted_before += counted
            finally:
                for socks in upgraded.values():
                    for s in socks:
                        s.close()
            wait_until(lambda: gw.metric("wsgate_connections") == 0, T(5),
                       what="every client gone after round %d" % rnd)
        # No slot leaked: each address fills up again one by one, and no further.
        for src in self.SOURCES:
            clients = [self.client(gw.port, source=src) for _ in range(self.LIMIT)]
            self.assertEqual(clients[-1].ping().get("type"), "pong")
            with self.assertRaises(REFUSED):
                WSClient(gw.port, source=src, timeout=3).abort()


if __name__ == "__main__":
    unittest.main()
