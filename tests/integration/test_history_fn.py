"""The Redis Function library deploy/redis/wsgate.lua (issue 10, publishing with history),
against a real redis-server, without a gateway: loading is idempotent and versioned,
wsgate_publish stores, trims, expires and PUBLISHes envelopes with offsets 1..N under one
epoch, wsgate_history returns exactly what follows `since` or says it cannot, a lost
metadata hash starts a new epoch, so does a dataset of another lineage (a restart, a promoted
replica: docs/RELIABILITY.md "Redis data loss"), and plain PUBLISH is untouched.

Run alone: python3 -m unittest -v test_history_fn
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import RedisError, RedisServer, T, parse_envelope, uniq, wait_until  # noqa: E402

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "redis",
                       "wsgate.lua")
VERSION = 7

def load_library(client, source):
    """What a node does at start: load when absent, REPLACE only when the version differs.
    Returns "loaded", "replaced" or "current"."""
    have = client.command("FCALL_RO", "wsgate_version", "0", raise_errors=False)
    if isinstance(have, RedisError):
        client.command("FUNCTION", "LOAD", source)
        return "loaded"
    if have != VERSION:
        client.command("FUNCTION", "LOAD", "REPLACE", source)
        return "replaced"
    return "current"


def keys(channel):
    return "{%s}:meta" % channel, "{%s}:stream" % channel


class HistoryFunctionTest(unittest.TestCase):
    def setUp(self):
        with open(LIBRARY, "rb") as f:
            self.source = f.read()
        self.redis = RedisServer()
        self.addCleanup(self.redis.cleanup)
        self.c = self.redis.client(timeout=T(5))
        self.addCleanup(self.c.close)
        self.assertEqual(load_library(self.c, self.source), "loaded")
        self.ch = "gw:" + uniq("h")

    def publish(self, payload, history="", ttl="", channel=None):
        ch = channel or self.ch
        return self.c.command("FCALL", "wsgate_publish", "2", *keys(ch), ch, payload, history, ttl)

    def history(self, since, limit="", max_bytes=""):
        return self.c.command("FCALL_RO", "wsgate_history", "2", *keys(self.ch), self.ch, since,
                              limit, max_bytes)

    def subscriber(self):
        s = self.redis.client(timeout=T(5))
        self.addCleanup(s.close)
        self.assertEqual(s.command("SUBSCRIBE", self.ch), [b"subscribe", self.ch.encode(), 1])
        return s

    def receive(self, sub, n):
        out = []
        for _ in range(n):
            kind, ch, data = sub.read_reply(timeout=T(5))
            self.assertEqual((kind, ch), (b"message", self.ch.encode()))
            out.append(data)
        return out

    def test_load_is_idempotent_and_versioned(self):
        self.assertEqual(self.c.command("FCALL_RO", "wsgate_version", "0"), VERSION)
        self.assertEqual(load_library(self.c, self.source), "current")
        self.assertEqual(load_library(self.c, self.source), "current")
        libs = self.c.command("FUNCTION", "LIST", "LIBRARYNAME", "wsgate")
        self.assertEqual(len(libs), 1)
        # A node with another version replaces the library in one step.
        older = self.source.replace(b"local VERSION = %d" % VERSION, b"local VERSION = 1")
        self.c.command("FUNCTION", "LOAD", "REPLACE", older)
        self.assertEqual(load_library(self.c, self.source), "replaced")
        self.assertEqual(self.c.command("FCALL_RO", "wsgate_version", "0"), VERSION)
        # Without REPLACE, a second LOAD is refused rather than silently stacked.
        again = self.c.command("FUNCTION", "LOAD", self.source, raise_errors=False)
        self.assertIsInstance(again, RedisError)

    def test_publish_envelopes_offsets_and_epoch(self):
        n = 200
        sub = self.subscriber()
        replies = [self.publish('{"n":%d}' % i, 1000, 3600) for i in range(1, n + 1)]
        offsets = [r[0] for r in replies]
        self.assertEqual(offsets, list(range(1, n + 1)))
        epochs = {r[1] for r in replies}
        self.assertEqual(len(epochs), 1)
        epoch = epochs.pop().decode()
        self.assertTrue(all(r[2] == 1 for r in replies), "one subscriber counted by PUBLISH")
        got = [parse_envelope(raw) for raw in self.receive(sub, n)]
        self.assertEqual([g[0] for g in got], list(range(1, n + 1)))
        self.assertEqual({g[1] for g in got}, {epoch})
        self.assertEqual([g[2] for g in got], [b'{"n":%d}' % i for i in range(1, n + 1)])

        meta, stream = keys(self.ch)
        self.assertEqual(self.c.command("HGETALL", meta),
                         [b"epoch", epoch.encode(), b"offset", b"%d" % n, b"lineage", self.replid()])
        self.assertEqual(self.c.command("XLEN", stream), n)
        for k in (meta, stream):
            ttl = self.c.command("TTL", k)
            self.assertTrue(3590 <= ttl <= 3600, "%s TTL %d" % (k, ttl))
        # The defaults apply when history size and TTL are left empty: 86400 s.
        self.publish("x")
        self.assertTrue(86390 <= self.c.command("TTL", stream) <= 86400)

    def test_maxlen_trims_and_history_reports_reach(self):
        # Approximate MAXLEN trims whole stream nodes; small nodes make it observable.
        self.c.command("CONFIG", "SET", "stream-node-max-entries", "5")
        for i in range(1, 51):
            self.publish("m%d" % i, 10)
        xlen = self.c.command("XLEN", keys(self.ch)[1])
        self.assertTrue(10 <= xlen <= 15, "XLEN %d with MAXLEN ~ 10" % xlen)
        oldest = 51 - xlen
        epoch, current, reachable, flat = self.history(oldest - 1, 100)
        self.assertEqual((current, reachable), (50, 1))
        self.assertEqual(flat[0::2], list(range(oldest, 51)))
        self.assertEqual(flat[1::2], [b"m%d" % i for i in range(oldest, 51)])
        # Exactly the entries after since, bounded by limit.
        _, _, reachable, flat = self.history(45, 3)
        self.assertEqual((reachable, flat), (1, [46, b"m46", 47, b"m47", 48, b"m48"]))
        self.assertEqual(self.history(50)[2:], [1, []])
        # Older than the trimmed stream: not reachable.
        _, _, reachable, flat = self.history(oldest - 2, 100)
        self.assertEqual(reachable, 0)
        self.assertEqual(flat[0], oldest)
        self.assertEqual(self.history(0)[2], 0)
        # Beyond the current offset: a stale position, not reachable.
        self.assertEqual(self.history(51)[2:], [0, []])

    def test_history_of_unknown_channel(self):
        self.assertEqual(self.history(0), [b"", 0, 1, []])
        self.assertEqual(self.history(7), [b"", 0, 0, []])

    def test_lost_metadata_starts_a_new_epoch(self):
        for i in range(5):
            first = self.publish("a%d" % i)
        self.assertEqual(first[0], 5)
        self.c.command("FLUSHALL")
        sub = self.subscriber()
        second = [self.publish("b%d" % i) for i in range(3)]
        self.assertEqual([r[0] for r in second], [1, 2, 3])
        self.assertNotEqual(second[0][1], first[1])
        got = [parse_envelope(raw) for raw in self.receive(sub, 3)]
        self.assertEqual([(o, e) for o, e, _ in got], [(i, second[0][1].decode()) for i in (1, 2, 3)])
        epoch, current, reachable, _ = self.history(5)
        self.assertEqual((epoch, current, reachable), (second[0][1], 3, 0))
        # Metadata lost while the stream survived: the stale entries go with the old epoch.
        meta, stream = keys(self.ch)
        self.c.command("DEL", meta)
        third = self.publish("c")
        self.assertEqual(third[0], 1)
        self.assertEqual(self.c.command("XLEN", stream), 1)
        self.assertNotIn(third[1], {first[1], second[0][1]})

    def replid(self, client=None):
        info = (client or self.c).command("INFO", "replication").decode()
        return next(l.split(":", 1)[1] for l in info.split("\r\n") if l.startswith("master_replid:")).encode()

    def test_another_lineage_starts_a_new_epoch(self):
        # The meta of an epoch written under another replication ID: what a restart
        # from a dump or an AOF, or a promoted replica, finds (THE EPOCH RULE).
        first = [self.publish("a%d" % i) for i in range(1, 6)]
        epoch = first[0][1]
        self.assertEqual(self.history(3)[2], 1)
        self.assertEqual(self.history(5)[2], 1)
        meta, stream = keys(self.ch)
        self.c.command("HSET", meta, "lineage", "0" * 40)
        # A recovery cannot be vouched for any more; the entries are still readable.
        e, current, reachable, flat = self.history(3)
        self.assertEqual((e, current, reachable, flat), (epoch, 5, 0, [4, b"a4", 5, b"a5"]))
        self.assertEqual(self.history(5)[:3], [epoch, 5, 0])
        self.assertEqual(self.history("", 2)[2], 1, "the latest entries make no claim")
        sub = self.subscriber()
        second = [self.publish("b%d" % i) for i in range(1, 4)]
        self.assertEqual([r[0] for r in second], [1, 2, 3], "offsets restart: none is handed out again")
        self.assertNotEqual(second[0][1], epoch)
        self.assertEqual({r[1] for r in second}, {second[0][1]})
        got = [parse_envelope(raw) for raw in self.receive(sub, 3)]
        self.assertEqual([(o, e) for o, e, _ in got], [(i, second[0][1].decode()) for i in (1, 2, 3)])
        self.assertEqual(self.c.command("XLEN", stream), 3, "the old lineage's entries are gone")
        self.assertEqual(self.c.command("HGET", meta, "lineage"), self.replid())
        self.assertEqual(self.history(1), [second[0][1], 3, 1, [2, b"b2", 3, b"b3"]])
        # Meta of library version 2 (no lineage at all) counts as another lineage.
        self.c.command("HDEL", meta, "lineage")
        self.assertNotEqual(self.publish("c")[1], second[0][1])

    def test_promoted_replica_starts_a_new_epoch(self):
        # The failover trap: a promoted replica must never continue the old master's
        # epoch, whose last acked writes it may not have.
        replica = RedisServer()
        self.addCleanup(replica.cleanup)
        rc = replica.client(timeout=T(5))
        self.addCleanup(rc.close)
        alone = self.publish("a0")
        rc.command("REPLICAOF", "127.0.0.1", str(self.redis.port))
        wait_until(lambda: b"master_link_status:up" in rc.command("INFO", "replication"), T(10),
                   what="the replica in sync")
        first = [self.publish("a%d" % i) for i in range(1, 4)]
        # A master without a backlog makes a new replication ID for its first replica:
        # the one lineage change that loses nothing (docs/RELIABILITY.md, the cost).
        self.assertEqual([r[0] for r in first], [1, 2, 3])
        self.assertNotEqual(first[0][1], alone[1])
        self.assertEqual(self.c.command("WAIT", "1", str(int(T(5) * 1000))), 1)
        self.assertEqual(self.replid(rc), self.replid(), "a replica shares its master's lineage")
        self.assertEqual(rc.command("HGET", keys(self.ch)[0], "offset"), b"3")
        rc.command("REPLICAOF", "NO", "ONE")
        self.assertNotEqual(self.replid(rc), self.replid(), "promotion makes a new lineage")
        after = rc.command("FCALL", "wsgate_publish", "2", *keys(self.ch), self.ch, "p", "", "")
        self.assertEqual(after[0], 1)
        self.assertNotEqual(after[1], first[0][1])
        # On the old master, which kept its lineage, the epoch goes on.
        self.assertEqual(self.publish("a4")[:2], [4, first[0][1]])

    def retire(self, epoch, below=""):
        return self.c.command("FCALL", "wsgate_retire_epoch", "2", *keys(self.ch), self.ch, epoch, below)

    def test_retire_epoch_only_while_redis_holds_it(self):
        # What a node calls when it saw the epoch go back or reuse an offset.
        first = [self.publish("a%d" % i) for i in range(1, 6)]
        epoch = first[0][1]
        meta, stream = keys(self.ch)
        self.assertEqual(self.retire("other"), 0, "another epoch: nothing to retire")
        self.assertEqual(self.retire(epoch, 5), 0, "Redis is not below what the node had: a lagging copy")
        self.assertEqual(self.retire(epoch, 3), 0)
        self.assertEqual(self.c.command("EXISTS", meta, stream), 2)
        self.assertEqual(self.retire(epoch, 6), 1, "Redis went back below 6")
        self.assertEqual(self.c.command("EXISTS", meta, stream), 0)
        self.assertEqual(self.retire(epoch, 6), 0, "a second node finds it retired")
        second = self.publish("b")
        self.assertEqual(second[0], 1)
        self.assertNotEqual(second[1], epoch)
        self.assertEqual(self.retire(second[1]), 1, "without below: an offset handed out twice")
        self.assertEqual(self.history(0)[:3], [b"", 0, 1])
        for bad in (("", ""), ("e", "-1"), ("e", "x")):
            r = self.c.command("FCALL", "wsgate_retire_epoch", "2", *keys(self.ch), self.ch, *bad,
                               raise_errors=False)
            self.assertIsInstance(r, RedisError, repr(bad))

    def test_plain_publish_is_unchanged(self):
        sub = self.subscriber()
        for payload in (b'{"text":"hi"}', b"plain text", "h\u00ffllo".encode(), b""):
            self.assertEqual(self.c.command("PUBLISH", self.ch, payload), 1)
            (raw,) = self.receive(sub, 1)
            self.assertEqual(raw, payload)
            self.assertIsNone(parse_envelope(raw))
        self.assertEqual(self.c.command("EXISTS", *keys(self.ch)), 0)

    def test_bad_arguments_are_refused(self):
        meta, stream = keys(self.ch)
        bad = [
            ("{other}:meta", stream, self.ch, "p", "", ""),
            (meta, stream, self.ch, "p", "0", ""),
            (meta, stream, self.ch, "p", "-1", ""),
            (meta, stream, self.ch, "p", "", "1.5"),
        ]
        for args in bad:
            r = self.c.command("FCALL", "wsgate_publish", "2", *args, raise_errors=False)
            self.assertIsInstance(r, RedisError, repr(args))
        self.assertEqual(self.c.command("EXISTS", meta, stream), 0)

    def test_latest_entries_and_byte_bounded_pages(self):
        for i in range(1, 21):
            self.publish("%d:" % i + "x" * 100)
        epoch, current, reachable, flat = self.history("", 5)
        self.assertEqual((current, reachable), (20, 1))
        self.assertEqual(flat[0::2], [16, 17, 18, 19, 20])
        # Pages stop before max_bytes, but always carry one entry.
        _, _, reachable, flat = self.history(0, 100, 350)
        self.assertEqual((reachable, flat[0::2]), (1, [1, 2, 3]))
        _, _, _, flat = self.history(3, 100, 1)
        self.assertEqual(flat[0::2], [4])
        self.assertEqual(self.history("", 5)[:3], [epoch, 20, 1])
        # The latest entries under a byte cap are the newest that fit.
        _, _, reachable, flat = self.history("", 100, 350)
        self.assertEqual((reachable, flat[0::2]), (1, [18, 19, 20]))

    def test_read_cost_follows_the_byte_budget(self):
        """Issue 15 finding 2: a read of 1000 x 64 KB entries with a 1 MiB budget copied all
        1000 into Lua (1.1 s of Redis); it must cost about its budget. Measured by Redis itself
        (INFO commandstats), so the client's speed does not count."""
        payload = "y" * 65536
        meta, stream = keys(self.ch)
        cmds = [("FCALL", "wsgate_publish", "2", meta, stream, self.ch, payload, "", "")
                for _ in range(1000)]
        for i in range(0, len(cmds), 100):
            self.c.pipeline(cmds[i:i + 100], timeout=T(30))
        self.c.command("CONFIG", "RESETSTAT")
        for since in ("", 0, 500):
            _, current, _, flat = self.history(since, 1000, 1048576)
            self.assertEqual(current, 1000)
            self.assertEqual(len(flat) // 2, 16)
        stats = self.c.command("INFO", "commandstats").decode()
        line = [l for l in stats.splitlines() if l.startswith("cmdstat_fcall_ro:")][0]
        per_call = float(line.split("usec_per_call=")[1].split(",")[0])
        print("wsgate_history 1000 x 64 KB, limit 1000, 1 MiB budget: %.0f us per call" % per_call)
        self.assertLess(per_call, 100000, line)


if __name__ == "__main__":
    unittest.main()
