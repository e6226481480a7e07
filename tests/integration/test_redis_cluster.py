"""A real 6-node Redis Cluster (3 masters + 3 replicas, tests/integration/wsgate_cluster.py)
against the gateway's cluster code and the facts docs/DEPLOYMENT.md "Scaling Redis" states
(issue 19; the gateway's own cluster mode is not built yet):

- common/slot.[ch] gives CLUSTER KEYSLOT's answer for thousands of generated keys, hash-tag
  edge cases and binary keys included (run through tests/integration/cluster_probe.c);
- sharded pub/sub: SPUBLISH reaches an SSUBSCRIBE client on the channel's master, plain
  PUBLISH does not (on any node), and a non-owner answers MOVED, parsed as
  common/topo.[ch] parses it;
- the wsgate Function library loads on every master and FCALL wsgate_publish with the
  {C}:meta / {C}:stream keys works on each, and its (classic) PUBLISH reaches a classic
  subscriber on another node but not a sharded one;
- common/topo.[ch] builds the same map as the cluster's own CLUSTER SLOTS from its
  CLUSTER SHARDS and CLUSTER SLOTS replies, and its diff names exactly the slots that a
  hand migration, a CLUSTER FAILOVER and a master's SIGKILL moved.

Run alone: GW_CLUSTER_PROBE=build-test/tests/integration/cluster_probe \\
    python3 -m unittest -v test_redis_cluster
"""

import os
import random
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import RedisError, T, uniq  # noqa: E402
from wsgate_cluster import RedisCluster  # noqa: E402

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "redis",
                       "wsgate.lua")


def probe_bin():
    path = os.environ.get("GW_CLUSTER_PROBE")
    if not path:
        raise unittest.SkipTest("GW_CLUSTER_PROBE is not set")
    return path


def probe(mode, data):
    r = subprocess.run([probe_bin(), mode], input=data, capture_output=True, timeout=T(30))
    if r.returncode != 0:
        raise AssertionError("cluster_probe %s failed: %s" % (mode, r.stderr.decode()))
    return r.stdout.decode()


def resp(x):
    """A reply as RedisClient returned it, written back as RESP2 bytes."""
    if isinstance(x, int):
        return b":%d\r\n" % x
    if isinstance(x, str):
        return b"+%s\r\n" % x.encode()
    if isinstance(x, bytes):
        return b"$%d\r\n%s\r\n" % (len(x), x)
    if x is None:
        return b"$-1\r\n"
    if isinstance(x, list):
        return b"*%d\r\n" % len(x) + b"".join(resp(e) for e in x)
    raise TypeError(type(x))


def probe_maps(mode, replies):
    """[{"owners": [(first, last, id, port, health)], "covered": n, "moved": [(first, last)]}]"""
    out = []
    for line in probe(mode, b"".join(resp(r) for r in replies)).splitlines():
        w = line.split()
        if w[0] == "map":
            out.append({"owners": [], "moved": []})
        elif w[0] == "owner":
            lo, hi = map(int, w[1].split("-"))
            out[-1]["owners"].append((lo, hi, w[2], int(w[3].rsplit(":", 1)[1]), w[4]))
            out[-1].setdefault("epochs", {})[w[2]] = int(w[5])
        elif w[0] == "covered":
            out[-1]["covered"] = int(w[1])
        elif w[0] == "epoch":
            out[-1]["epoch"] = int(w[1])
        elif w[0] == "moved":
            out[-1]["moved"].append(tuple(map(int, w[1].split("-"))))
    return out


def fn_keys(ch):
    return "{%s}:meta" % ch, "{%s}:stream" % ch


def generated_keys(n_random=2500):
    """Hash-tag edge cases, then seeded random keys over an alphabet rich in braces, binary
    keys, and channel names with their history keys."""
    keys = [b"", b"{}", b"{{a}}", b"a{b}c{d}", b"{}{a}", b"{a}{}", b"}{a}", b"{", b"}", b"{{",
            b"}}", b"{{}}", b"a{}b", b"{a", b"a}", b"{a}}", b"{{a}", b"x{y{z}w}", b"{}}",
            b"foo{}{bar}", b"foo{{bar}}zap", b"foo{bar}{zap}", b"\x00{a}", b"{\x00}",
            b"{\xff\xfe}", "{caf\u00e9}".encode(), b"{gw:room:1}:meta", b"gw:room:1"]
    rnd = random.Random(19)
    alphabet = b"ab{}{}:\x00\xff z"
    for _ in range(n_random):
        keys.append(bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))))
    for _ in range(300):
        keys.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64))))
    for i in range(300):
        ch = "gw:room:%d" % i
        keys += [ch.encode()] + [k.encode() for k in fn_keys(ch)]
    return keys


class RedisClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        probe_bin()
        t0 = time.monotonic()
        cls.cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
        cls.addClassCleanup(cls.check_all_stopped)  # runs after stop (LIFO)
        cls.addClassCleanup(cls.cluster.stop)
        sys.stderr.write("cluster of 6 up in %.1fs\n" % (time.monotonic() - t0))
        with open(LIBRARY, "rb") as f:
            cls.library = f.read()
        cls.version = int(re.search(rb"^local VERSION = (\d+)$", cls.library, re.M).group(1))

    @classmethod
    def check_all_stopped(cls):
        """The helper stopped every process it started (6), each by its PID."""
        procs = [n.proc for n in cls.cluster.nodes]
        if len(procs) != 6 or any(p is None or p.poll() is None for p in procs):
            raise AssertionError("cluster processes left running: %r"
                                 % [p.pid for p in procs if p and p.poll() is None])
        for p in procs:
            try:
                os.kill(p.pid, 0)
                raise AssertionError("pid %d still exists" % p.pid)
            except ProcessLookupError:
                pass

    def other_master(self, node):
        return next(m for m in self.cluster.masters() if m is not node)

    def test_a_keyslot_matches_gw_slot(self):
        keys = generated_keys()
        node = self.cluster.masters()[0]
        with node.client(timeout=T(10)) as c:
            want = c.pipeline([("CLUSTER", "KEYSLOT", k) for k in keys], timeout=T(30))
        got = [int(x) for x in probe("slots", b"".join(k.hex().encode() + b"\n"
                                                         for k in keys)).split()]
        self.assertEqual(len(got), len(keys))
        bad = [(k, w, g) for k, w, g in zip(keys, want, got) if w != g]
        self.assertEqual(bad[:10], [], "%d of %d keys differ" % (len(bad), len(keys)))
        self.assertGreater(len(keys), 3000)
        # The generated keys do exercise the tag rule: many hash only a part of themselves.
        self.assertGreater(sum(1 for k in keys if re.search(rb"\{[^}]+\}", k)), 500)

    def test_a_channel_and_history_keys_share_a_slot(self):
        """gw_slot_channel_colocated against CLUSTER KEYSLOT of C, {C}:meta and {C}:stream,
        and what a split costs: a script's SPUBLISH to C is refused on its keys' master."""
        rnd = random.Random(1919)
        names = [b"gw:room:1", b"a{b}c", b"}x", b"gw:{x}", b"a}{a}", b"a{b", b""]
        names += [bytes(rnd.choice(b"gw:{}a") for _ in range(rnd.randint(1, 10)))
                  for _ in range(1500)]
        node = self.cluster.masters()[0]
        with node.client(timeout=T(10)) as c:
            cmds = []
            for n in names:
                cmds += [("CLUSTER", "KEYSLOT", n), ("CLUSTER", "KEYSLOT", b"{" + n + b"}:meta"),
                         ("CLUSTER", "KEYSLOT", b"{" + n + b"}:stream")]
            slots = c.pipeline(cmds, timeout=T(30))
        want = [int(slots[3 * i] == slots[3 * i + 1] == slots[3 * i + 2]) for i in range(len(names))]
        got = [int(x) for x in probe("colocated", b"".join(n.hex().encode() + b"\n"
                                                            for n in names)).split()]
        self.assertEqual([(n, w, g) for n, w, g in zip(names, want, got) if w != g][:10], [])
        self.assertGreater(want.count(0), 100)
        self.assertGreater(want.count(1), 100)
        # Split over two masters: the script runs where its keys are, and its SPUBLISH to
        # the channel is refused there. (Split within one master, 7.0.15 lets it through,
        # until a resharding puts the two slots apart.)
        c = self.cluster
        ok = "gw:" + uniq("ok")
        self.assertEqual(c.master_of_key(ok).command(
            "EVAL", "return redis.call('SPUBLISH', ARGV[1], 'x')", 1, "{%s}:meta" % ok, ok), 0)
        split = next(ch for ch in ("gw:a{%d}c" % i for i in range(1000))
                     if c.master_of_key(ch) is not c.master_of_key("{%s}:meta" % ch))
        r = c.master_of_key("{%s}:meta" % split).command(
            "EVAL", "return redis.call('SPUBLISH', ARGV[1], 'x')", 1, "{%s}:meta" % split, split,
            raise_errors=False)
        self.assertIsInstance(r, RedisError)
        self.assertIn("non local key", str(r))

    def test_b_spublish_reaches_the_owner_and_plain_publish_does_not(self):
        ch = "gw:" + uniq("s")
        slot = self.cluster.keyslot(ch)
        owner = self.cluster.master_of_slot(slot)
        sub = owner.client(timeout=T(5))
        self.addCleanup(sub.close)
        self.assertEqual(sub.command("SSUBSCRIBE", ch), [b"ssubscribe", ch.encode(), 1])

        self.assertEqual(owner.command("SPUBLISH", ch, "one"), 1)
        self.assertEqual(sub.read_reply(timeout=T(5)), [b"smessage", ch.encode(), b"one"])
        # Plain PUBLISH, on the owner and on every other master: no receiver counted, and
        # nothing arrives on the sharded subscription.
        for m in self.cluster.masters():
            self.assertEqual(m.command("PUBLISH", ch, "classic"), 0)
        with self.assertRaises(TimeoutError):
            sub.read_reply(timeout=0.5)
        # The subscription is alive: the next thing it sees is the next SPUBLISH.
        self.assertEqual(owner.command("SPUBLISH", ch, "two"), 1)
        self.assertEqual(sub.read_reply(timeout=T(5)), [b"smessage", ch.encode(), b"two"])

        # Another master refuses both, with a MOVED that common/topo.c parses.
        other = self.other_master(owner)
        for cmd in ("SPUBLISH", "SSUBSCRIBE"):
            with other.client() as c:
                err = c.command(*((cmd, ch, "x") if cmd == "SPUBLISH" else (cmd, ch)),
                                raise_errors=False)
            self.assertIsInstance(err, RedisError)
            self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                             ["MOVED", str(slot), "127.0.0.1", str(owner.port), "kind=moved"])

    def load_library_everywhere(self):
        for m in self.cluster.masters():
            have = m.command("FCALL_RO", "wsgate_version", "0", raise_errors=False)
            if isinstance(have, RedisError):
                self.assertEqual(m.command("FUNCTION", "LOAD", self.library), b"wsgate")

    def fcall(self, ch, payload):
        return self.cluster.command_for_key(fn_keys(ch)[0], "FCALL", "wsgate_publish", "2",
                                            *fn_keys(ch), ch, payload, "", "")

    def test_c_function_library_on_every_master(self):
        self.load_library_everywhere()
        masters = self.cluster.masters()
        self.assertEqual(len(masters), 3)
        for m in masters:
            self.assertEqual(m.command("FCALL_RO", "wsgate_version", "0"), self.version)
        # Channels until every master owns three of them.
        per = {m.port: [] for m in masters}
        i = 0
        while min(len(v) for v in per.values()) < 3 and i < 1000:
            ch = "gw:fn:%s:%d" % (uniq("f"), i)
            per[self.cluster.master_of_key(ch).port].append(ch)
            i += 1
        for port, chans in per.items():
            for ch in chans[:3]:
                # The keys share the channel's slot, so one FCALL stays on one master.
                self.assertEqual(self.cluster.master_of_key(fn_keys(ch)[1]).port, port)
                r1, r2 = self.fcall(ch, '{"n":1}'), self.fcall(ch, '{"n":2}')
                self.assertEqual((r1[0], r2[0]), (1, 2))
                self.assertEqual(r1[1], r2[1])
                hist = self.cluster.command_for_key(ch, "FCALL_RO", "wsgate_history", "2",
                                                    *fn_keys(ch), ch, "0", "", "")
                self.assertEqual(hist[:3], [r1[1], 2, 1])
                self.assertEqual(hist[3], [1, b'{"n":1}', 2, b'{"n":2}'])
        # On a master that does not own the keys: MOVED, nothing written there.
        ch = per[masters[0].port][0]
        err = masters[1].command("FCALL", "wsgate_publish", "2", *fn_keys(ch), ch, "x", "", "",
                                 raise_errors=False)
        self.assertTrue(str(err).startswith("MOVED "), err)

        # Today's library PUBLISHes (classic pub/sub): broadcast over the cluster bus to a
        # classic subscriber on any node, never to a sharded subscriber.
        ch = per[masters[0].port][1]
        classic = masters[2].client(timeout=T(5))
        self.addCleanup(classic.close)
        classic.command("SUBSCRIBE", ch)
        sharded = masters[0].client(timeout=T(5))
        self.addCleanup(sharded.close)
        sharded.command("SSUBSCRIBE", ch)
        r = self.fcall(ch, '{"n":3}')
        want = b'\xffwsgate1 3 %s\n{"n":3}' % r[1]
        seen = []
        while want not in seen and len(seen) < 4:
            kind, name, env = classic.read_reply(timeout=T(5))
            self.assertEqual((kind, name), (b"message", ch.encode()))
            seen.append(env)
        sys.stderr.write("classic subscriber on another master saw: %r\n" % seen)
        self.assertIn(want, seen)
        with self.assertRaises(TimeoutError):
            sharded.read_reply(timeout=0.5)

    def shards(self, node=None):
        return (node or self.cluster.masters()[0]).command("CLUSTER", "SHARDS")

    def check_map_matches_cluster(self, m, health="online"):
        """m (a probe map) serves each slot from the node CLUSTER SLOTS names."""
        view = self.cluster._slot_view(self.cluster.masters()[0])
        self.assertEqual(m["covered"], 16384)
        want = sorted((lo, hi, int(a.rsplit(":", 1)[1])) for lo, hi, a in view)
        self.assertEqual(sorted((lo, hi, port) for lo, hi, _, port, _ in m["owners"]), want)
        for lo, hi, nid, port, h in m["owners"]:
            self.assertEqual(self.cluster.node_by_port(port).node_id(), nid)
            self.assertEqual(h, health)

    def nodes_map(self, shards_map, node=None):
        """gw_topo's map from CLUSTER NODES of node: the same owners as shards_map, all
        online; returns it (with its config epoch)."""
        n = probe_maps("nodes", [(node or self.cluster.masters()[0]).command("CLUSTER",
                                                                              "NODES")])[0]
        self.assertEqual(n["covered"], 16384)
        self.assertEqual([o[:4] for o in n["owners"]], [o[:4] for o in shards_map["owners"]])
        self.assertEqual({o[4] for o in n["owners"]}, {"online"})
        return n

    def test_d_roster_keys_need_one_slot(self):
        """The node roster (gateway/roster.c: SET wsgate:node:<id>, SADD wsgate:nodes,
        SMEMBERS, then one MGET of every wsgate:node:<id>) as it is today fails on a cluster:
        the entries hash to different slots, and MGET refuses them. A shared hash tag
        ({wsgate}:node:<id>, one master for the whole roster) makes the same MGET work."""
        c = self.cluster
        ids = ["n%d" % i for i in range(50)]
        plain = ["wsgate:node:%s" % i for i in ids]
        self.assertGreater(len({c.keyslot(k) for k in plain}), 1)
        for k in plain:
            c.command_for_key(k, "SET", k, "{}", "EX", "30")
        for m in c.masters():
            err = m.command("MGET", *plain, raise_errors=False)
            self.assertIsInstance(err, RedisError)
            self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                             ["none", "kind=crossslot"])
        tagged = ["{wsgate}:node:%s" % i for i in ids]
        self.assertEqual(len({c.keyslot(k) for k in tagged}), 1)
        for k in tagged:
            c.command_for_key(k, "SET", k, k, "EX", "30")
        got = c.command_for_key(tagged[0], "MGET", *tagged)
        self.assertEqual(got, [k.encode() for k in tagged])

    def test_y_slot_migration_in_progress(self):
        """What a channel's slot does while it moves (the cases cluster mode must handle):
        SPUBLISH stays with the source and its subscribers; FCALL gets TRYAGAIN while its
        two keys are split, then ASK; a publish sent to the importing node with ASKING
        reaches nobody, since the subscribers are still on the source; at the end the
        source sends them sunsubscribe."""
        c = self.cluster
        self.load_library_everywhere()
        ch = "gw:" + uniq("ask")
        slot = c.keyslot(ch)
        src = c.master_of_slot(slot)
        dst = self.other_master(src)
        self.assertEqual(self.fcall(ch, '{"n":1}')[0], 1)
        sub = src.client(timeout=T(5))
        self.addCleanup(sub.close)
        sub.command("SSUBSCRIBE", ch)

        def fcall_on(node, n, asking=False):
            with node.client() as cl:
                if asking:
                    self.assertEqual(cl.command("ASKING"), "OK")
                return cl.command("FCALL", "wsgate_publish", "2", *fn_keys(ch), ch,
                                  '{"n":%d}' % n, "", "", raise_errors=False)

        c.begin_migration(slot, src, dst)
        self.assertEqual(src.command("SPUBLISH", ch, "a"), 1)
        err = dst.command("SPUBLISH", ch, "x", raise_errors=False)  # importing: not yet
        self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                         ["MOVED", str(slot), "127.0.0.1", str(src.port), "kind=moved"])
        self.assertEqual(fcall_on(src, 2)[0], 2)
        self.assertEqual(c.move_keys(slot, src, dst, limit=1), 1)
        err = fcall_on(src, 3)  # one key here, one there
        self.assertTrue(str(err).startswith("TRYAGAIN"), err)
        self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                         ["none", "kind=tryagain"])
        self.assertEqual(c.move_keys(slot, src, dst), 1)
        err = fcall_on(src, 3)  # both keys gone from the source
        self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                         ["ASK", str(slot), "127.0.0.1", str(dst.port), "kind=ask"])
        self.assertEqual(src.command("SPUBLISH", ch, "b"), 1)  # still the source's
        r = fcall_on(dst, 3, asking=True)
        self.assertIsInstance(r, list)
        with dst.client() as cl:
            cl.command("ASKING")
            self.assertEqual(cl.command("SPUBLISH", ch, "lost"), 0)  # nobody there yet
        got = [sub.read_reply(timeout=T(5)) for _ in range(2)]
        self.assertEqual(got, [[b"smessage", ch.encode(), b"a"], [b"smessage", ch.encode(), b"b"]])
        c.finish_migration(slot, src, dst)
        self.assertEqual(sub.read_reply(timeout=T(5)), [b"sunsubscribe", ch.encode(), 0])

        # A slot no master serves: CLUSTERDOWN, told apart by gw_topo_error_kind; then the
        # slot is given back and the cluster is whole again.
        for m in c.masters():
            m.command("CLUSTER", "DELSLOTS", slot)
        err = dst.command("SPUBLISH", ch, "x", raise_errors=False)
        self.assertTrue(str(err).startswith("CLUSTERDOWN"), err)
        self.assertEqual(probe("redirect", str(err).encode() + b"\n").split(),
                         ["none", "kind=clusterdown"])
        dst.command("CLUSTER", "ADDSLOTS", slot)
        c.wait_ok(T(30))

    def test_z_topology_changes_seen_by_gw_topo(self):
        """Last (it changes the cluster): migration, CLUSTER FAILOVER, SIGKILL."""
        c = self.cluster
        self.load_library_everywhere()
        s1 = self.shards()
        m1 = probe_maps("shards", [s1])[0]
        self.check_map_matches_cluster(m1)
        e1 = self.nodes_map(m1)["epoch"]
        slots_reply = c.masters()[0].command("CLUSTER", "SLOTS")
        self.check_map_matches_cluster(probe_maps("slotsreply", [slots_reply])[0], "unknown")

        # 1. One slot holding a channel's history moved by hand.
        ch = "gw:" + uniq("mig")
        slot = c.keyslot(ch)
        src = c.master_of_slot(slot)
        dst = self.other_master(src)
        r = [self.fcall(ch, '{"n":%d}' % i) for i in (1, 2, 3)]
        self.assertEqual([x[0] for x in r], [1, 2, 3])
        ssub = src.client(timeout=T(5))
        self.addCleanup(ssub.close)
        ssub.command("SSUBSCRIBE", ch)
        self.assertEqual(c.migrate_slot(slot, dst), 2)  # {C}:meta and {C}:stream
        # The source tells its sharded subscribers the slot left: an unsolicited
        # sunsubscribe, the signal the cluster mode will resubscribe on.
        self.assertEqual(ssub.read_reply(timeout=T(5)), [b"sunsubscribe", ch.encode(), 0])
        self.assertIs(c.master_of_slot(slot), dst)
        s2 = self.shards()
        m = probe_maps("shards", [s1, s2])
        self.assertEqual(m[1]["moved"], [(slot, slot)])
        self.check_map_matches_cluster(m[1])
        n2 = self.nodes_map(m[1])
        e2 = n2["epoch"]
        # A migration gives the importing master the highest config epoch; the cluster's
        # highest grows only if it had not already (test_y moved a slot before).
        self.assertGreaterEqual(e2, e1)
        self.assertEqual(n2["epochs"][dst.node_id()], e2)
        self.assertEqual(list(n2["epochs"].values()).count(e2), 1)
        # The stream moved with the slot: the entries are readable on the new master.
        hist = c.command_for_key(ch, "FCALL_RO", "wsgate_history", "2", *fn_keys(ch), ch, "0",
                                 "", "")
        self.assertEqual(hist[3][0::2], [1, 2, 3])
        self.assertEqual(hist[1], 3)
        # What the epoch rule makes of a migration (docs/DEPLOYMENT.md "Scaling Redis"):
        # the meta's lineage is the source master's replication ID, the new master has
        # another, so the next publish starts a new epoch at offset 1.
        r4 = self.fcall(ch, '{"n":4}')
        self.assertEqual(r4[0], 1)
        self.assertNotEqual(r4[1], r[0][1])

        # 2. CLUSTER FAILOVER on one shard: exactly that master's slots move, to its replica.
        victim = next(m for m in c.masters() if m is not dst)
        replica = c.replicas_of(victim)[0]
        ranges = [(lo, hi) for lo, hi, _, port, _ in m[1]["owners"] if port == victim.port]
        fch = next(x for x in ("gw:fo:%s:%d" % (uniq("f"), i) for i in range(1000))
                   if c.master_of_key(x) is victim)
        before = [self.fcall(fch, '{"n":%d}' % i) for i in (1, 2)]
        self.assertEqual(victim.command("WAIT", 1, int(T(5) * 1000)), 1)  # replicated: none lost
        old_id = victim.info("replication")["master_replid"]
        vsub = victim.client(timeout=T(5))
        self.addCleanup(vsub.close)
        vsub.command("SSUBSCRIBE", fch)
        c.failover(replica)
        # The demoted master tells its sharded subscribers, as a migration's source does.
        self.assertEqual(vsub.read_reply(timeout=T(5)), [b"sunsubscribe", fch.encode(), 0])
        rep = replica.info("replication")
        # Redis keeps the shared history's ID as master_replid2, up to second_repl_offset:
        # what a lineage check could accept (not what wsgate.lua does today).
        self.assertNotEqual(rep["master_replid"], old_id)
        self.assertEqual(rep["master_replid2"], old_id)
        self.assertGreater(int(rep["second_repl_offset"]), 0)
        after = self.fcall(fch, '{"n":3}')
        hist = c.command_for_key(fch, "FCALL_RO", "wsgate_history", "2", *fn_keys(fch), fch, "0",
                                 "", "")
        # What the epoch rule makes of a lossless failover (docs/DEPLOYMENT.md "Scaling
        # Redis"): the promoted replica has a new master_replid, so the next publish starts
        # a new epoch at offset 1 and the old entries are gone, although none was lost.
        self.assertEqual(after[0], 1)
        self.assertNotEqual(after[1], before[0][1])
        self.assertEqual(hist[:3], [after[1], 1, 1])
        self.assertEqual(hist[3], [1, b'{"n":3}'])
        s3 = self.shards()
        m = probe_maps("shards", [s2, s3])
        self.assertEqual(m[1]["moved"], ranges)
        self.check_map_matches_cluster(m[1])
        e3 = self.nodes_map(m[1])["epoch"]
        self.assertGreater(e3, e2)
        self.assertEqual({port for lo, hi, _, port, _ in m[1]["owners"] if (lo, hi) in ranges},
                         {replica.port})

        # 3. SIGKILL of a master: its replica is promoted, exactly its slots move.
        victim = next(x for x in c.masters() if x is not replica)
        ranges = [(lo, hi) for lo, hi, _, port, _ in m[1]["owners"] if port == victim.port]
        victim_id = victim.node_id()
        # Another shard's channel, published while the victim's shard fails over.
        other = next(x for x in c.masters() if x is not victim)
        och = next(x for x in ("gw:alive:%s:%d" % (uniq("a"), i) for i in range(1000))
                   if c.master_of_key(x) is other)
        osub = other.client(timeout=T(5))
        self.addCleanup(osub.close)
        osub.command("SSUBSCRIBE", och)
        sent, failed = [], []

        def publish_elsewhere():  # runs inside wait_until, which retries on exceptions
            n = len(sent) + 1
            try:
                r = other.command("SPUBLISH", och, str(n), timeout=1, raise_errors=False)
            except (OSError, TimeoutError) as e:
                r = e
            if r == 1:
                sent.append(time.monotonic())
            else:
                failed.append(r)
        t0 = time.monotonic()
        promoted = c.kill_master(victim, during=publish_elsewhere)
        # The other shard never stopped: every poll published, and no gap between two
        # publishes was longer than a poll interval plus a slow machine's margin.
        self.assertEqual(failed, [])
        self.assertGreater(len(sent), 10)
        gaps = [b - a for a, b in zip(sent, sent[1:])]
        self.assertLess(max(gaps), 1.0, "longest pause %.2fs" % max(gaps))
        got = [osub.read_reply(timeout=T(5))[2] for _ in sent]
        self.assertEqual(got, [str(i).encode() for i in range(1, len(sent) + 1)])
        sys.stderr.write("SIGKILL -> replica serving, cluster ok: %.1fs (node timeout 1000 ms)\n"
                         % (time.monotonic() - t0))
        s4 = self.shards(promoted)
        m = probe_maps("shards", [s3, s4])
        self.assertEqual(m[1]["moved"], ranges)
        self.assertEqual({port for lo, hi, _, port, _ in m[1]["owners"] if (lo, hi) in ranges},
                         {promoted.port})
        # The dead master is still listed by SHARDS, failed, serving nothing.
        self.assertIn(victim_id.encode(), repr(s4).encode())
        self.check_map_matches_cluster(m[1])
        # CLUSTER NODES agrees, and each failover's election raised the highest config
        # epoch: a view with a lower one is stale.
        e4 = self.nodes_map(m[1], promoted)["epoch"]
        self.assertGreater(e4, e3)


if __name__ == "__main__":
    unittest.main()
