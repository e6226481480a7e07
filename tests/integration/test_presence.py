"""Presence (docs/PROTOCOL.md "Presence") on real redis-server and wsgate processes:
members written when a subscription goes live and removed on unsubscribe and close,
exact connection and user counts across nodes and tabs, the info claim and its bound,
rights, channels outside --presence-channels, and a SIGKILLed node's members removed
by the survivors within 15 s (a leave still inside --presence-leave-delay included).
Every case runs twice: PresenceTest on one redis-server, ClusterPresenceTest on a real
6-node Redis Cluster (3 masters + 3 replicas, wsgate_cluster.py) that the class shares
(FLUSHALL before each case), the gateways on redis+cluster://, the rooms spread over
every master.
Tokens are minted by PyJWT (Debian python3-jwt).
Run alone: WSGATE_BIN=build/gateway/wsgate /usr/bin/python3 -m unittest -v test_presence
(or test_presence.PresenceTest / test_presence.ClusterPresenceTest)
"""

import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import NO_RATE_LIMIT, GatewayTestCase, T, http_get, uniq, wait_until  # noqa: E402

try:
    import jwt
except ImportError as e:  # pragma: no cover
    raise unittest.SkipTest("needs python3-jwt: %s" % e)


class PresenceTest(GatewayTestCase):
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

    def test_counts_across_nodes_tabs_and_anonymous(self):
        redis = self.redis_for_test()
        a, b = self.node(redis, "a"), self.node(redis, "b")
        room = uniq("room:")
        alice1 = self.user(a, "alice", info={"name": "Alice", "color": "red"})
        alice2 = self.user(b, "alice", info={"name": "Alice", "color": "red"})
        bob = self.user(b, "bob")
        for c in (alice1, alice2, bob):
            self.join(c, room)
        self.wait_stats(alice1, room, (3, 2))
        self.assertEqual(self.stats(bob, room), (3, 2))  # the same from the other node
        # Both nodes list the room in their incarnation's index (what a purge walks).
        self.assertEqual(self.indexed(redis, "gw:" + room), 2)
        got, conns, users, _ = self.members(bob, room)
        self.assertEqual((conns, users), (3, 2))
        self.assertEqual(sorted(m["user"] for m in got.values()), ["alice", "alice", "bob"])
        for m in got.values():
            if m["user"] == "alice":
                self.assertEqual(m["info"], {"name": "Alice", "color": "red"})
            else:
                self.assertNotIn("info", m)
        # A repeated subscribe is not a second member.
        self.join(alice1, room)
        self.assertEqual(self.stats(alice1, room), (3, 2))
        # One tab leaves: alice stays a user; the last one leaves: she is gone.
        self.assertEqual(alice2.unsubscribe(room).get("type"), "ack")
        self.wait_stats(bob, room, (2, 2))
        alice1.close()
        self.wait_stats(bob, room, (1, 1))
        # Anonymous clients count as connections, not users, and read like subscribers.
        anon = self.user(a, False)
        self.join(anon, "lobby")
        self.join(bob, "lobby")
        self.wait_stats(anon, "lobby", (2, 1))
        got, _, _, _ = self.members(anon, "lobby")
        self.assertEqual(sorted(str(m["user"]) for m in got.values()), ["None", "bob"])
        bob.close()
        anon.close()
        self.wait_stats(self.user(a, False), "lobby", (0, 0))
        # Nothing of the room is left behind in Redis, and no index lists it any more.
        self.wait_stats(self.user(a, "carol"), room, (0, 0))
        wait_until(lambda: self.indexed(redis, "gw:" + room) == 0, T(5), what="the room out of both indexes")
        self.assertEqual(redis.command("EXISTS", "{gw:%s}:presence" % room), 0)
        self.assertEqual(redis.command("EXISTS", "{gw:%s}:presence:users" % room), 0)

    def test_pages_cover_every_member(self):
        redis = self.redis_for_test()
        a = self.node(redis, "a")
        room = uniq("room:")
        # Values over 64 bytes: Redis keeps the hash as a table, whose HSCAN pages
        # follow the limit (a small compact hash comes back whole, see PROTOCOL.md).
        clients = [self.user(a, "u%d" % i, info={"pad": "p" * 64}) for i in range(30)]
        for c in clients:
            self.join(c, room)
        got, conns, users, pages = self.members(clients[0], room, limit=5)
        self.assertEqual((conns, users), (30, 30))
        self.assertEqual(sorted(m["user"] for m in got.values()), sorted("u%d" % i for i in range(30)))
        self.assertGreater(pages, 1)
        r = clients[0].request({"type": "presence", "channel": room, "limit": 1001})
        self.assertEqual((r["type"], r["code"]), ("error", "bad_request"))
        r = clients[0].request({"type": "presence", "channel": room, "cursor": 5})
        self.assertEqual((r["type"], r["code"]), ("error", "bad_request"))

    def test_rights_and_channels_without_presence(self):
        redis = self.redis_for_test()
        a = self.node(redis, "a")
        c = self.user(a, "dave", channels=["room:own"])
        r = c.request({"type": "presence_stats", "channel": "room:other"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        r = c.request({"type": "presence", "channel": "room:other"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        self.assertEqual(self.stats(c, "room:own"), (0, 0))
        anon = self.user(a, False)
        r = anon.request({"type": "presence_stats", "channel": "room:x"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        # A channel outside --presence-channels keeps nothing and says so.
        e = self.user(a, "erin", channels=["*"])
        self.join(e, "news")
        r = e.request({"type": "presence_stats", "channel": "news"})
        self.assertEqual((r["type"], r["code"]), ("error", "bad_request"), r)
        self.assertIn("presence-channels", r["message"])
        self.assertEqual(redis.command("EXISTS", "{gw:news}:presence"), 0)
        # The token's "presence" claim narrows the reads (subscribing is unchanged).
        n = self.user(a, "nina", channels=["room:*"], presence=["room:open"])
        self.assertEqual(self.stats(n, "room:open"), (0, 0))
        r = n.request({"type": "presence", "channel": "room:closed"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        self.assertIn("presence", r["message"])
        self.join(n, "room:closed")
        # --anonymous-presence narrows what clients without a token may read.
        b = self.node(redis, "b", ["--anonymous-presence", "room:none"])
        anon = self.user(b, False)
        self.join(anon, "lobby")
        r = anon.request({"type": "presence_stats", "channel": "lobby"})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)

    def test_info_claim_is_bounded(self):
        redis = self.redis_for_test()
        a = self.node(redis, "a")
        ok = self.user(a, "fred", info={"bio": "x" * 1000})  # compact: 1011 bytes
        self.join(ok, "room:i")
        got, _, _, _ = self.members(ok, "room:i")
        self.assertEqual([m["info"]["bio"] for m in got.values()], ["x" * 1000])
        c = self.client(a.port)
        c.send_json({"type": "auth", "id": 1, "token": self.mint("gina", info={"bio": "x" * 1100})})
        r = c.recv_json(timeout=5)
        self.assertEqual((r["type"], r["code"]), ("error", "unauthorized"), r)
        c2 = self.client(a.port)
        c2.send_json({"type": "auth", "id": 1, "token": self.mint("gina", info=["not", "an", "object"])})
        r = c2.recv_json(timeout=5)
        self.assertEqual(r["type"], "error", r)

    def test_join_leave_events_across_nodes_once_per_user(self):
        redis = self.redis_for_test()
        a, b = self.node(redis, "a", ["--presence-leave-delay", "1"]), self.node(redis, "b", ["--presence-leave-delay", "1"])
        room = uniq("room:")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        quiet = self.user(a, "quiet")
        self.join(quiet, room)  # without "presence": true: no events
        self.assertEqual([e["user"] for e in self.events(watcher, 0.5)], ["watcher", "quiet"])
        tab1 = self.user(b, "alice", info={"name": "Alice"})
        self.join(tab1, room)
        tab2 = self.user(a, "alice", info={"name": "Alice"})
        self.join(tab2, room)
        got = self.events(watcher, 1)
        self.assertEqual(got, [{"type": "join", "channel": room, "user": "alice", "info": {"name": "Alice"}}])
        tab1.close()
        self.assertEqual(self.events(watcher, 1.5), [])  # alice is still here in tab2
        tab2.close()
        got = self.events(watcher, 3)
        self.assertEqual(got, [{"type": "leave", "channel": room, "user": "alice"}])
        quiet.close()
        self.assertEqual([(e["type"], e["user"]) for e in self.events(watcher, 2)], [("leave", "quiet")])
        # The backends' stream: one occupied, the joins and leaves by user, and (after the
        # watcher goes) one vacated.
        watcher.close()
        wait_until(lambda: self.event_log(redis, room)[-1:] == [{"event": "vacated"}], T(5), what="vacated")
        log = self.event_log(redis, room)
        self.assertEqual(log, [{"event": "occupied"}, {"event": "join", "user": "watcher"},
                               {"event": "join", "user": "quiet"}, {"event": "join", "user": "alice"},
                               {"event": "leave", "user": "alice"}, {"event": "leave", "user": "quiet"},
                               {"event": "leave", "user": "watcher"}, {"event": "vacated"}])

    def test_reconnect_within_the_delay_makes_no_event(self):
        redis = self.redis_for_test()
        a, b = self.node(redis, "a", ["--presence-leave-delay", "2"]), self.node(redis, "b", ["--presence-leave-delay", "2"])
        room = uniq("room:")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        c = self.user(b, "bob")
        self.join(c, room)
        self.assertEqual([e["type"] + ":" + e["user"] for e in self.events(watcher, 1)], ["join:watcher", "join:bob"])
        c.abort()  # a dropped connection; bob comes back on the other node at once
        c = self.user(a, "bob")
        self.join(c, room)
        self.assertEqual(self.events(watcher, 3.5), [])
        self.assertEqual(self.stats(watcher, room), (2, 2))  # the old connection is gone by now
        c.close()
        self.assertEqual([e["type"] for e in self.events(watcher, 3.5)], ["leave"])

    def test_max_members_stops_events_and_says_so_once(self):
        redis = self.redis_for_test()
        a = self.node(redis, "a", ["--presence-max-members", "3"])
        room = uniq("room:")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        others = []
        for i in range(5):
            others.append(self.user(a, "m%d" % i))
            self.join(others[-1], room)
        got = self.events(watcher, 1)
        self.assertEqual([(e["type"], e.get("user"), e.get("limited")) for e in got],
                         [("join", "watcher", None), ("join", "m0", None), ("join", "m1", None),
                          ("presence_limited", None, True)])
        self.assertEqual(got[-1]["max"], 3)
        self.assertEqual(self.stats(watcher, room), (6, 6))  # counts go on
        for c in others[2:]:
            c.close()
        got = self.events(watcher, 1)
        self.assertEqual([(e["type"], e.get("limited")) for e in got], [("presence_limited", False)])
        others[0].close()
        self.assertEqual([(e["type"], e.get("user")) for e in self.events(watcher, 1)], [("leave", "m0")])

    def test_presence_events_only_where_presence_is_kept(self):
        redis = self.redis_for_test()
        a = self.node(redis, "a")
        c = self.user(a, "hank", channels=["*"])
        r = c.request({"type": "subscribe", "channel": "news", "presence": True})
        self.assertEqual((r["type"], r["code"]), ("error", "bad_request"), r)
        r = c.request({"type": "subscribe", "channel": "room:1", "presence": "yes"})
        self.assertEqual((r["type"], r["code"]), ("error", "bad_request"), r)
        # A forged reserved payload from Redis is not an event: dropped, counted.
        self.join(c, "room:1", events=True)
        self.events(c, 0.3)
        redis.publish("gw:room:1", b"\xfewsgate-presence1\n{\"type\":\"jo\\\"in\"}")
        self.assertEqual(self.events(c, 0.5), [])

    def test_2000_clients_over_2_nodes_exact_counts_one_occupied_one_vacated(self):
        redis = self.redis_for_test()
        extra = ["--presence-max-members", "0"]
        nodes = [self.node(redis, "a", extra), self.node(redis, "b", extra)]
        room = uniq("room:")
        # 1,500 users: u0..u499 have a tab on each node, the others one connection.
        tokens = {u: self.mint("u%d" % u) for u in range(1500)}
        plan = [[], []]
        for u in range(1500):
            plan[u % 2].append(u)
            if u < 500:
                plan[1 - u % 2].append(u)
        self.assertEqual(sum(map(len, plan)), 2000)
        clients, errors = [[], []], []

        def join_all(k):
            try:
                for u in plan[k]:
                    c = self.client(nodes[k].port, path="/ws?token=" + tokens[u], timeout=30)
                    c.send_json({"type": "subscribe", "channel": room, "id": 1})
                    clients[k].append(c)
                for c in clients[k]:
                    ack = c.wait_reply(1, timeout=30)
                    if ack.get("type") != "ack":
                        errors.append(ack)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        def leave_all(k):
            try:
                for c in clients[k]:
                    c.abort()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        t0 = time.monotonic()
        for fn in (join_all, leave_all):
            threads = [threading.Thread(target=fn, args=(k,)) for k in (0, 1)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(T(90))
            self.assertFalse(any(th.is_alive() for th in threads), "bounded in time")
            self.assertEqual(errors, [])
            if fn is join_all:
                probe = self.user(nodes[0], "probe")  # reads, is no member
                self.wait_stats(probe, room, (2000, 1500), timeout=20)
                joined = time.monotonic() - t0
        self.wait_stats(probe, room, (0, 0), timeout=20)
        took = time.monotonic() - t0
        log = self.event_log(redis, room)
        kinds = [e["event"] for e in log]
        self.assertEqual((kinds.count("occupied"), kinds.count("vacated")), (1, 1))
        self.assertEqual((kinds[0], kinds[-1]), ("occupied", "vacated"))
        self.assertEqual(sorted(e["user"] for e in log if e["event"] == "join"), sorted("u%d" % u for u in range(1500)))
        self.assertEqual(sorted(e["user"] for e in log if e["event"] == "leave"), sorted("u%d" % u for u in range(1500)))
        print("\n  2000 clients joined in %.1f s, all gone by %.1f s" % (joined, took), file=sys.stderr)

    def test_http_api_behind_the_keys(self):
        import http.client
        redis = self.redis_for_test()
        a = self.node(redis, "a", ["--api-key-file", self.key_file])
        b = self.node(redis, "b")
        room = uniq("room:")
        for gw, sub in ((a, "ann"), (b, "ann"), (b, "ben")):
            self.join(self.user(gw, sub, info={"k": sub}), room)
        auth = {"Authorization": "Bearer " + self.api_key}

        def get(path, headers=auth):
            status, hdrs, body = http_get(a.port, path, headers=headers)
            return status, json.loads(body) if hdrs.get("content-type", "").startswith("application/json") else body

        wait_until(lambda: get("/api/presence_stats?channel=" + room)[1].get("connections") == 3, T(5),
                   what="3 connections through the API")
        status, body = get("/api/presence_stats?channel=" + room)
        self.assertEqual((status, body["type"], body["channel"], body["connections"], body["users"]),
                         (200, "presence_stats", room, 3, 2))
        status, body = get("/api/presence?channel=%s&limit=10" % room)
        self.assertEqual(status, 200)
        self.assertEqual(sorted(m["user"] for m in body["members"]), ["ann", "ann", "ben"])
        self.assertEqual(body["cursor"], "0")
        self.assertEqual(get("/api/presence?channel=" + room, headers={})[0], 401)
        self.assertEqual(get("/api/presence?channel=" + room, headers={"Authorization": "Bearer nope"})[0], 401)
        self.assertEqual(get("/api/presence_stats")[0], 400)
        self.assertEqual(get("/api/presence_stats?channel=news")[0], 400)  # keeps no presence
        self.assertEqual(get("/api/presence?channel=%s&limit=0" % room)[0], 400)
        self.assertEqual(get("/api/presence?channel=%s&cursor=x" % room)[0], 400)
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
        conn.request("POST", "/api/presence?channel=" + room, body=b"", headers=auth)
        r = conn.getresponse()
        self.assertEqual((r.status, r.getheader("allow")), (405, "GET"))
        conn.close()
        # Not served where no key is configured.
        self.assertEqual(http_get(b.port, "/api/presence?channel=" + room, headers=auth)[0], 404)

    def test_node_back_after_a_stop_registers_again_once(self):
        """A node stopped past the incarnation TTL (its link survives: SIGSTOP) is purged by
        the others; back, it registers its members under a new incarnation: counts exact,
        nothing of the old incarnation left, no member twice."""
        import signal
        redis = self.redis_for_test()
        a = self.node(redis, "a")
        b = self.node(redis, "b", ["--redis-heartbeat-timeout-ms", "20000"])
        room = uniq("room:")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        on_b = [self.user(b, "s%d" % i) for i in range(3)]
        for c in on_b:
            self.join(c, room)
        self.wait_stats(watcher, room, (4, 4))
        before = set(redis.command("SMEMBERS", self.ns + "nodes"))
        self.assertEqual(len(before), 2)
        b.send_signal(signal.SIGSTOP)
        try:
            self.wait_stats(watcher, room, (1, 1), timeout=15)
        finally:
            b.send_signal(signal.SIGCONT)
        self.wait_stats(watcher, room, (4, 4), timeout=10)
        got, _, _, _ = self.members(watcher, room)
        self.assertEqual(sorted(m["user"] for m in got.values()), ["s0", "s1", "s2", "watcher"])
        after = set(redis.command("SMEMBERS", self.ns + "nodes"))
        self.assertEqual(len(after), 2)
        b_now = [x.decode() for x in after if x not in before]
        self.assertEqual(len(b_now), 1, "b has a new incarnation")
        self.assertTrue(all(m["client"].startswith(b_now[0] + "/") for m in got.values() if m["user"] != "watcher"))
        # Each s joined, left when purged, and joined again when b came back: once each.
        kinds = [(e["type"], e["user"]) for e in self.events(watcher, 1) if e["user"] != "watcher"]
        for i in range(3):
            self.assertEqual([k for k, u in kinds if u == "s%d" % i], ["join", "leave", "join"])
        self.assertIn("registering again", b.log_text())

    def cut_links(self, redis):
        """Closes every gateway's command connection (CLIENT KILL TYPE normal on each
        master): the nodes' links reset and come back."""
        masters = self.shared.cluster.masters() if self.CLUSTER else [redis]
        for m in masters:
            m.command("CLIENT", "KILL", "TYPE", "normal")

    def test_link_reset_keeps_a_leave_waiting_its_delay(self):
        """A connection unsubscribes (its leave waits --presence-leave-delay), the node's
        Redis link resets (a new incarnation, the old one purged) and the connection
        subscribes again within the delay: it never left, so no leave and no join, and it
        is still a member afterwards (the new incarnation registered the waiting leave's
        member too, instead of losing it with the old one)."""
        redis = self.redis_for_test()
        a = self.node(redis, "a", ["--presence-leave-delay", "4"])
        room = uniq("room:")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        x = self.user(a, "x")
        self.join(x, room)
        self.assertEqual([e["user"] for e in self.events(watcher, 0.5)], ["watcher", "x"])
        before = set(redis.command("SMEMBERS", self.ns + "nodes"))
        self.assertEqual(x.unsubscribe(room).get("type"), "ack")
        self.cut_links(redis)
        if self.CLUSTER:
            # One master's lost connection resets only that master's side of the link
            # and loses no write here (nothing in flight): no new incarnation is needed.
            wait_until(lambda: a.metric("wsgate_redis_reconnects_total", 0) >= 1, T(5),
                       what="a reconnected")
            a.wait_ready(timeout=T(10))
        else:
            wait_until(lambda: set(redis.command("SMEMBERS", self.ns + "nodes")) - before, T(3),
                       what="a new incarnation of a")
            wait_until(lambda: set(redis.command("SMEMBERS", self.ns + "nodes")).isdisjoint(before), T(3),
                       what="the old incarnation purged")
        self.join(x, room)  # within the delay
        self.assertEqual(self.events(watcher, 1.5), [])
        self.wait_stats(watcher, room, (2, 2))
        got, _, _, _ = self.members(watcher, room)
        self.assertEqual(sorted(m["user"] for m in got.values()), ["watcher", "x"])
        x.close()
        self.assertEqual([(e["type"], e["user"]) for e in self.events(watcher, 6)], [("leave", "x")])

    def test_outage_past_the_ttl_makes_no_event(self):
        """The node-wide keys' Redis stops for 7 s (one Redis; on a cluster the {wsgate}
        master with its replica), past the incarnations' 5 s TTL, so every node's key
        expires. When it answers again each node registers under a new incarnation, and
        no node purges another meanwhile (b, stopped for 2 s more, comes back after a has
        checked the others twice): nobody leaves or joins, the counts stay exact."""
        import signal
        redis = self.redis_for_test()
        if self.CLUSTER:
            cluster = self.shared.cluster
            hub = cluster.master_of_key(self.ns + "nodes")
            stopped = [hub] + cluster.replicas_of(hub)
            room = next(r for r in (uniq("room:") for _ in range(1000))
                        if cluster.master_of_key("gw:" + r) is not hub)
        else:
            stopped, room = [redis], uniq("room:")
        a = self.node(redis, "a")
        b = self.node(redis, "b")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        on_b = [self.user(b, "s%d" % i) for i in range(3)]
        for c in on_b:
            self.join(c, room)
        self.wait_stats(watcher, room, (4, 4))
        self.assertEqual(len(self.events(watcher, 0.5)), 4)
        before = set(redis.command("SMEMBERS", self.ns + "nodes"))
        for n in stopped:
            os.kill(n.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(T(7))
            b.send_signal(signal.SIGSTOP)  # b comes back 2 s after a, past a's first checks
        finally:
            for n in stopped:
                os.kill(n.proc.pid, signal.SIGCONT)
            time.sleep(2)
            b.send_signal(signal.SIGCONT)
        wait_until(lambda: len(set(redis.command("SMEMBERS", self.ns + "nodes")) - before) == 2, T(20),
                   what="a new incarnation of both nodes")
        self.wait_stats(watcher, room, (4, 4), timeout=10)
        # Past every node's hold (7 s after it last missed the keys): still nobody left.
        self.assertEqual([(e["type"], e.get("user")) for e in self.events(watcher, 9)], [])
        self.assertEqual(self.stats(watcher, room), (4, 4))
        log = self.event_log(redis, room)
        self.assertEqual([e for e in log if e["event"] in ("leave", "vacated")], [])
        wait_until(lambda: set(redis.command("SMEMBERS", self.ns + "nodes")).isdisjoint(before), T(5),
                   what="the old incarnations gone")
        if self.CLUSTER:
            cluster.wait_ok(T(30))

    def rooms(self, n):
        """n room names; on a cluster each one's slot on another master."""
        if not self.CLUSTER:
            return [uniq("room:") for _ in range(n)]
        out, owners = [], set()
        while len(out) < n:
            room = uniq("room:")
            owner = self.shared.cluster.master_of_key("gw:" + room).addr
            if owner not in owners:
                owners.add(owner)
                out.append(room)
        return out

    def test_killed_node_members_leave_within_15s(self):
        """b is SIGKILLed with members in three rooms (on a cluster: one per master), one
        of them ("late") closed just before, its leave still waiting --presence-leave-delay
        on b: the survivor removes every member of b within 15 s of the kill, and each
        user who was only on b leaves each room once ("both" stays, so never leaves)."""
        redis = self.redis_for_test()
        delay = ["--presence-leave-delay", "3"]
        a, b = self.node(redis, "a", delay), self.node(redis, "b", delay)
        rooms = self.rooms(3)
        watchers = [self.user(a, "watcher") for _ in rooms]
        for w, room in zip(watchers, rooms):
            self.join(w, room, events=True)
        both = self.user(a, "both")
        on_b = [self.user(b, "b%d" % i) for i in range(5)] + [self.user(b, "both"), self.user(b, "late")]
        for room in rooms:
            for c in [both] + on_b:
                self.join(c, room)
        for w, room in zip(watchers, rooms):
            self.wait_stats(w, room, (9, 8))
            self.events(w, 0.2)  # the joins
        on_b[-1].close()
        time.sleep(0.5)  # b has the close: "late" now waits its delay, still a member
        for w, room in zip(watchers, rooms):
            self.assertEqual(self.stats(w, room), (9, 8))
        b.kill()
        t0 = time.monotonic()
        for w, room in zip(watchers, rooms):
            self.wait_stats(w, room, (2, 2), timeout=max(0.1, 15 - (time.monotonic() - t0)))
        took = time.monotonic() - t0
        self.assertLess(took, 15)
        print("\n  members of the SIGKILLed node gone after %.1f s (%s)"
              % (took, "cluster" if self.CLUSTER else "one Redis"), file=sys.stderr)
        gone = sorted(["b%d" % i for i in range(5)] + ["late"])
        for w, room in zip(watchers, rooms):
            got, _, _, _ = self.members(w, room)
            self.assertEqual(sorted(m["user"] for m in got.values()), ["both", "watcher"])
            # One leave per user who was only on the dead node; none for "both".
            leaves = [e["user"] for e in self.events(w, 1) if e["type"] == "leave"]
            self.assertEqual(sorted(leaves), gone, room)
            log = self.event_log(redis, room)
            self.assertEqual(sorted(e["user"] for e in log if e["event"] == "leave"), gone, room)
            self.assertEqual([e["event"] for e in log].count("vacated"), 0, room)
        # Its index and incarnation entries are gone too; a's stay.
        wait_until(lambda: len(redis.command("SMEMBERS", self.ns + "nodes")) == 1, T(5),
                   what="the dead incarnation dropped from %snodes" % self.ns)
        self.assertIn("presence purged", a.log_text())
        self.assertEqual(a.metric("wsgate_presence_members_purged_total"), 7 * len(rooms))
        self.assertEqual(a.metric("wsgate_presence_write_errors_total"), 0)
        # The events index lists every room (the backends' way to every stream).
        listed = {x.decode() for x in redis.command("ZRANGE", self.ns + "channels", "0", "-1")}
        self.assertTrue({"gw:" + r for r in rooms} <= listed, listed)

    def test_killed_node_with_an_unanswered_index_write_leaves_no_ghost(self):
        """b's first member of room g joins while the node-wide keys' Redis (on a cluster the
        {wsgate} master, g being on another master) holds every write (CLIENT PAUSE WRITE),
        so b's listing of g in its index gets no answer; b is SIGKILLed before it does. A
        member of g in Redis that b's index does not list would never be purged (a ghost):
        the join waits for its channel's listing, so within 15 s of the kill g has only the
        watcher, ghost's joins and leaves match (0 and 0) in the events and the stream, and
        b's member of room r (listed before the pause) leaves exactly once. With one Redis
        the pause holds b's join too (one connection, one order): no ghost either way."""
        redis = self.redis_for_test()
        if self.CLUSTER:
            cluster = self.shared.cluster
            hub = cluster.master_of_key(self.ns + "nodes")
            g = next(x for x in (uniq("room:") for _ in range(1000)) if cluster.master_of_key("gw:" + x) is not hub)
        else:
            hub, g = redis, uniq("room:")
        r = uniq("room:")
        # Commands wait out the pause instead of resetting the links.
        slow = ["--redis-heartbeat-timeout-ms", "20000"]
        a, b = self.node(redis, "a", slow), self.node(redis, "b", slow)
        watchers = {}
        for room in (g, r):
            watchers[room] = self.user(a, "watcher")
            self.join(watchers[room], room, events=True)
        early = self.user(b, "early")
        self.join(early, r)
        self.wait_stats(watchers[r], r, (2, 2))
        self.wait_stats(watchers[g], g, (1, 1))
        self.events(watchers[g], 0.3)
        self.events(watchers[r], 0.3)
        hub.command("CLIENT", "PAUSE", "4000", "WRITE")
        try:
            ghost = self.user(b, "ghost")
            self.join(ghost, g)
            time.sleep(1)  # b has sent whatever it sends for g
            b.kill()
            t0 = time.monotonic()
        finally:
            hub.command("CLIENT", "UNPAUSE")
        for room in (g, r):
            self.wait_stats(watchers[room], room, (1, 1), timeout=max(0.1, 15 - (time.monotonic() - t0)))
        took = time.monotonic() - t0
        self.assertLess(took, 15)
        got = [(e["type"], e["user"]) for e in self.events(watchers[g], 1)]
        self.assertEqual(got.count(("join", "ghost")), got.count(("leave", "ghost")), got)
        self.assertLessEqual(got.count(("leave", "ghost")), 1, got)
        log = [(e["event"], e.get("user")) for e in self.event_log(redis, g)]
        self.assertEqual(log.count(("join", "ghost")), log.count(("leave", "ghost")), log)
        self.assertEqual([m["user"] for m in self.members(watchers[g], g)[0].values()], ["watcher"])
        self.assertEqual([(e["type"], e["user"]) for e in self.events(watchers[r], 1)], [("leave", "early")])
        log = [(e["event"], e.get("user")) for e in self.event_log(redis, r)]
        self.assertEqual(log.count(("leave", "early")), 1, log)
        print("\n  no ghost of the SIGKILLed node after %.1f s (%s)" % (took, "cluster" if self.CLUSTER else "one Redis"),
              file=sys.stderr)

    def test_join_held_for_an_index_that_fails_follows_once_it_answers(self):
        """The node-wide keys' Redis holds every write (CLIENT PAUSE WRITE) past b's command
        timeout while b's member of room g subscribes: its join waits (no member yet, seen
        from a), b's listing of g fails, and once that Redis answers again b registers anew
        and the join follows, once; b SIGKILLed then, the member leaves once within 15 s."""
        redis = self.redis_for_test()
        if self.CLUSTER:
            cluster = self.shared.cluster
            hub = cluster.master_of_key(self.ns + "nodes")
            g = next(x for x in (uniq("room:") for _ in range(1000)) if cluster.master_of_key("gw:" + x) is not hub)
        else:
            hub, g = redis, uniq("room:")
        a = self.node(redis, "a", ["--redis-heartbeat-timeout-ms", "20000"])
        b = self.node(redis, "b", ["--redis-heartbeat-timeout-ms", "1500"])
        watcher = self.user(a, "watcher")
        self.join(watcher, g, events=True)
        self.wait_stats(watcher, g, (1, 1))
        self.events(watcher, 0.3)
        hub.command("CLIENT", "PAUSE", "4000", "WRITE")
        try:
            late = self.user(b, "late")
            self.join(late, g)
            time.sleep(1)
            self.assertEqual(self.stats(watcher, g), (1, 1))  # held, not written
        finally:
            time.sleep(2.5)  # past b's timeout: its listing got no answer
            hub.command("CLIENT", "UNPAUSE")
        self.wait_stats(watcher, g, (2, 2), timeout=25)
        got, _, _, _ = self.members(watcher, g)
        self.assertEqual(sorted(m["user"] for m in got.values()), ["late", "watcher"])
        self.assertEqual([(e["type"], e["user"]) for e in self.events(watcher, 1)], [("join", "late")])
        self.assertIn("presence channel not listed", b.log_text())  # the listing failed, then came again
        b.kill()
        t0 = time.monotonic()
        self.wait_stats(watcher, g, (1, 1), timeout=15)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual([(e["type"], e["user"]) for e in self.events(watcher, 1)], [("leave", "late")])
        log = [(e["event"], e.get("user")) for e in self.event_log(redis, g)]
        self.assertEqual((log.count(("join", "late")), log.count(("leave", "late"))), (1, 1), log)


class ClusterPresenceTest(PresenceTest):
    """Every case above with the gateways on a 6-node Redis Cluster (redis+cluster://):
    per-channel commands on each channel's master, node-wide keys under {wsgate}, events
    by SPUBLISH."""
    CLUSTER = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from wsgate_cluster import ClusterRedis  # skips the class when redis-cli is missing
        cls.shared = ClusterRedis(replicas=1)
        cls.addClassCleanup(cls.shared.cleanup)

    def test_master_failover_keeps_members_without_events(self):
        """The master of a room's slot is SIGKILLed and its replica promoted: the nodes'
        links reset, each registers its members again under a new incarnation on the new
        master before purging the old one, so the counts come back exact, no member is
        there twice, and nobody who stayed connected leaves or joins again."""
        cluster = self.shared.cluster
        redis = self.redis_for_test()
        hub = cluster.master_of_key(self.ns + "nodes")  # the node-wide keys' master stays up
        room = next(r for r in (uniq("room:") for _ in range(1000))
                    if cluster.master_of_key("gw:" + r) is not hub)
        victim = cluster.master_of_key("gw:" + room)
        a, b = self.node(redis, "a"), self.node(redis, "b")
        watcher = self.user(a, "watcher")
        self.join(watcher, room, events=True)
        clients = [self.user(b, "u%d" % i) for i in range(4)] + [self.user(a, "both"), self.user(b, "both")]
        for c in clients:
            self.join(c, room)
        self.wait_stats(watcher, room, (7, 6))
        self.assertEqual(len(self.events(watcher, 0.5)), 6)  # the joins
        cluster.kill_master(victim)
        try:
            # Each node's link resets when it sees the new owner (not at the same moment):
            # a second incarnation each, the first one purged.
            wait_until(lambda: all(gw.log_text().count('msg="presence" incarnation=') >= 2 for gw in (a, b)),
                       T(15), what="a new incarnation on both nodes")
            self.wait_stats(watcher, room, (7, 6), timeout=20)
            # The old incarnations' members are gone: each connection once, under the
            # incarnation its node has now.
            state = {}

            def settled():
                got, _, _, _ = self.members(watcher, room)
                listed = {x.decode() for x in redis.command("SMEMBERS", self.ns + "nodes")}
                owners = {m["client"].rsplit("/", 1)[0] for m in got.values()}
                state.update(got=got, listed=listed, owners=owners)
                return len(got) == 7 and len(owners) == 2 and owners <= listed and len(listed) == 2
            try:
                wait_until(settled, T(10), what="7 members under the 2 current incarnations")
            except AssertionError:
                self.fail("members %r" % (state,))
            self.assertEqual(sorted(m["user"] for m in state["got"].values()),
                             ["both", "both", "u0", "u1", "u2", "u3", "watcher"])
            self.assertEqual([(e["type"], e.get("user")) for e in self.events(watcher, 2)], [])
            log = self.event_log(redis, room)
            self.assertEqual([e for e in log if e["event"] in ("leave", "vacated")], [])
            self.assertEqual(sorted(e["user"] for e in log if e["event"] == "join"),
                             ["both", "u0", "u1", "u2", "u3", "watcher"])
        finally:
            victim.start()  # back as a replica (its nodes.conf), for the next cases
            cluster.wait_ok(T(30))


if __name__ == "__main__":
    unittest.main()
