"""Access control on real processes: JWT authentication (auth frame and ?token=), channel
rights from token claims and anonymous patterns, the close codes 4003/4004/4005, refresh,
wsgate_auth_failures_total, and a node that refuses to start without any access configured.

Tokens are minted by PyJWT + cryptography (Debian python3-jwt, python3-cryptography) with
keys made fresh for each run, never by project code.

Run alone: WSGATE_BIN=build/gateway/wsgate /usr/bin/python3 -m unittest -v test_auth
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import GatewayTestCase, T, run_wsgate, wait_until  # noqa: E402

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError as e:  # pragma: no cover
    raise unittest.SkipTest("needs python3-jwt and python3-cryptography: %s" % e)

ISS = "https://auth.test"
AUD = "wsgate-test"
REASONS = ["bad_signature", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer",
           "malformed", "unknown_key", "timeout"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class Keys:
    """Fresh keys in a temporary directory: an HMAC secret file and RSA, P-256 and P-384
    public key files (kid = base name)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsgate-keys-")
        self.secret = os.urandom(24).hex().encode()  # 48 bytes
        self.secret_file = self.write("hmac.secret", self.secret + b"\n")
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.rsa_pem = pub_pem(self.rsa)
        self.pem_files = [self.write("rsa1.pem", self.rsa_pem),
                          self.write("ec256.pem", pub_pem(self.p256)),
                          self.write("ec384.pem", pub_pem(self.p384))]

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_for(self, alg):
        return {"HS": self.secret, "RS": self.rsa, "ES256": self.p256,
                "ES384": self.p384}.get(alg[:2] if alg[:2] in ("HS", "RS") else alg)

    def args(self):
        return ["--jwt-hmac-secret-file", self.secret_file,
                "--jwt-public-key-files", ",".join(self.pem_files)]


def claims(sub="alice", ttl=300, **extra):
    now = int(time.time())
    c = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + ttl,
         "channels": ["user:{sub}", "room:*", "news"], "publish": ["room:*"]}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


class AuthMixin:
    def mint(self, alg="HS256", headers=None, **kw):
        return jwt.encode(claims(**kw), self.keys.key_for(alg), algorithm=alg, headers=headers)

    def metric(self, key):
        return self.gw.metric(key, 0)

    def fail_count(self, reason):
        return self.metric('wsgate_auth_failures_total{reason="%s"}' % reason)

    def err_count(self, code):
        return self.metric('wsgate_client_errors_total{code="%s"}' % code)

    def auth(self, c, token, rid=None):
        return c.request({"type": "auth", "token": token, "id": rid or c.new_id()})

    def assert_error(self, r, code, rid="any"):
        self.assertEqual((r.get("type"), r.get("code")), ("error", code), r)
        if rid != "any":
            self.assertEqual(r.get("id"), rid, r)

    def next_error(self, c):
        """The next error frame, whether already read into c.inbox or still to come."""
        for i, o in enumerate(c.inbox):
            if isinstance(o, dict) and o.get("type") == "error":
                del c.inbox[i]
                return o
        return c.recv_json(timeout=5)

    def authed(self, token):
        c = self.client(self.gw.port)
        r = self.auth(c, token)
        self.assertEqual(r.get("type"), "ack", r)
        return c

    def assert_refused(self, token, reason, path_token=False):
        """The token is refused with an unauthorized error naming reason, the connection
        is closed with 4003, and the reason's counter grows by one."""
        before = self.fail_count(reason)
        if path_token:
            c = self.client(self.gw.port, path="/ws?token=" + token)
            r = c.recv_json(timeout=5)
            self.assertNotIn("id", r)
        else:
            c = self.client(self.gw.port)
            rid = c.new_id()
            c.send_json({"type": "auth", "token": token, "id": rid})
            r = c.recv_json(timeout=5)
            self.assertEqual(r.get("id"), rid, r)
        self.assert_error(r, "unauthorized")
        self.assertIn(reason, r["message"])
        self.assertEqual(c.expect_close(timeout=5), (4003, "unauthorized"))
        wait_until(lambda: self.fail_count(reason) == before + 1, T(3),
                   what="wsgate_auth_failures_total{reason=%s} + 1" % reason)


class TokenTest(AuthMixin, GatewayTestCase):
    """A node with every kind of key, iss/aud checked, no leeway and no anonymous rights."""

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(
            cls.redis.port, cls.keys.args() + [
                "--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-leeway", "0",
                "--auth-timeout", "2", "--client-rate", "100000", "--client-burst", "100000"],
            name="auth")
        cls.gw.wait_ready()

    def test_valid_token_per_algorithm(self):
        for alg in ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"]:
            with self.subTest(alg=alg):
                c = self.client(self.gw.port)
                tok = self.mint(alg, sub="u-" + alg)
                r = self.auth(c, tok, 5)
                self.assertEqual(r, {"type": "ack", "id": 5, "sub": "u-" + alg,
                                     "exp": jwt.decode(tok, options={"verify_signature": False})["exp"]})
                self.assertEqual(c.subscribe("user:u-" + alg, 6), {"type": "ack", "id": 6})

    def test_kid_selects_key(self):
        c = self.authed(self.mint("RS256", headers={"kid": "rsa1"}))
        self.assertEqual(c.subscribe("news").get("type"), "ack")
        c = self.authed(self.mint("ES384", headers={"kid": "ec384"}))
        self.assertEqual(c.subscribe("news").get("type"), "ack")

    def test_refused_tokens(self):
        good = self.mint("HS256")
        h, p, s = good.split(".")
        tampered = json.loads(base64.urlsafe_b64decode(p + "=="))
        tampered["channels"] = ["*"]
        tampered_p = b64url(json.dumps(tampered).encode())
        signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
                         b64url(json.dumps(claims()).encode()))
        pem_forgery = signing_input + "." + b64url(
            hmac.new(self.keys.rsa_pem, signing_input.encode(), hashlib.sha256).digest())
        none_tok = (b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." +
                    b64url(json.dumps(claims()).encode()) + ".")
        cases = [
            ("expired", self.mint(ttl=-10), "expired"),
            ("nbf in the future", self.mint(nbf=int(time.time()) + 600), "not_yet_valid"),
            ("wrong aud", self.mint(aud="someone-else"), "wrong_audience"),
            ("wrong iss", self.mint(iss="https://evil.test"), "wrong_issuer"),
            ("no exp", jwt.encode({k: v for k, v in claims().items() if k != "exp"},
                                  self.keys.secret, algorithm="HS256"), "malformed"),
            ("tampered payload", "%s.%s.%s" % (h, tampered_p, s), "bad_signature"),
            ("truncated", good[: len(good) // 2], "malformed"),
            ("signature stripped", "%s.%s." % (h, p), "bad_signature"),
            ("alg none", none_tok, "malformed"),
            ("HS256 with the RSA public key as secret", pem_forgery, "bad_signature"),
            ("unknown kid", self.mint("RS256", headers={"kid": "nope"}), "unknown_key"),
            ("HS256 with a kid", self.mint("HS256", headers={"kid": "rsa1"}), "unknown_key"),
            ("wrong secret", jwt.encode(claims(), b"x" * 40, algorithm="HS256"), "bad_signature"),
            ("oversized", self.mint(pad="x" * 9000), "malformed"),
            ("not a JWT", "hello", "malformed"),
        ]
        for label, tok, reason in cases:
            with self.subTest(case=label):
                self.assert_refused(tok, reason)

    def test_token_issued_this_instant_is_valid_at_a_second_boundary(self):
        # iat is now by the issuer's precise clock; with --jwt-leeway 0 the node must not
        # judge it by a coarser clock that still shows the previous second.
        refused = 0
        for _ in range(8):
            c = self.client(self.gw.port)
            while time.time() % 1 < 0.995:  # just before a second boundary
                time.sleep(0.001)
            while time.time() % 1 > 0.5:
                pass
            r = self.auth(c, self.mint())  # minted in the first milliseconds of a second
            refused += r.get("type") != "ack"
        self.assertEqual(refused, 0, "tokens issued at a second boundary were refused")

    def test_only_auth_and_ping_before_authentication(self):
        c = self.client(self.gw.port)
        before = self.err_count("unauthorized")
        self.assertEqual(c.request({"type": "ping", "id": 1}), {"type": "pong", "id": 1})
        for req in [{"type": "subscribe", "channel": "news"},
                    {"type": "publish", "channel": "room:1", "data": 1},
                    {"type": "unsubscribe", "channel": "news"}]:
            r = c.request(req)
            self.assert_error(r, "unauthorized")
            self.assertIn("auth", r["message"])
        wait_until(lambda: self.err_count("unauthorized") == before + 3, T(3),
                   what="client_errors_total{code=unauthorized} + 3")
        self.auth(c, self.mint())
        self.assertEqual(c.subscribe("news").get("type"), "ack")

    def test_auth_timeout_closes_4004(self):
        before = self.fail_count("timeout")
        c = self.client(self.gw.port)
        t0 = time.monotonic()
        self.assertEqual(c.expect_close(timeout=6), (4004, "authentication timeout"))
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        wait_until(lambda: self.fail_count("timeout") == before + 1, T(3), what="timeout + 1")
        # An authenticated client outlives the timeout.
        a = self.authed(self.mint())
        time.sleep(2.6)
        self.assertEqual(a.ping().get("type"), "pong")

    def test_rights_from_claims(self):
        alice = self.authed(self.mint(sub="alice"))
        before = self.err_count("forbidden")
        for ch in ["user:alice", "room:1", "room:", "news"]:
            with self.subTest(subscribe=ch):
                self.assertEqual(alice.subscribe(ch).get("type"), "ack")
        refused = ["user:bob", "user:alice2", "user:alic", "newsx", "other", "roo"]
        for ch in refused:
            with self.subTest(subscribe=ch):
                r = alice.subscribe(ch, 77)
                self.assert_error(r, "forbidden", 77)
        # No subscription was made: a backend publish to a refused channel reaches nobody.
        self.assertEqual(self.redis.numsub("gw:user:bob"), 0)
        self.assertEqual(alice.publish("room:1", "ok").get("type"), "ack")
        self.assertEqual(alice.recv_message(timeout=5)["data"], "ok")
        ok_before = self.metric('wsgate_client_publishes_total{result="ok"}')
        for ch in ["user:alice", "news", "other"]:
            with self.subTest(publish=ch):
                self.assert_error(alice.publish(ch, "no", 88), "forbidden", 88)
        # Nothing reached Redis: no publish was counted and nobody got "no".
        self.assertEqual(self.metric('wsgate_client_publishes_total{result="ok"}'), ok_before)
        alice.expect_nothing(0.3)
        wait_until(lambda: self.err_count("forbidden") == before + len(refused) + 3, T(3),
                   what="client_errors_total{code=forbidden}")

    def test_subject_cannot_reach_another_users_channel(self):
        bob = self.authed(self.mint(sub="bob"))
        self.assertEqual(bob.subscribe("user:bob").get("type"), "ack")
        self.assert_error(bob.subscribe("user:alice"), "forbidden")
        # A subject full of pattern syntax grants itself nothing more.
        star = self.authed(self.mint(sub="*"))
        self.assert_error(star.subscribe("user:x"), "forbidden")
        self.assertEqual(star.subscribe("news").get("type"), "ack")

    def test_token_in_query(self):
        c = self.client(self.gw.port, path="/ws?x=1&token=" + self.mint(sub="carol"))
        self.assertEqual(c.subscribe("user:carol").get("type"), "ack")
        self.assert_error(c.subscribe("user:alice"), "forbidden")
        self.assert_refused(self.mint(ttl=-5), "expired", path_token=True)
        self.assert_refused("garbage", "malformed", path_token=True)

    def test_refresh_extends_and_missing_refresh_closes_4005(self):
        c = self.authed(self.mint(ttl=3))
        self.assertEqual(c.subscribe("room:r").get("type"), "ack")
        time.sleep(1.0)
        r = self.auth(c, self.mint(ttl=6), 9)
        self.assertEqual((r.get("type"), r.get("id"), r.get("sub")), ("ack", 9, "alice"), r)
        time.sleep(3.5)  # past the first token's exp
        self.assertEqual(c.ping().get("type"), "pong")
        t0 = time.monotonic()
        self.assertEqual(c.expect_close(timeout=6), (4005, "token expired"))
        self.assertLess(time.monotonic() - t0, 4.0)

    def test_far_future_exp_is_accepted_and_kept(self):
        # exp from about 9.22e12 s on overflowed the expiry in microseconds: the ASan
        # build aborted (every client dropped), Release closed 4005 at once.
        for exp in (9_300_000_000_000, 2 ** 53 - 1):
            with self.subTest(exp=exp):
                c = self.authed(self.mint(exp=exp))
                self.assertEqual(c.subscribe("news").get("type"), "ack")
                time.sleep(0.6)  # past a sweep tick, where an expiry would close 4005
                self.assertEqual(c.ping().get("type"), "pong")
        self.assertEqual(self.client(self.gw.port).ping().get("type"), "pong")

    def test_short_token_expires_before_planned_tick(self):
        # The first tick after auth would be a ping 25 s later; exp must still win.
        c = self.authed(self.mint(ttl=2))
        t0 = time.monotonic()
        self.assertEqual(c.expect_close(timeout=6), (4005, "token expired"))
        self.assertLess(time.monotonic() - t0, 3.5)

    def test_auth_twice(self):
        c = self.authed(self.mint(channels=["room:*"]))
        self.assertEqual(c.subscribe("room:1").get("type"), "ack")
        self.assertEqual(c.subscribe("room:2").get("type"), "ack")
        # A second token for the same subject replaces the rights; a subscription the new
        # token does not grant ends with a forbidden error naming it.
        r = self.auth(c, self.mint(channels=["room:1", "news"]), 50)
        self.assertEqual(r.get("type"), "ack", r)
        drop = self.next_error(c)
        self.assert_error(drop, "forbidden")
        self.assertNotIn("id", drop)
        self.assertIn("room:2", drop["message"])
        # The client gets nothing more of room:2 from the forbidden error on (the node's
        # own UNSUBSCRIBE reaches Redis a moment later, so Redis may still count it).
        self.redis.publish("gw:room:2", '"gone"')
        self.assertEqual(self.redis.publish("gw:room:1", '"kept"'), 1)
        self.assertEqual(c.recv_message(timeout=5)["data"], "kept")
        wait_until(lambda: self.redis.numsub("gw:room:2") == 0, T(5), what="the node released room:2")
        self.assertEqual(c.subscribe("news").get("type"), "ack")
        self.assert_error(c.subscribe("room:3"), "forbidden")
        # Another subject on the same connection is refused.
        r = self.auth(c, self.mint(sub="mallory"), 51)
        self.assert_error(r, "unauthorized", 51)
        self.assertEqual(c.expect_close(timeout=5), (4003, "unauthorized"))

    def test_failure_metrics_are_declared(self):
        m = self.gw.metrics()
        for reason in REASONS:
            self.assertIn('wsgate_auth_failures_total{reason="%s"}' % reason, m)
        for code in ["unauthorized", "forbidden"]:
            self.assertIn('wsgate_client_errors_total{code="%s"}' % code, m)
        self.assertNotIn("alice", self.gw.metrics_text())

    def test_subject_is_logged(self):
        self.authed(self.mint(sub="log-subject-42"))
        wait_until(lambda: 'sub="log-subject-42"' in self.gw.log_text(), T(3),
                   what="sub in the auth log line")


class AnonymousTest(AuthMixin, GatewayTestCase):
    """Anonymous patterns next to an HMAC key."""

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(
            cls.redis.port, ["--jwt-hmac-secret-file", cls.keys.secret_file,
                             "--anonymous-subscribe", "public:*,lobby",
                             "--anonymous-publish", "lobby", "--auth-timeout", "1"],
            name="anon")
        cls.gw.wait_ready()

    def test_anonymous_patterns(self):
        c = self.client(self.gw.port)
        self.assertEqual(c.subscribe("public:news").get("type"), "ack")
        self.assertEqual(c.subscribe("lobby").get("type"), "ack")
        self.assert_error(c.subscribe("private", 3), "forbidden", 3)
        self.assert_error(c.subscribe("lobby2", 4), "forbidden", 4)
        self.assertEqual(c.publish("lobby", "hi").get("type"), "ack")
        self.assertEqual(c.recv_message(timeout=5)["data"], "hi")
        self.assert_error(c.publish("public:news", "no", 5), "forbidden", 5)
        self.assertEqual(c.unsubscribe("public:news").get("type"), "ack")
        # Anonymous clients have rights, so no auth timeout applies to them.
        time.sleep(1.8)
        self.assertEqual(c.ping().get("type"), "pong")

    def test_token_claims_replace_anonymous_patterns(self):
        c = self.client(self.gw.port)
        self.assertEqual(c.subscribe("public:a").get("type"), "ack")
        r = self.auth(c, self.mint("HS256", channels=["private"], publish=None, iss=None, aud=None))
        self.assertEqual(r.get("type"), "ack", r)
        drop = self.next_error(c)
        self.assert_error(drop, "forbidden")
        self.assertIn("public:a", drop["message"])
        self.assertEqual(c.subscribe("private").get("type"), "ack")
        self.assert_error(c.subscribe("public:b"), "forbidden")
        self.assert_error(c.publish("lobby", 1), "forbidden")


class StartupTest(GatewayTestCase):
    def run_bin(self, args):
        return run_wsgate(args, listen=True)

    def test_refuses_to_start_without_access(self):
        keys = Keys()
        short = keys.write("short.secret", b"too-short\n")
        bad_pem = keys.write("bad.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        small_rsa = keys.write("small.pem", pub_pem(rsa.generate_private_key(65537, 1024)))
        cases = [
            ([], ["--jwt-hmac-secret-file", "--jwt-public-key-files", "--anonymous-subscribe"]),
            (["--jwt-hmac-secret-file", os.path.join(keys.dir, "missing")],
             ["--jwt-hmac-secret-file", "missing", "No such file"]),
            (["--jwt-hmac-secret-file", short], ["--jwt-hmac-secret-file", "32 bytes"]),
            (["--jwt-public-key-files", keys.pem_files[0] + "," + bad_pem],
             ["--jwt-public-key-files", "bad.pem", "PUBLIC KEY"]),
            (["--jwt-public-key-files", small_rsa], ["small.pem", "2048"]),
            (["--anonymous-subscribe", "a*b"], ["--anonymous-subscribe", "a*b"]),
            (["--anonymous-subscribe", "user:{sub}"], ["--anonymous-subscribe", "{sub}"]),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                p = self.run_bin(args)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 2, err)
                for w in words:
                    self.assertIn(w, err)
                self.assertLess(len(err.splitlines()), 10, err)
        # Each kind of configuration alone is enough to start.
        for args in (["--jwt-hmac-secret-file", keys.secret_file],
                     ["--jwt-public-key-files", ",".join(keys.pem_files)],
                     ["--anonymous-publish", "x"]):
            with self.subTest(starts=args):
                g = self.start_gateway(None, args, name="start")
                self.assertEqual(g.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
