"""Presence (docs/PROTOCOL.md "Presence") on real redis-server and wsgate processes:
members written when a subscription goes live and removed on unsubscribe and close,
exact connection and user counts across nodes and tabs, the info claim and its bound,
rights, channels outside --presence-channels, events once per user, the limits and the
HTTP API. The faults (a node SIGKILLed or stopped, links reset, Redis outages, a master's
failover) are in test_presence_faults.py.
Every case runs twice: PresenceTest on one redis-server, ClusterPresenceTest on a real
6-node Redis Cluster (wsgate_presence.ClusterMixin). Tokens are minted by PyJWT.
Run alone: WSGATE_BIN=build/gateway/wsgate /usr/bin/python3 -m unittest -v test_presence
(or test_presence.PresenceTest / test_presence.ClusterPresenceTest)
"""

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import T, http_get, uniq, wait_until  # noqa: E402
from wsgate_presence import ClusterMixin, PresenceBase  # noqa: E402


class PresenceTest(PresenceBase):
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


class ClusterPresenceTest(ClusterMixin, PresenceTest):
    """Every case above with the gateways on a 6-node Redis Cluster."""


if __name__ == "__main__":
    unittest.main()
