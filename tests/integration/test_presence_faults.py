"""Presence under faults (docs/PROTOCOL.md "Presence", docs/RELIABILITY.md), on real
redis-server and wsgate processes: a SIGKILLed node's members removed by the survivors
within 15 s (a leave still inside --presence-leave-delay included, an index write that got
no answer included), a stopped node back once, links reset and Redis outages past the TTL
without events, and (cluster only) a master's failover without events.
Every case runs twice: PresenceFaultTest on one redis-server, ClusterPresenceFaultTest on a
real 6-node Redis Cluster (wsgate_presence.ClusterMixin). Tokens are minted by PyJWT.
Run alone: WSGATE_BIN=build/gateway/wsgate /usr/bin/python3 -m unittest -v test_presence_faults
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import T, uniq, wait_until  # noqa: E402
from wsgate_presence import ClusterMixin, PresenceBase  # noqa: E402


class PresenceFaultTest(PresenceBase):
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


class ClusterPresenceFaultTest(ClusterMixin, PresenceFaultTest):
    """Every case above with the gateways on a 6-node Redis Cluster, and a master's failover."""

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
