"""Redis coming back with older data (issue 16, docs/RELIABILITY.md "Redis data loss"): two
nodes, two clients on each, a backend publishing {"n": i} through FCALL wsgate_publish in
three bursts of 100, and between the second and the third a Redis restart that loses, or
keeps, what came after some point. Clients never reconnect. Each case ends with every
client holding every n exactly once, in order, and either one epoch (nothing Redis lost
could be reused) or an explicit epoch change where the restarted Redis could have lost
writes; a client that recovers with the position it had before the restart is told
recovered:false whenever the history it would be replayed from may have gone back.

Before the fix, the restart from an older dump handed offsets 101-200 out again in the
same epoch and every client received none of the third burst, silently.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_chaos_epoch
"""

import glob
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos_lib import (GatewayTestCase, RedisServer, T, WSClient, fn_keys,  # noqa: E402
                       uniq, wait_until)
from wsgate_harness import RedisError, fcall_publish  # noqa: E402

BURST = 100


class PersistentRedis(RedisServer):
    """redis-server with persistence options added after the harness's defaults (later
    options win), in the same directory across restarts, so a restart loads what was
    saved there."""

    def __init__(self, extra):
        self.extra = list(extra)
        super().__init__()

    def _spawn(self):
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", self.dir, "--protected-mode", "no"] + self.extra
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)


class Client:
    """One subscribed client read synchronously: every message as (n, offset, epoch),
    every gap notice."""

    def __init__(self, c, label):
        self.c, self.label = c, label
        self.got, self.gaps = [], []

    def read_until(self, last_n, timeout):
        deadline = time.monotonic() + T(timeout)
        while (not self.got or self.got[-1][0] != last_n) and time.monotonic() < deadline:
            try:
                m = self.c.recv_message(timeout=0.2)
            except TimeoutError:
                continue
            finally:
                while self.c.inbox:
                    o = self.c.inbox.popleft()
                    if isinstance(o, dict) and o.get("type") == "gap":
                        self.gaps.append(o)
            d = m.get("data")
            self.got.append((d.get("n") if isinstance(d, dict) else None, m.get("offset"), m.get("epoch")))

    def ns(self):
        return [g[0] for g in self.got]

    def epochs(self):
        out = []
        for g in self.got:
            if not out or out[-1] != g[2]:
                out.append(g[2])
        return out


class EpochTest(GatewayTestCase):
    def setup_cluster(self, redis):
        gws = [self.start_gateway(redis.port, name="n%d" % i) for i in range(2)]
        ch = uniq("epoch")
        clients = []
        for g in gws:
            for k in range(2):
                c = WSClient(g.port, timeout=10)
                self.addCleanup(c.abort)
                ack = c.request({"type": "subscribe", "channel": ch, "recover": True}, timeout=10)
                self.assertEqual(ack.get("type"), "ack", ack)
                clients.append(Client(c, "%s/c%d" % (g.name, k)))
        return gws, ch, clients

    def burst(self, redis, ch, first, count=BURST):
        """Publishes n = first .. first+count-1, retrying a failed call with the same n
        (right after a restart the library may still be loading); returns the replies."""
        out = []
        deadline = time.monotonic() + T(20)
        with redis.client() as rc:
            n = first
            while n < first + count:
                try:
                    r = fcall_publish(rc, "gw:" + ch, json.dumps({"n": n}))
                    out.append((r[0], r[1].decode()))
                    n += 1
                except RedisError:
                    self.assertLess(time.monotonic(), deadline, "publish of n=%d kept failing" % n)
                    time.sleep(0.05)
        return out

    def deliver(self, clients, last_n, timeout=10):
        for cl in clients:
            cl.read_until(last_n, timeout)

    def rewinds(self, g):
        return g.metric("wsgate_history_rewinds_total", 0)

    def run_case(self, name, redis, before_second, restart, rewound, reused=False, retired=None):
        """Bursts 1-100 and 101-200 with before_second() between them, then restart(),
        then burst 201-300. rewound: Redis came back below offset 200, and each node's
        catch-up read must see it (counted) before the third burst. reused: Redis hands
        offsets out again (a library without the epoch rule and without a working
        retire). retired: the nodes' retire must run once (default: when rewound).
        Returns the clients, the replies of each burst, the offset Redis kept, the
        recovery ack, the nodes."""
        if retired is None:
            retired = rewound and not reused
        gws, ch, clients = self.setup_cluster(redis)
        r1 = self.burst(redis, ch, 1)
        self.deliver(clients, BURST)
        before_second()
        r2 = self.burst(redis, ch, BURST + 1)
        self.deliver(clients, 2 * BURST)
        before = {"offset": r2[-1][0], "epoch": r2[-1][1]}
        restart()
        for g in gws:
            g.wait_ready(T(15))
        if rewound:
            # The first node to read the channel back sees the rewind; once it has
            # retired the epoch, the other may find no epoch at all instead.
            wait_until(lambda: sum(self.rewinds(g) for g in gws) >= 1, T(10), what="a node saw the rewind")
            logs = "".join(g.log_text() for g in gws)
            found = set(re.findall(r'msg="history rewind" channel=%s epoch=\S+ redis_offset=(\d+)'
                                   % re.escape(ch), logs))
            self.assertEqual(len(found), 1, "the offset Redis came back with, as the nodes read it")
            kept = int(found.pop())
            if retired:
                wait_until(lambda: 'msg="epoch retire" result=retired' in "".join(g.log_text() for g in gws),
                           T(10), what="the epoch retired")
                results = re.findall(r'msg="epoch retire" result=(\w+)', "".join(g.log_text() for g in gws))
                self.assertEqual(results.count("retired"), 1, "retired once: %r" % results)
        else:
            meta = [v.decode() for v in redis.command("HGETALL", fn_keys("gw:" + ch)[0])]
            kept = int(meta[meta.index("offset") + 1]) if "offset" in meta else 0
        r3 = self.burst(redis, ch, 2 * BURST + 1)
        self.deliver(clients, 3 * BURST)
        # A client that disconnected just before the restart and comes back now.
        late = self.client(gws[0].port, timeout=10)
        ack = late.request({"type": "subscribe", "channel": ch, "since": before}, timeout=10)
        late.close()
        lost = [3 * BURST - len(set(cl.ns()) & set(range(1, 3 * BURST + 1))) for cl in clients]
        sys.stderr.write("\n[chaos] %s: Redis kept offset %d of %d; epochs %r; messages lost per "
                         "client %r; gap notices %r; recovery from %r after it: recovered=%r\n"
                         % (name, kept, 2 * BURST, [r1[0][1], r2[0][1], r3[0][1]], lost,
                            [len(cl.gaps) for cl in clients], before, ack.get("recovered")))
        for cl in clients:
            self.assertEqual(cl.ns(), list(range(1, 3 * BURST + 1)),
                             "%s: every n once, in order (lost %d)" % (cl.label, lost[clients.index(cl)]))
            if reused:
                continue
            self.assertEqual(cl.gaps, [], "%s: nothing was lost for this client" % cl.label)
            for (n, off, ep) in cl.got:
                reply = (r1 + r2 + r3)[n - 1]
                self.assertEqual((off, ep), (reply[0], reply[1]),
                                 "%s: n=%d at the position its publisher was given" % (cl.label, n))
        if not reused:
            positions = [(r[0], r[1]) for r in r1 + r2 + r3]
            self.assertEqual(len(set(positions)), len(positions), "no position handed out twice")
        rewinds = [self.rewinds(g) for g in gws]
        self.assertTrue(1 <= sum(rewinds) and max(rewinds) <= 1 if rewound else rewinds == [0, 0],
                        "rewinds seen per node: %r" % rewinds)
        for g in gws:
            self.assertEqual(g.metric("wsgate_history_conflicts_total", 0), BURST if reused else 0,
                             "%s: conflicts" % g.name)
        return clients, (r1, r2, r3), kept, ack, gws

    def assert_new_epoch(self, clients, replies, ack):
        r1, r2, r3 = replies
        self.assertEqual(r1[0][1], r2[-1][1], "one epoch before the restart")
        self.assertNotEqual(r3[0][1], r2[-1][1], "the restart starts a new epoch")
        self.assertEqual([r[0] for r in r3], list(range(1, BURST + 1)), "the new epoch counts from 1")
        for cl in clients:
            self.assertEqual(cl.epochs(), [r1[0][1], r3[0][1]], cl.label)
        self.assertIs(ack.get("recovered"), False, "a position from before the restart cannot be "
                      "vouched for: %r" % ack)

    def test_restart_from_older_dump(self):
        # The reproduction: SAVE after 100, 100 more, SIGKILL, restart on the dump.
        redis = self.start_redis()

        def restart():
            redis.kill()
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "restart from an older RDB dump", redis, lambda: redis.command("SAVE"), restart, True)
        self.assertEqual(kept, BURST, "the dump holds the first burst only")
        self.assert_new_epoch(clients, replies, ack)

    def test_aof_everysec_loses_last_second(self):
        # appendfsync everysec: a write reaches the file (page cache) before its reply, so a
        # SIGKILL alone usually loses nothing; what a power loss or an OS crash loses is what was
        # not yet fsynced, up to the last second. The test cuts the AOF back to its size
        # before the second burst to stand for exactly that, after a SIGKILL right after it.
        redis = self.add_redis(PersistentRedis(["--appendonly", "yes", "--appendfsync", "everysec"]))
        mark = {}

        def incr_file():
            files = sorted(glob.glob(os.path.join(redis.dir, "appendonlydir", "*.incr.aof")))
            self.assertEqual(len(files), 1, files)
            return files[0]

        def before_second():
            redis.command("SAVE")  # unrelated to the AOF; keeps the dump out of the picture
            os.remove(os.path.join(redis.dir, "dump.rdb"))
            mark["path"] = incr_file()
            mark["size"] = os.path.getsize(mark["path"])

        def restart():
            redis.kill()
            self.assertGreater(os.path.getsize(mark["path"]), mark["size"], "the burst reached the AOF")
            with open(mark["path"], "r+b") as f:
                f.truncate(mark["size"])
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "AOF everysec, unsynced second lost", redis, before_second, restart, True)
        self.assertEqual(kept, BURST, "the AOF holds the first burst only")
        self.assert_new_epoch(clients, replies, ack)

    def test_restart_without_persistence(self):
        # Today's case, unchanged: the history is gone, the next publish starts a new epoch.
        redis = self.start_redis()

        def restart():
            redis.kill()
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "restart without persistence", redis, lambda: None, restart, False)
        self.assertEqual(kept, 0)
        self.assert_new_epoch(clients, replies, ack)

    def test_clean_shutdown_save(self):
        # SHUTDOWN SAVE keeps everything. The restarted Redis cannot tell its dump from an
        # older one, so the epoch changes here too (docs/RELIABILITY.md: the cost).
        redis = self.start_redis()

        def restart():
            try:
                redis.command("SHUTDOWN", "SAVE")
            except (RedisError, OSError, ConnectionError):
                pass  # the connection closes as Redis exits
            redis.proc.wait(T(10))
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "clean SHUTDOWN SAVE restart", redis, lambda: None, restart, False)
        self.assertEqual(kept, 2 * BURST, "nothing was lost")
        self.assert_new_epoch(clients, replies, ack)

    def library_without_the_rule(self, retire=True):
        """The library as it was before the epoch rule (publish ignores the lineage), with
        a version number above the nodes' so they keep it; without retire, its
        wsgate_retire_epoch does nothing."""
        lib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "redis",
                           "wsgate.lua")
        with open(lib) as f:
            src = f.read()
        rule = "if not epoch or written_under ~= lineage then"
        self.assertIn(rule, src)
        src = src.replace(rule, "if not epoch then").replace("\nlocal VERSION = ", "\nlocal VERSION = 9")
        if not retire:
            body = "    redis.call('DEL', meta, stream)\n    return 1\n"
            self.assertIn(body, src)
            src = src.replace(body, "    return 0\n")
        return src

    def test_without_the_rule_the_nodes_retire_the_epoch_that_went_back(self):
        # The older-dump case against a library that reuses offsets: each node's catch-up
        # read finds Redis below what it delivered (a rewind) and asks Redis to retire the
        # epoch; one retire runs, the third burst starts a new epoch.
        redis = self.start_redis()
        redis.command("FUNCTION", "LOAD", self.library_without_the_rule())

        def restart():
            redis.kill()
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "no epoch rule: nodes retire the epoch", redis, lambda: redis.command("SAVE"), restart, True)
        self.assertEqual(kept, BURST)
        self.assert_new_epoch(clients, replies, ack)

    def test_offsets_reused_are_surfaced_by_the_nodes(self):
        # Without the rule and without a working retire, the restart from the older dump
        # hands 101-200 out again in the same epoch. The nodes saw Redis go back, so every
        # message at a reused offset is a conflict: passed on without a position, after a
        # gap notice for its offset, and counted. Nothing is dropped.
        redis = self.start_redis()
        redis.command("FUNCTION", "LOAD", self.library_without_the_rule(retire=False))

        def restart():
            redis.kill()
            redis.restart()
        clients, replies, kept, ack, gws = self.run_case(
            "offsets reused (no epoch rule, no retire)", redis, lambda: redis.command("SAVE"), restart, True,
            reused=True)
        r1, r2, r3 = replies
        self.assertEqual([r[:2] for r in r3], [r[:2] for r in r2], "the library reused 101-200")
        for cl in clients:
            third = cl.got[2 * BURST:]
            self.assertEqual([(o, e) for _, o, e in third], [(None, None)] * BURST,
                             "%s: the reused ones come without a position" % cl.label)
            self.assertEqual([(g["epoch"], g["from"], g["to"]) for g in cl.gaps],
                             [(r2[0][1], o, o) for o in range(BURST + 1, 2 * BURST + 1)],
                             "%s: a gap notice for each reused offset" % cl.label)
        for g in gws:
            self.assertEqual(g.log_text().count("history conflict"), 1, "%s: logged once" % g.name)

    def add_redis(self, r):
        self.addCleanup(r.cleanup)
        return r


if __name__ == "__main__":
    unittest.main()
