"""What the presence suites share (test_presence.py, test_presence_faults.py): PresenceBase,
a GatewayTestCase with the presence helpers (tokens minted by PyJWT, nodes, users, joins,
events, counts, the events stream), on one redis-server; ClusterMixin puts the same cases
on a real 6-node Redis Cluster (3 masters + 3 replicas, wsgate_cluster.py) that the class
shares (FLUSHALL before each case), the gateways on redis+cluster://.
"""

import os
import tempfile
import time
import unittest

from wsgate_harness import NO_RATE_LIMIT, GatewayTestCase, T, wait_until

try:
    import jwt
except ImportError as e:  # pragma: no cover
    raise unittest.SkipTest("needs python3-jwt: %s" % e)


class PresenceBase(GatewayTestCase):
    CLUSTER = False  # ClusterPresenceTest: the same cases on a Redis Cluster

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wsgate-presence-")
        cls.secret = os.urandom(24).hex().encode()
        cls.secret_file = os.path.join(cls.dir, "hmac.secret")
        with open(cls.secret_file, "wb") as f:
            f.write(cls.secret)
        cls.api_key = "presence-test-key-" + os.urandom(16).hex()
        cls.key_file = os.path.join(cls.dir, "api.keys")
        with open(cls.key_file, "w") as f:
            f.write(cls.api_key + "\n")

    def redis_for_test(self):
        """This case's Redis: a fresh redis-server, or the class's cluster emptied."""
        if not self.CLUSTER:
            return self.start_redis()
        self.shared.flushall()
        return self.shared

    @property
    def ns(self):
        """The node-wide presence keys' namespace (gateway/presence.h)."""
        return "{wsgate}:presence:" if self.CLUSTER else "wsgate:presence:"

    def indexed(self, redis, key):
        """How many node incarnations list channel key in their index (<ns>node:<who>)."""
        whos = [w.decode() for w in redis.command("SMEMBERS", self.ns + "nodes")]
        return sum(1 for w in whos if key.encode() in redis.command("SMEMBERS", self.ns + "node:" + w))

    def mint(self, sub, channels=("room:*", "lobby"), **extra):
        c = {"exp": int(time.time()) + 300, "channels": list(channels)}
        if sub is not None:
            c["sub"] = sub
        c.update(extra)
        return jwt.encode(c, self.secret, algorithm="HS256")

    def node(self, redis, name="gw", extra=()):
        return self.start_gateway(redis.port, NO_RATE_LIMIT + [
            "--jwt-hmac-secret-file", self.secret_file, "--anonymous-subscribe", "lobby",
            "--presence-channels", "room:*,lobby", "--presence-leave-delay", "0"] + list(extra), name=name)

    def user(self, gw, sub, **claims):
        c = self.client(gw.port)
        if sub is not False:
            ack = c.request({"type": "auth", "token": self.mint(sub, **claims)})
            self.assertEqual(ack.get("type"), "ack", ack)
        return c

    def join(self, c, channel, events=False):
        req = {"type": "subscribe", "channel": channel}
        if events:
            req["presence"] = True
        ack = c.request(req)
        self.assertEqual(ack.get("type"), "ack", ack)

    def events(self, c, seconds):
        """Every presence event (join, leave, presence_limited) c gets within seconds."""
        out, deadline = [], time.monotonic() + T(seconds)
        while True:
            try:
                o = c.recv_json(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                return out
            if o.get("type") in ("join", "leave", "presence_limited"):
                out.append(o)
            if time.monotonic() >= deadline:
                return out

    def event_log(self, redis, channel):
        def text(v):
            return v.decode() if isinstance(v, bytes) else v
        return [{text(k): text(v) for k, v in zip(f[::2], f[1::2])}
                for _, f in redis.command("XRANGE", "{gw:%s}:events" % channel, "-", "+")]

    def stats(self, c, channel):
        r = c.request({"type": "presence_stats", "channel": channel})
        self.assertEqual(r.get("type"), "presence_stats", r)
        self.assertEqual(r["channel"], channel)
        return r["connections"], r["users"]

    def members(self, c, channel, limit=None):
        """Every member, walking the pages to the end."""
        out, cursor, pages = {}, None, 0
        while True:
            req = {"type": "presence", "channel": channel}
            if cursor is not None:
                req["cursor"] = cursor
            if limit is not None:
                req["limit"] = limit
            r = c.request(req)
            self.assertEqual(r.get("type"), "presence", r)
            for m in r["members"]:
                out[m["client"]] = m
            cursor, pages = r["cursor"], pages + 1
            self.assertLess(pages, 1000)
            if cursor == "0":
                return out, r["connections"], r["users"], pages

    def wait_stats(self, c, channel, want, timeout=5):
        got = []

        def check():
            got[:] = [self.stats(c, channel)]
            return got[0] == want
        try:
            wait_until(check, T(timeout), interval=0.1, what="presence %r" % (want,))
        except AssertionError:
            self.fail("presence_stats %s: %r, want %r" % (channel, got, want))


class ClusterMixin:
    """The cases of a PresenceBase class with the gateways on a 6-node Redis Cluster
    (redis+cluster://): per-channel commands on each channel's master, node-wide keys
    under {wsgate}, events by SPUBLISH."""
    CLUSTER = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from wsgate_cluster import ClusterRedis  # skips the class when redis-cli is missing
        cls.shared = ClusterRedis(replicas=1)
        cls.addClassCleanup(cls.shared.cleanup)
