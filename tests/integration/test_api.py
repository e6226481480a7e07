"""HTTP publish API (issue 9, item 5): POST /api/publish with a bearer key from
--api-key-file publishes through Redis and answers once Redis took the message.

Covers: delivery to a WebSocket subscriber, key rotation (second key), 401 for a
missing/bad key, 400 for bad JSON / missing or bad channel, 413 for a body over
--max-api-body-bytes (answered without reading it), 411 without Content-Length, 405 for
other methods, 503 while Redis is down, a connection that closes before its result, 404
when no key file is given, --api-listen (API only there, 404 on the main port), startup
errors, and wsgate_api_requests_total{code}.

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_api
"""

import http.client
import json
import os
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import (run_wsgate, REFUSED, NO_RATE_LIMIT, GatewayTestCase, T, WSClient, free_port,  # noqa: E402
                            plain, read_until_close, uniq, wait_until)

KEY1 = "k1-3f9a0c2e7b5d4a1e9c8b"
KEY2 = "k2-rotated-77d1e0a4b6c3f2"
MAX_BODY = 1024


def key_file(testcase, text):
    d = tempfile.mkdtemp(prefix="wsgate-api-")
    path = os.path.join(d, "keys")
    with open(path, "w") as f:
        f.write(text)
    testcase.addCleanup(lambda: (os.unlink(path), os.rmdir(d)))
    return path


def post(port, body, key=KEY1, method="POST", path="/api/publish", headers=None, conn=None):
    """One request -> (status, {lower-case header: value}, parsed JSON body or raw bytes)."""
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=T(5))
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def raw(port, data, timeout=5):
    """Writes data, reads until the server closes -> (status, headers, body, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=T(timeout))
    try:
        s.sendall(data)
        buf, closed = read_until_close(s, T(timeout))
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0] else None
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body, closed
    finally:
        s.close()


def api_count(gw, code):
    return gw.metrics().get('wsgate_api_requests_total{code="%d"}' % code, 0)


class ApiTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="wsgate-api-")
        cls.keys = os.path.join(d, "keys")
        with open(cls.keys, "w") as f:
            f.write("# backend keys\n%s\n\n  # the next one is being rotated in\n%s   \n" % (KEY1, KEY2))
        cls.addClassCleanup(lambda: (os.unlink(cls.keys), os.rmdir(d)))
        cls.redis = cls.start_class_redis()
        # Two workers: the request and the subscriber may sit on different ones.
        cls.gw = cls.start_class_gateway(cls.redis.port, NO_RATE_LIMIT + [
            "--workers", "2", "--api-key-file", cls.keys, "--max-api-body-bytes", str(MAX_BODY)],
            name="api")
        cls.gw.wait_ready()

    def subscriber(self):
        c = self.client(self.gw.port)
        ch = uniq("api")
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        return c, ch

    def test_publish_reaches_a_subscriber(self):
        c, ch = self.subscriber()
        ok0 = self.gw.metrics().get('wsgate_client_publishes_total{result="ok"}', 0)
        n200 = api_count(self.gw, 200)
        status, headers, body = post(self.gw.port, {"channel": ch, "data": {"n": 1, "s": "h\u00e9"}})
        self.assertEqual((status, body), (200, {"ok": True, "offset": 1, "epoch": body.get("epoch")}))
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        msg = c.recv_message(timeout=5)
        self.assertEqual((msg["channel"], msg["data"]), (ch, {"n": 1, "s": "h\u00e9"}))
        # Any JSON value is data, and Redis sees the compact JSON text.
        for data in ["text", 7, None, [1, {"a": []}]]:
            self.assertEqual(post(self.gw.port, {"channel": ch, "data": data})[0], 200)
            self.assertEqual(c.recv_message(timeout=5)["data"], data)
        m = self.gw.metrics()
        self.assertEqual(m['wsgate_api_requests_total{code="200"}'], n200 + 5)
        self.assertEqual(m['wsgate_client_publishes_total{result="ok"}'], ok0 + 5)

    def test_second_key_works_rotation(self):
        c, ch = self.subscriber()
        self.assertEqual(post(self.gw.port, {"channel": ch, "data": 2}, key=KEY2)[0], 200)
        self.assertEqual(c.recv_message(timeout=5)["data"], 2)

    def test_each_answer_closes_its_connection(self):
        # No keep-alive (issue 15, finding 1: a pipelined request with a body wedged lws): every
        # answer says "connection: close" and ends the connection; a client library simply
        # opens the next one, and the publishes go through in order.
        c, ch = self.subscriber()
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=T(5))
        self.addCleanup(conn.close)
        for i in range(5):
            status, headers, body = post(self.gw.port, {"channel": ch, "data": i}, conn=conn)
            self.assertEqual((status, plain(body)), (200, {"ok": True}))
            self.assertEqual(body["offset"], i + 1)
            self.assertEqual(headers.get("connection"), "close")
            self.assertIsNone(conn.sock, "the client saw the connection end")
        self.assertEqual(post(self.gw.port, "{nope", conn=conn)[:2][0], 400)
        self.assertEqual(post(self.gw.port, {"channel": ch, "data": 5}, conn=conn)[0], 200)
        self.assertEqual([m["data"] for m in c.recv_messages(6, timeout=5)], list(range(6)))

    def test_unauthorized(self):
        c, ch = self.subscriber()
        n401 = api_count(self.gw, 401)
        body = {"channel": ch, "data": "x"}
        cases = [
            ("no header", None, {}),
            ("wrong key", "k1-3f9a0c2e7b5d4a1e9c8c", {}),
            ("prefix of a key", KEY1[:-1], {}),
            ("key plus a byte", KEY1 + "0", {}),
            ("empty bearer", "", {}),
            ("other scheme", None, {"Authorization": "Basic " + KEY1}),
        ]
        for what, key, extra in cases:
            with self.subTest(what):
                status, headers, data = post(self.gw.port, body, key=key, headers=extra)
                self.assertEqual(status, 401)
                self.assertEqual(headers.get("www-authenticate"), "Bearer")
                self.assertEqual(data["error"], "unauthorized")
                self.assertTrue(data["message"])
        self.assertEqual(post(self.gw.port, body, headers={"Authorization": "bearer  " + KEY1})[0], 200)
        self.assertEqual(c.recv_message(timeout=5)["data"], "x")
        c.expect_nothing(0.3)
        self.assertEqual(api_count(self.gw, 401), n401 + len(cases))

    def test_bad_requests(self):
        n400 = api_count(self.gw, 400)
        cases = [
            ("{nope", "bad_json"),
            ("", "bad_json"),
            ('{"channel": "a", "data": 1', "bad_json"),
            ('[1, 2]', "bad_request"),
            ('{"data": 1}', "bad_request"),
            ('{"channel": 5, "data": 1}', "bad_request"),
            ('{"channel": "room:1"}', "bad_request"),
            ('{"channel": "__wsgate:hb:x", "channel": "room:1", "data": 1}', "bad_request"),
            ('{"channel": "a b", "data": 1}', "bad_channel"),
            ('{"channel": "%s", "data": 1}' % ("c" * 129), "bad_channel"),
        ]
        for text, slug in cases:
            with self.subTest(body=text):
                status, _, data = post(self.gw.port, text)
                self.assertEqual(status, 400)
                self.assertEqual(data["error"], slug, data)
                self.assertTrue(data["message"])
        self.assertEqual(api_count(self.gw, 400), n400 + len(cases))

    def test_oversized_body_is_refused_unread(self):
        n413 = api_count(self.gw, 413)
        # Only the headers are sent: the answer must not wait for the body.
        req = ("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" % KEY1).encode()
        status, headers, body, closed = raw(self.gw.port, req)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["error"], "message_too_large")
        self.assertTrue(closed, "connection must end: the body was not read")
        # One byte over the limit, sent whole.
        ch = uniq("api")
        text = json.dumps({"channel": ch, "data": "x" * MAX_BODY})
        self.assertGreater(len(text), MAX_BODY)
        status, _, data = post(self.gw.port, text)
        self.assertEqual((status, data["error"]), (413, "message_too_large"))
        self.assertEqual(api_count(self.gw, 413), n413 + 2)
        # At the limit is fine.
        base = json.dumps({"channel": ch, "data": ""})
        text = base[:-2] + "y" * (MAX_BODY - len(base)) + '"}'
        self.assertEqual(len(text), MAX_BODY)
        self.assertEqual(post(self.gw.port, text)[0], 200)

    def test_length_required(self):
        req = ("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               '{"channel":"a","data":1}' % KEY1).encode()
        status, _, body, closed = raw(self.gw.port, req)
        self.assertEqual(status, 411)
        self.assertEqual(json.loads(body)["error"], "bad_request")
        self.assertTrue(closed)

    def test_other_methods_405(self):
        n405 = api_count(self.gw, 405)
        for method in ["GET", "PUT", "DELETE"]:
            with self.subTest(method=method):
                status, headers, data = post(self.gw.port, None, method=method)
                self.assertEqual(status, 405)
                self.assertEqual(headers.get("allow"), "POST")
                self.assertEqual(data["error"], "method_not_allowed")
        self.assertEqual(api_count(self.gw, 405), n405 + 3)

    def test_other_endpoints_unchanged(self):
        self.assertEqual(self.gw.http_get("/healthz")[0], 200)
        self.assertEqual(self.gw.http_get("/api/publishx")[0], 404)
        self.assertEqual(post(self.gw.port, {"channel": "a", "data": 1}, path="/api")[0], 404)

    def test_metrics_predeclare_every_code(self):
        m = self.gw.metrics()
        for code in [200, 400, 401, 405, 411, 413, 503]:
            self.assertIn('wsgate_api_requests_total{code="%d"}' % code, m)


class ApiRedisDownTest(GatewayTestCase):
    def setUp(self):
        self.keys = key_file(self, KEY1 + "\n")
        self.redis = self.start_redis()
        self.gw = self.start_gateway(self.redis.port, ["--api-key-file", self.keys])

    def test_503_while_redis_is_down(self):
        c = self.client(self.gw.port)
        ch = uniq("api")
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        self.redis.stop()
        self.gw.wait_readyz(503, T(5))
        n503 = api_count(self.gw, 503)
        status, _, data = post(self.gw.port, {"channel": ch, "data": 1})
        self.assertEqual(status, 503)
        self.assertEqual(data["error"], "unavailable")
        self.assertEqual(api_count(self.gw, 503), n503 + 1)
        self.redis.restart()
        self.gw.wait_ready()
        wait_until(lambda: self.redis.numsub("gw:" + ch) == 1, T(5), what="resubscribed")
        self.assertEqual(post(self.gw.port, {"channel": ch, "data": 2})[0], 200)
        self.assertEqual(c.recv_message(timeout=5)["data"], 2)

    def test_client_gone_before_the_result(self):
        """A publish waits on a wedged Redis; its connection closes; the result that
        comes when the link is declared dead finds nothing and is dropped."""
        self.redis.pause()
        self.addCleanup(self.redis.resume)
        req = ("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
        body = json.dumps({"channel": uniq("api"), "data": 1})
        socks = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=T(5))
            s.sendall((req % (KEY1, len(body), body)).encode())
            socks.append(s)
        time.sleep(0.3)
        for s in socks:
            s.close()
        self.gw.wait_readyz(503, T(5))  # the heartbeat is missed: pending publishes fail
        wait_until(lambda: self.gw.log_text().count("publish result dropped") == 3, T(5),
                   what="three results dropped")
        self.redis.resume()
        self.gw.wait_ready()
        self.assertEqual(post(self.gw.port, {"channel": uniq("api"), "data": 2})[0], 200)


class ApiOffTest(GatewayTestCase):
    def test_no_key_file_404(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port)
        for method in ["POST", "GET"]:
            with self.subTest(method=method):
                status, _, _ = post(gw.port, {"channel": "a", "data": 1}, method=method)
                self.assertEqual(status, 404)
        self.assertEqual(api_count(gw, 404), 0)


class ApiReservedTest(GatewayTestCase):
    def test_nodes_own_channels_are_refused(self):
        # With an empty prefix a backend could otherwise forge a node's heartbeat.
        keys = key_file(self, KEY1 + "\n")
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--api-key-file", keys, "--channel-prefix", "",
                                             "--node-id", "n1"])
        status, _, body = post(gw.port, {"channel": "__wsgate:hb:n1", "data": 1})
        self.assertEqual((status, body["error"]), (403, "forbidden"))
        self.assertEqual(api_count(gw, 403), 1)
        self.assertEqual(post(gw.port, {"channel": "room:1", "data": 1})[0], 200)


class ApiListenTest(GatewayTestCase):
    def test_api_only_on_its_own_port(self):
        keys = key_file(self, KEY1 + "\n")
        redis = self.start_redis()
        api_port = free_port()
        gw = self.start_gateway(redis.port, ["--workers", "2", "--api-key-file", keys,
                                             "--api-listen", "127.0.0.1:%d" % api_port])
        wait_until(lambda: gw.log_text().find("api listening") >= 0, T(5), what="api listening")
        c = self.client(gw.port)
        ch = uniq("api")
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        for _ in range(2):
            status, _, body = post(api_port, {"channel": ch, "data": "own port"})
            self.assertEqual((status, plain(body)), (200, {"ok": True}))
        self.assertEqual([m["data"] for m in c.recv_messages(2, timeout=5)], ["own port"] * 2)
        # The main port does not serve it; the API port serves nothing else.
        self.assertEqual(post(gw.port, {"channel": ch, "data": 1})[0], 404)
        self.assertEqual(post(api_port, {"channel": ch, "data": 1}, key="bad-key-0123456789")[0], 401)
        for path in ["/healthz", "/metrics", "/"]:
            with self.subTest(path=path):
                self.assertEqual(post(api_port, None, method="GET", path=path)[0], 404)
        with self.assertRaises(REFUSED):
            WSClient(api_port, timeout=3)
        c.expect_nothing(0.3)
        self.assertEqual(gw.metrics()['wsgate_api_requests_total{code="200"}'], 2)


class ApiStartupTest(GatewayTestCase):
    def run_bin(self, args):
        # The harness's development access, so only the API settings can stop the node.
        return run_wsgate(args, listen=True, dev_access=True)

    def test_bad_key_files_stop_the_node(self):
        # A sentinel no flag name contains ("secret" is in --jwt-hmac-secret-file).
        short = key_file(self, "# too short\nsekr3t\n")
        empty = key_file(self, "# nothing here\n\n")
        cases = [
            (["--api-key-file", "/nonexistent/keys"], "cannot open api key file"),
            (["--api-key-file", short], "line 2"),
            (["--api-key-file", empty], "holds no key"),
            (["--api-listen", "127.0.0.1:%d" % free_port()], "--api-listen needs --api-key-file"),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                p = self.run_bin(args)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(words, (p.stdout + p.stderr).decode())
        p = self.run_bin(["--api-key-file", short])
        self.assertNotIn("sekr3t", (p.stdout + p.stderr).decode(), "a key must never be logged")


if __name__ == "__main__":
    unittest.main()
