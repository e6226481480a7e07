"""Server API for backends (issue 21) on real processes: POST /api/disconnect closes every
connection of a user (the token's sub) on every node, with the close code the request asks
for (4010 reconnect, 4011 stop, 4100..4499 application codes), and answers how many were
closed and how many nodes answered; it refuses without a key, with a bad body, past
--max-api-body-bytes, for other methods; standalone nodes carry it out alone.

Two nodes share one Redis; node A runs two workers, so its count is a sum over workers.
Tokens are minted by PyJWT (Debian python3-jwt), never by project code.

Run alone: WSGATE_BIN=build/gateway/wsgate /usr/bin/python3 -m unittest -v test_server_api
With WSGATE_TEST_REDIS_CLUSTER=1 (integration_server_api_cluster) every case runs again on a
Redis Cluster (3 masters + 3 replicas, redis+cluster://): the control plane's names are then
those of docs/PROTOCOL.md for that mode (the {wsgate} hash tag).
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import GatewayTestCase, T, wait_until  # noqa: E402

try:
    import jwt
except ImportError as e:  # pragma: no cover
    raise unittest.SkipTest("needs python3-jwt: %s" % e)

CLUSTER = os.environ.get("WSGATE_TEST_REDIS_CLUSTER") == "1"
# The control plane's Redis names per mode (docs/PROTOCOL.md, "Control plane per Redis mode").
CTL_CHANNEL = "__wsgate:ctl:{wsgate}" if CLUSTER else "__wsgate:ctl"
REVOKED = "{wsgate}:revoked" if CLUSTER else "wsgate:revoked"

KEY = "srvapi-key-0a1b2c3d4e5f6a7b"
ISS = "https://auth.test"
AUD = "wsgate-test"
MAX_BODY = 1024


def api(port, path, body, key=KEY, method="POST"):
    """One request -> (status, parsed JSON body or raw bytes)."""
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=T(10))
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return r.status, data
    finally:
        c.close()


class ServerApiBase(GatewayTestCase):
    @classmethod
    def make_files(cls):
        cls.dir = tempfile.mkdtemp(prefix="wsgate-srvapi-")
        cls.secret = os.urandom(24).hex().encode()
        cls.secret_file = os.path.join(cls.dir, "hmac.secret")
        with open(cls.secret_file, "wb") as f:
            f.write(cls.secret + b"\n")
        cls.keys = os.path.join(cls.dir, "keys")
        with open(cls.keys, "w") as f:
            f.write(KEY + "\n")
        cls.addClassCleanup(lambda: [os.unlink(os.path.join(cls.dir, n)) for n in os.listdir(cls.dir)]
                            and os.rmdir(cls.dir))

    @classmethod
    def args(cls, workers=1):
        return ["--jwt-hmac-secret-file", cls.secret_file, "--jwt-issuer", ISS, "--jwt-audience", AUD,
                "--api-key-file", cls.keys, "--max-api-body-bytes", str(MAX_BODY), "--workers", str(workers)]

    def mint(self, sub, iat=None, ttl=300):
        now = int(time.time())
        c = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now if iat is None else iat, "exp": now + ttl,
             "channels": ["room:*"], "publish": ["room:*"]}
        return jwt.encode(c, self.secret, algorithm="HS256")

    def user(self, gw, sub):
        """An authenticated, subscribed connection of sub on gw."""
        c = self.client(gw.port)
        r = c.request({"type": "auth", "token": self.mint(sub), "id": c.new_id()})
        self.assertEqual(r.get("type"), "ack", r)
        r = c.subscribe("room:1")
        self.assertEqual(r.get("type"), "ack", r)
        return c

    def shed(self, gw):
        return gw.metric('wsgate_clients_shed_total{reason="api_disconnect"}', 0)


class DisconnectCluster(ServerApiBase):
    @classmethod
    def setUpClass(cls):
        cls.make_files()
        cls.redis = cls.start_class_redis()
        cls.a = cls.start_class_gateway(cls.redis.port, cls.args(workers=2))
        cls.b = cls.start_class_gateway(cls.redis.port, cls.args())
        cls.a.wait_ready()
        cls.b.wait_ready()

    def test_disconnect_everywhere_count_right(self):
        """alice has 3 connections on A (two workers) and 2 on B; all five close with
        4010, the answer says 5 closed by 2 nodes of 2, and bob is untouched."""
        sub = "alice-%d" % time.monotonic_ns()
        mine = [self.user(self.a, sub) for _ in range(3)] + [self.user(self.b, sub) for _ in range(2)]
        bob = self.user(self.b, "bob")
        shed_a, shed_b = self.shed(self.a), self.shed(self.b)
        st, body = api(self.a.port, "/api/disconnect", {"user": sub})
        self.assertEqual(st, 200, body)
        self.assertEqual(body, {"ok": True, "closed": 5, "nodes": 2, "answered": 2})
        for c in mine:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))
        self.assertEqual(bob.ping().get("type"), "pong")
        wait_until(lambda: self.shed(self.a) == shed_a + 3 and self.shed(self.b) == shed_b + 2, T(5),
                   what="wsgate_clients_shed_total{reason=api_disconnect} +3 on A, +2 on B")
        # Nothing of that user is left: a second call closes nothing.
        st, body = api(self.b.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 0, "nodes": 2, "answered": 2}))

    def test_code_and_reason(self):
        """reconnect:false closes with 4011; an application code and reason are passed on."""
        sub = "carol-%d" % time.monotonic_ns()
        c1, c2 = self.user(self.b, sub), self.user(self.a, sub)
        st, body = api(self.b.port, "/api/disconnect", {"user": sub, "reconnect": False, "reason": "banned"})
        self.assertEqual((st, body.get("closed")), (200, 2), body)
        self.assertEqual(c1.expect_close(timeout=5), (4011, "banned"))
        self.assertEqual(c2.expect_close(timeout=5), (4011, "banned"))
        c3 = self.user(self.a, sub)
        st, body = api(self.a.port, "/api/disconnect", {"user": sub, "code": 4301})
        self.assertEqual((st, body.get("closed")), (200, 1), body)
        self.assertEqual(c3.expect_close(timeout=5), (4301, "disconnected, do not reconnect"))

    def test_unknown_user_and_anonymous(self):
        """A user nobody is connected as closes nothing; the sub must match exactly."""
        c = self.user(self.a, "dave")
        st, body = api(self.a.port, "/api/disconnect", {"user": "Dave"})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 0, "nodes": 2, "answered": 2}))
        self.assertEqual(c.ping().get("type"), "pong")

    def test_refusals(self):
        """No key / wrong key 401, other methods 405, bad JSON and bad members 400, a body
        over --max-api-body-bytes 413; none of them closes anything."""
        c = self.user(self.a, "erin")
        good = {"user": "erin"}
        self.assertEqual(api(self.a.port, "/api/disconnect", good, key=None)[0], 401)
        self.assertEqual(api(self.a.port, "/api/disconnect", good, key="not-a-key-0000000000")[0], 401)
        self.assertEqual(api(self.a.port, "/api/disconnect", None, method="GET")[0], 405)
        self.assertEqual(api(self.a.port, "/api/disconnect", good, method="PUT")[0], 405)
        for bad, slug in [(b"{", "bad_json"), (b"", "bad_json"), ({"user": ""}, "bad_request"),
                          ({"user": 5}, "bad_request"), ({"usr": "erin"}, "bad_request"),
                          ({"user": "erin", "code": 4008}, "bad_request"),
                          ({"user": "erin", "code": 4300, "reconnect": True}, "bad_request"),
                          ({"user": "erin", "reason": "r" * 124}, "bad_request"),
                          ({"user": "u" * 257}, "bad_request"), (b'{"user":"erin","user":"x"}', "bad_request")]:
            st, body = api(self.a.port, "/api/disconnect", bad)
            self.assertEqual((st, body.get("error")), (400, slug), (bad, body))
            self.assertIn("message", body)
        st, body = api(self.a.port, "/api/disconnect", {"user": "erin", "reason": "x" * MAX_BODY})
        self.assertEqual((st, body.get("error")), (413, "message_too_large"), body)
        self.assertEqual(c.ping().get("type"), "pong")

    def test_unsubscribe_pushes_and_stops_delivery(self):
        """uma's three connections (two nodes) leave room:u with a push, keep room:v, get
        nothing more from room:u; victor on room:u is untouched."""
        sub = "uma-%d" % time.monotonic_ns()
        ch, other = "room:u%d" % time.monotonic_ns(), "room:v%d" % time.monotonic_ns()
        mine = [self.user(self.a, sub), self.user(self.a, sub), self.user(self.b, sub)]
        for c in mine:
            for name in (ch, other):
                self.assertEqual(c.subscribe(name).get("type"), "ack")
        victor = self.user(self.b, "victor")
        self.assertEqual(victor.subscribe(ch).get("type"), "ack")
        st, body = api(self.b.port, "/api/unsubscribe", {"user": sub, "channel": ch, "reason": "moderated"})
        self.assertEqual((st, body), (200, {"ok": True, "unsubscribed": 3, "nodes": 2, "answered": 2}))
        for c in mine:
            self.assertEqual(c.recv_json(timeout=5), {"type": "unsubscribe", "channel": ch, "reason": "moderated"})
        self.assertEqual(victor.publish(ch, "after").get("type"), "ack")
        self.assertEqual(victor.recv_message(timeout=5)["data"], "after")
        self.assertEqual(victor.publish(other, "still").get("type"), "ack")
        for c in mine:
            self.assertEqual(c.recv_message(timeout=5)["data"], "still")  # room:u's "after" never came first
            c.expect_nothing(0.3)
        # Not subscribed any more: a second call takes nobody out; the default reason.
        st, body = api(self.a.port, "/api/unsubscribe", {"user": sub, "channel": ch})
        self.assertEqual((st, body.get("unsubscribed")), (200, 0), body)
        st, body = api(self.a.port, "/api/unsubscribe", {"user": sub, "channel": other})
        self.assertEqual((st, body.get("unsubscribed")), (200, 3), body)
        self.assertEqual(mine[0].recv_json(timeout=5),
                         {"type": "unsubscribe", "channel": other, "reason": "unsubscribed by the server"})
        for bad, slug in [({"user": sub}, "bad_request"), ({"user": sub, "channel": "a b"}, "bad_channel"),
                          ({"user": sub, "channel": ch, "x": 1}, "bad_request"), (b"{", "bad_json")]:
            st, body = api(self.a.port, "/api/unsubscribe", bad)
            self.assertEqual((st, body.get("error")), (400, slug), (bad, body))
        self.assertEqual(api(self.a.port, "/api/unsubscribe", {"user": sub, "channel": ch}, key=None)[0], 401)
        self.assertEqual(api(self.a.port, "/api/unsubscribe", None, method="GET")[0], 405)

    def local_ports_to(self, pid, port):
        """Local ports of pid's TCP connections to 127.0.0.1:port (from /proc)."""
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        ports = []
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and remote == "0100007F:%04X" % port:
                    ports.append(int(local.split(":")[1], 16))
        return ports

    def test_node_cut_off_applies_it_when_its_link_returns(self):
        """B is stopped and its Redis connections killed; a disconnect through A reaches
        A alone (nodes 1); when B runs again its fresh link reads the recent commands and
        closes its connections of that user."""
        sub = "cut-%d" % time.monotonic_ns()
        on_a, on_b = self.user(self.a, sub), self.user(self.b, sub)
        # The Redis holding the control channel: on a cluster, the {wsgate} slot's master
        # (B's connections to the other masters stay).
        ctl = self.redis.cluster.master_of_key(CTL_CHANNEL) if CLUSTER else self.redis
        ports = self.local_ports_to(self.b.proc.pid, ctl.port)
        self.assertGreaterEqual(len(ports), 2, ports)
        self.b.send_signal(signal.SIGSTOP)
        try:
            for p in ports:
                ctl.command("CLIENT", "KILL", "ADDR", "127.0.0.1:%d" % p)
            st, body = api(self.a.port, "/api/disconnect", {"user": sub})
            self.assertEqual((st, body), (200, {"ok": True, "closed": 1, "nodes": 1, "answered": 1}))
            self.assertEqual(on_a.expect_close(timeout=5), (4010, "disconnected"))
        finally:
            self.b.send_signal(signal.SIGCONT)
        self.assertEqual(on_b.expect_close(timeout=15), (4010, "disconnected"))
        self.b.wait_ready()
        self.assertIn("msg=\"applied commands missed while the link was down\" count=1", self.b.log_text())

    def test_forged_control_message_counted(self):
        """Whatever else reaches the control channel is dropped and counted, never applied."""
        c = self.user(self.a, "frank")
        key = 'wsgate_redis_messages_dropped_total{reason="bad_control"}'
        before = self.a.metric(key, 0)
        self.redis.publish(CTL_CHANNEL, '{"op":"disconnect","user":"frank"}')
        self.redis.publish(CTL_CHANNEL, "not json")
        wait_until(lambda: self.a.metric(key, 0) == before + 2, T(5), what=key + " + 2")
        self.assertEqual(c.ping().get("type"), "pong")


class Revoke(ServerApiBase):
    """POST /api/revoke and /api/unrevoke on two nodes (and a third that joins later)."""

    @classmethod
    def setUpClass(cls):
        cls.make_files()
        cls.redis = cls.start_class_redis()
        cls.a = cls.start_class_gateway(cls.redis.port, cls.args(workers=2))
        cls.b = cls.start_class_gateway(cls.redis.port, cls.args())
        cls.a.wait_ready()
        cls.b.wait_ready()

    def auth(self, gw, token):
        """(reply to an auth request, the connection)."""
        c = self.client(gw.port)
        return c.request({"type": "auth", "token": token, "id": c.new_id()}), c

    def assert_revoked(self, gw, token):
        r, c = self.auth(gw, token)
        self.assertEqual((r.get("type"), r.get("code")), ("error", "unauthorized"), r)
        self.assertIn("revoked", r.get("message", ""))
        self.assertEqual(c.expect_close(timeout=5), (4003, "unauthorized"))

    def assert_accepted(self, gw, token):
        r, c = self.auth(gw, token)
        self.assertEqual(r.get("type"), "ack", r)
        return c

    def revoke(self, gw, sub, **kw):
        st, body = api(gw.port, "/api/revoke", dict(user=sub, **kw))
        self.assertEqual(st, 200, body)
        return body

    def failures(self, gw):
        return gw.metric('wsgate_auth_failures_total{reason="revoked"}', 0)

    def test_old_refused_newer_accepted_everywhere(self):
        sub = "rev-%d" % time.monotonic_ns()
        old = self.mint(sub, iat=int(time.time()) - 5)
        kept = self.assert_accepted(self.b, old)
        fa, fb = self.failures(self.a), self.failures(self.b)
        body = self.revoke(self.a, sub, keep=600)
        self.assertEqual((body["nodes"], body["answered"]), (2, 2), body)
        self.assertEqual(body["until"] - body["revoked_at"], 600, body)
        self.assertLessEqual(abs(body["revoked_at"] - time.time()), 2)
        self.assertEqual(self.redis.command("HGET", REVOKED, sub).decode(),
                         "%d %d" % (body["revoked_at"], body["until"]))
        for gw in (self.a, self.b):
            self.assert_revoked(gw, old)
            self.assert_revoked(gw, self.mint(sub, iat=body["revoked_at"]))  # the same second: refused
        self.assertEqual((self.failures(self.a), self.failures(self.b)), (fa + 2, fb + 2))
        # A refresh with the old token on a connection opened before is refused too.
        r = kept.request({"type": "auth", "token": old, "id": kept.new_id()})
        self.assertEqual(r.get("code"), "unauthorized", r)
        self.assertEqual(kept.expect_close(timeout=5), (4003, "unauthorized"))
        # A token issued after the revocation is accepted on both nodes.
        wait_until(lambda: time.time() >= body["revoked_at"] + 1, T(3), what="the next second")
        newer = self.mint(sub)
        self.assertGreater(jwt.decode(newer, options={"verify_signature": False})["iat"], body["revoked_at"])
        for gw in (self.a, self.b):
            self.assert_accepted(gw, newer)
        # Another user is untouched.
        self.assert_accepted(self.a, self.mint("other", iat=int(time.time()) - 5))

    def test_no_iat_refused_while_revoked(self):
        sub = "noiat-%d" % time.monotonic_ns()
        now = int(time.time())
        no_iat = jwt.encode({"sub": sub, "iss": ISS, "aud": AUD, "exp": now + 300, "channels": ["room:*"]},
                            self.secret, algorithm="HS256")
        self.assert_accepted(self.a, no_iat)
        self.revoke(self.b, sub)
        self.assert_revoked(self.a, no_iat)

    def test_unrevoke_and_late_joiner(self):
        """A node that starts after the revocation loads it from Redis; a lift reaches
        every node."""
        sub = "late-%d" % time.monotonic_ns()
        old = self.mint(sub, iat=int(time.time()) - 5)
        self.revoke(self.b, sub)
        c = self.start_gateway(self.redis.port, self.args())
        self.assert_revoked(c, old)
        self.assertIn("revocations loaded", c.log_text())
        st, body = api(self.a.port, "/api/unrevoke", {"user": sub})
        self.assertEqual((st, body.get("ok"), body.get("nodes"), body.get("answered")), (200, True, 3, 3), body)
        for gw in (self.a, self.b, c):
            self.assert_accepted(gw, old)
        self.assertEqual(self.redis.command("HEXISTS", REVOKED, sub), 0)

    def test_expired_revocation_ends(self):
        sub = "short-%d" % time.monotonic_ns()
        old = self.mint(sub, iat=int(time.time()) - 5)
        body = self.revoke(self.a, sub, keep=1)
        self.assert_revoked(self.b, old)
        # The node reads the coarse wall clock (time(), a few ms behind).
        wait_until(lambda: time.time() >= body["until"] + 0.05, T(3), what="the record's end")
        self.assert_accepted(self.b, old)

    def snippet(self, lang):
        """The code block of docs/DEPLOYMENT.md "Banning a user" in lang, as written there."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(root, "docs", "DEPLOYMENT.md")) as f:
            text = f.read()
        section = text[text.index("### Banning a user"):]
        return re.search(r"```%s\n(.*?)```" % lang, section, re.S).group(1)

    def run_ban(self, argv, suffix, code, sub):
        d = tempfile.mkdtemp(prefix="wsgate-ban-")
        path = os.path.join(d, "ban" + suffix)
        with open(path, "w") as f:
            f.write(code)
        self.addCleanup(shutil.rmtree, d)
        env = dict(os.environ, WSGATE_URL="http://127.0.0.1:%d" % self.b.port, WSGATE_API_KEY=KEY, BAN_USER=sub)
        out = subprocess.run(argv + [path], env=env, capture_output=True, text=True, timeout=T(30))
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def check_ban(self, argv, suffix, lang):
        sub = "banned-%s-%d" % (lang, time.monotonic_ns())
        old = self.mint(sub, iat=int(time.time()) - 5)
        conns = [self.assert_accepted(self.a, old), self.assert_accepted(self.b, old)]
        out = self.run_ban(argv, suffix, self.snippet(lang), sub)
        self.assertIn("closed", out)
        for c in conns:
            self.assertEqual(c.expect_close(timeout=5), (4011, "banned"))
        for gw in (self.a, self.b):
            self.assert_revoked(gw, old)
        return out

    def test_deployment_ban_snippets(self):
        """docs/DEPLOYMENT.md's ban, in Python (urllib) and Node (fetch), as written."""
        out = self.check_ban([sys.executable], ".py", "python")
        self.assertIn("'closed': 2", out)
        node = shutil.which("node")
        if not node:
            self.skipTest("no node on PATH for the Node.js snippet")
        out = json.loads(self.check_ban([node], ".mjs", "js"))
        self.assertEqual((out["closed"]["closed"], out["closed"]["answered"], out["revoked"]["answered"]), (2, 2, 2))

    def test_refusals(self):
        for path, bad in [("/api/revoke", {"user": "x", "keep": 0}), ("/api/revoke", {"user": "x", "keep": "60"}),
                          ("/api/revoke", {"user": "x", "keep": 366 * 86400 + 1}), ("/api/revoke", {"user": ""}),
                          ("/api/revoke", {"user": "x", "kep": 5}), ("/api/unrevoke", {"user": "x", "keep": 5}),
                          ("/api/unrevoke", b"[")]:
            st, body = api(self.a.port, path, bad)
            self.assertEqual(st, 400, (path, bad, body))
            self.assertIn(body.get("error"), ("bad_request", "bad_json"))
        for path in ("/api/revoke", "/api/unrevoke"):
            self.assertEqual(api(self.a.port, path, {"user": "x"}, key=None)[0], 401)
            self.assertEqual(api(self.a.port, path, None, method="GET")[0], 405)
            st, body = api(self.a.port, path, {"user": "x" * MAX_BODY})
            self.assertEqual((st, body.get("error")), (413, "message_too_large"))
        self.assertEqual(self.redis.command("HEXISTS", REVOKED, "x"), 0)


def get(port, path, key=KEY, method="GET", body=None):
    return api(port, path, body, key=key, method=method)


class History(ServerApiBase):
    """GET /api/history: the client history request's answer and limits, on either node."""

    @classmethod
    def setUpClass(cls):
        cls.make_files()
        cls.redis = cls.start_class_redis()
        cls.a = cls.start_class_gateway(cls.redis.port, cls.args())
        cls.b = cls.start_class_gateway(cls.redis.port, cls.args())
        cls.a.wait_ready()
        cls.b.wait_ready()

    def test_same_answer_as_a_client(self):
        ch = "room:hist%d" % time.monotonic_ns()
        offsets = []
        for i in range(5):
            st, body = api(self.a.port, "/api/publish", {"channel": ch, "data": {"n": i}})
            self.assertEqual(st, 200, body)
            offsets.append(body["offset"])
        epoch = body["epoch"]
        st, page = get(self.b.port, "/api/history?channel=%s&limit=2" % ch)
        self.assertEqual(st, 200, page)
        self.assertEqual([m["data"] for m in page["messages"]], [{"n": 3}, {"n": 4}])
        self.assertEqual((page["channel"], page["epoch"], page["offset"]), (ch, epoch, offsets[-1]))
        # A client asking the same gets the same reply, without its id.
        c = self.user(self.a, "hist-reader")
        rid = c.new_id()
        mine = c.request({"type": "history", "channel": ch, "limit": 2, "id": rid})
        self.assertEqual({k: v for k, v in mine.items() if k != "id"}, page)
        # since: the messages after it, oldest first; the epoch percent-encoded or not.
        st, page = get(self.a.port, "/api/history?channel=%s&since=%d%%3A%s" % (ch.replace(":", "%3A"), offsets[1], epoch))
        self.assertEqual(st, 200, page)
        self.assertEqual([m["data"] for m in page["messages"]], [{"n": 2}, {"n": 3}, {"n": 4}])
        self.assertTrue(page["complete"])

    def test_idempotent_publish_retried_on_the_other_node(self):
        """The same idempotency_key on B within the window: A's first answer, nothing delivered
        again; another key publishes; a key still claimed answers 409."""
        ch = "room:idem%d" % time.monotonic_ns()
        sub = self.user(self.b, "idem-reader")
        self.assertEqual(sub.subscribe(ch).get("type"), "ack")
        key = "order-%d" % time.monotonic_ns()
        body = {"channel": ch, "data": {"n": 1}, "idempotency_key": key}
        st, first = api(self.a.port, "/api/publish", body)
        self.assertEqual(st, 200, first)
        self.assertIn("offset", first)
        self.assertEqual(sub.recv_message(timeout=5)["data"], {"n": 1})
        for gw in (self.b, self.a):
            st, again = api(gw.port, "/api/publish", body)
            self.assertEqual((st, again), (200, first))
        sub.expect_nothing(0.5)
        ttl = self.redis.command("TTL", "wsgate:idem:" + key)
        self.assertTrue(240 < ttl <= 300, ttl)  # --publish-idempotency-window 5 (minutes)
        st, other = api(self.b.port, "/api/publish", dict(body, idempotency_key=key + "-2", data={"n": 2}))
        self.assertEqual(st, 200, other)
        self.assertEqual(other["offset"], first["offset"] + 1)
        self.assertEqual(sub.recv_message(timeout=5)["data"], {"n": 2})
        # A key whose first publish is still on its way (claimed, no answer yet).
        self.redis.command("SET", "wsgate:idem:held", "", "EX", "30")
        st, busy = api(self.a.port, "/api/publish", dict(body, idempotency_key="held"))
        self.assertEqual((st, busy.get("error")), (409, "conflict"), busy)
        sub.expect_nothing(0.3)
        for bad in ("", "a b", 7, "k" * 129):
            st, err = api(self.a.port, "/api/publish", dict(body, idempotency_key=bad))
            self.assertEqual((st, err.get("error")), (400, "bad_request"), (bad, err))
        self.assertEqual(self.a.metric('wsgate_api_requests_total{code="409"}', 0), 1)

    def test_batch_with_bad_entries_answers_the_rest(self):
        ch = "room:batch%d" % time.monotonic_ns()
        sub = self.user(self.a, "batch-reader")
        self.assertEqual(sub.subscribe(ch).get("type"), "ack")
        key = "batch-key-%d" % time.monotonic_ns()
        msgs = [{"channel": ch, "data": 1}, {"channel": "bad channel", "data": 2},
                {"channel": ch, "data": 3, "idempotency_key": key}, {"data": 4}, 5,
                {"channel": ch, "data": {"n": 6}}]
        st, body = api(self.b.port, "/api/publish", {"messages": msgs})
        self.assertEqual(st, 200, body)
        res = body["results"]
        self.assertEqual(len(res), 6, res)
        self.assertEqual([r.get("error") for r in res],
                         [None, "bad_channel", None, "bad_request", "bad_request", None])
        # Entries without a key keep their order; the keyed one is published once its key is
        # claimed (a Redis round trip later), so it may come after later entries.
        self.assertEqual(sorted([res[2]["offset"], res[5]["offset"]]), [res[0]["offset"] + 1, res[0]["offset"] + 2])
        got = [sub.recv_message(timeout=5)["data"] for _ in range(3)]
        self.assertEqual(got[0], 1)
        self.assertEqual(sorted(got[1:], key=json.dumps), sorted([3, {"n": 6}], key=json.dumps))
        # The keyed entry, retried alone on the other node: its first answer, nothing delivered.
        st, again = api(self.a.port, "/api/publish", {"channel": ch, "data": 3, "idempotency_key": key})
        self.assertEqual((st, again), (200, {"ok": True, "offset": res[2]["offset"], "epoch": res[2]["epoch"]}))
        sub.expect_nothing(0.5)
        # Limits of the form.
        for bad in ({"messages": []}, {"messages": {}}, {"messages": [1] * 101},
                    {"messages": [{"channel": ch, "data": 1}], "channel": ch}):
            st, err = api(self.a.port, "/api/publish", bad)
            self.assertEqual((st, err.get("error")), (400, "bad_request"), (bad, err))
        st, err = api(self.a.port, "/api/publish", {"messages": [{"channel": ch, "data": i} for i in range(100)]})
        self.assertEqual((st, err.get("error")), (413, "message_too_large"))  # --max-api-body-bytes 1024
        st, ok = api(self.a.port, "/api/publish", {"messages": [{"channel": ch, "data": i} for i in range(12)]})
        self.assertEqual((st, [r["offset"] for r in ok["results"]]),
                         (200, list(range(res[0]["offset"] + 3, res[0]["offset"] + 15))))
        self.assertEqual([sub.recv_message(timeout=5)["data"] for _ in range(12)], list(range(12)))

    def test_refusals(self):
        for q, slug in [("", "bad_request"), ("?limit=2", "bad_request"), ("?channel=a%20b", "bad_channel"),
                        ("?channel=c&limit=0", "bad_request"), ("?channel=c&limit=1001", "bad_request"),
                        ("?channel=c&since=5", "bad_request"), ("?channel=c&x=1", "bad_request")]:
            st, body = get(self.a.port, "/api/history" + q)
            self.assertEqual((st, body.get("error")), (400, slug), (q, body))
        self.assertEqual(get(self.a.port, "/api/history?channel=c", key=None)[0], 401)
        self.assertEqual(get(self.a.port, "/api/history?channel=c", method="POST", body=b"{}")[0], 405)


class DisconnectEdges(ServerApiBase):
    @classmethod
    def setUpClass(cls):
        cls.make_files()

    def test_standalone(self):
        """Without Redis the node carries the disconnect out alone: nodes 1."""
        gw = self.start_gateway(None, self.args(workers=2))
        sub = "solo"
        cs = [self.user(gw, sub) for _ in range(3)]
        st, body = api(gw.port, "/api/disconnect", {"user": sub})
        self.assertEqual((st, body), (200, {"ok": True, "closed": 3, "nodes": 1, "answered": 1}))
        for c in cs:
            self.assertEqual(c.expect_close(timeout=5), (4010, "disconnected"))

    def test_standalone_idempotent_publish(self):
        gw = self.start_gateway(None, self.args())
        c = self.user(gw, "solo-reader")
        body = {"channel": "room:1", "data": "once", "idempotency_key": "k1"}
        self.assertEqual(api(gw.port, "/api/publish", body), (200, {"ok": True}))
        self.assertEqual(api(gw.port, "/api/publish", body), (200, {"ok": True}))
        self.assertEqual(c.recv_message(timeout=5)["data"], "once")
        c.expect_nothing(0.5)

    def test_redis_down_503(self):
        """A node whose Redis is gone answers 503 unavailable, not a count."""
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, self.args())
        c = self.user(gw, "gina")
        redis.stop()
        wait_until(lambda: gw.readyz() != 200, T(10), what="node not ready")
        st, body = api(gw.port, "/api/disconnect", {"user": "gina"})
        self.assertEqual((st, body.get("error")), (503, "unavailable"), body)


if __name__ == "__main__":
    unittest.main()
