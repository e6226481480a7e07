"""What the Redis Cluster chaos cases share (issue 19, docs/RELIABILITY.md "Redis Cluster"):
a real 6-node cluster (3 masters + 3 replicas, cluster-node-timeout 1 s), channels spread
over every shard, two wsgate nodes in cluster mode, two clients per node subscribed to every
channel over real WebSocket (with `"recover": true`), and one backend publisher per channel
(FCALL wsgate_publish ... shard, cluster-aware: wsgate_cluster.ClusterPublisher). A fault runs
mid-way; then each case checks, per client and channel:

- the ledger: every n the backend had acked arrived, or Redis itself lost its offset (the
  shard's replica never had it) and the client was told (a gap notice for it, or the epoch
  change that follows it); nothing else is missing; the sums add up;
- no (epoch, offset) twice and offsets rising within an epoch; an n twice only where the
  backend's call may have run twice (a retry after a lost reply);
- the pause: each message's latency (arrival minus the send of the publish that was acked)
  against that client's usual latency on that channel (the median before the fault); the
  channels of the shards the fault is not about must never be more than PAUSE_BOUND over it.
  A stall of the test process itself (50 ms or more in which a probe thread could not run:
  the shared machine's other work) is taken out of the latencies it spans, and reported.

The figures go to stderr as `[chaos-cluster]` lines (ctest -V shows them). Every thread and
wait is bounded in count and time.
"""

import os
import signal
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos_lib import (DEFAULT_LINK_ARGS, NO_RATE_LIMIT, ConnectionClosed,  # noqa: E402,F401
                       ConnectionLost, GatewayTestCase, ProtocolError, T, WSClient, uniq, wait_until)
from wsgate_cluster import ClusterPublisher, RedisCluster, RedisError, read_meta  # noqa: E402,F401

PREFIX = "gw:"
# "No message on the other shards later than 100 ms over its usual latency" (issue 19).
PAUSE_BOUND = 0.100
# Filler written past the replication socket's kernel buffers in the failover trap: the
# replica's receive buffer may grow to tcp_rmem's 32 MB here, the master's send buffer to
# tcp_wmem's 4 MB.
FILLER_MB = 48


def say(line):
    sys.stderr.write("[chaos-cluster] %s\n" % line)
    sys.stderr.flush()


class MultiReader(threading.Thread):
    """One WebSocket client subscribed to several channels with `"recover": true`, reading
    on its own thread until stopped or dropped. Keeps every message as (arrival time,
    channel, n, offset, epoch) and every gap notice."""

    def __init__(self, client, channels, label):
        super().__init__(daemon=True)
        self.c, self.channels, self.label = client, list(channels), label
        self.got, self.gaps, self.acks = [], [], {}
        self.dropped = None
        self.stop = threading.Event()

    def subscribe(self):
        for ch in self.channels:
            ack = self.c.request({"type": "subscribe", "channel": ch, "recover": True}, timeout=10)
            if ack.get("type") != "ack":
                raise AssertionError("%s: subscribe %s answered %r" % (self.label, ch, ack))
            self.acks[ch] = ack
        return self

    def _drain_inbox(self):
        while self.c.inbox:
            o = self.c.inbox.popleft()
            if isinstance(o, dict) and o.get("type") == "gap":
                self.gaps.append(o)

    def run(self):
        deadline = time.monotonic() + T(180)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                m = self.c.recv_message(timeout=0.2)
            except TimeoutError:
                self._drain_inbox()
                continue
            except (ConnectionClosed, ConnectionLost, ProtocolError, OSError, ValueError) as e:
                self.dropped = "%s (close code %r)" % (type(e).__name__, self.c.close_code)
                break
            t = time.monotonic()
            self._drain_inbox()
            d = m.get("data")
            n = d.get("n") if isinstance(d, dict) else None
            self.got.append((t, m.get("channel"), n, m.get("offset"), m.get("epoch")))

    def of(self, ch):
        return [g for g in self.got if g[1] == ch]

    def has_all(self, ch, count):
        ns = {g[2] for g in self.got if g[1] == ch}
        return len(ns) >= count


class StallProbe(threading.Thread):
    """Watches the test process itself: a thread asking for 2 ms sleeps keeps every interval
    of at least STALL in which it could not run (the CPU taken by other work on a shared
    machine, or the GIL held that long). A latency measured across such an interval was
    stretched by the measuring process, not by a node; excess() takes it out (and
    assert_other_shards_steady reports the raw figure too)."""

    STALL = 0.050

    def __init__(self):
        super().__init__(daemon=True)
        self.stalls = []
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + T(180)
        while not self.stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            time.sleep(0.002)
            d = time.monotonic() - t
            if d >= self.STALL:
                self.stalls.append((t + 0.002, t + d))

    def within(self, a, b):
        """Seconds of [a, b] the test process was stalled."""
        return sum(max(0.0, min(b, y) - max(a, x)) for x, y in self.stalls)


class ChaosPublisher(ClusterPublisher):
    """wsgate_cluster.ClusterPublisher (acked: (send time, n, offset, epoch)) reaching each
    master at its own host (the partition case runs them in a namespace), and telling which
    n may have been published twice: those retried after a failure that was not an error
    reply (a lost connection may have lost only the answer)."""

    def _conn(self, port):
        if port not in self._conns:
            self._conns[port] = self.cluster.node_by_port(port).client(timeout=5)
        return self._conns[port]

    def maybe_twice(self):
        return {e[1] for e in self.errors if not e[2].startswith("RedisError(")}


class ClusterChaosCase(GatewayTestCase):
    """One fault against a fresh cluster per test (a fault leaves it changed)."""

    PER_SHARD = 2  # channels per master
    RATE = 40  # messages per second per channel
    WARMUP = 2.0  # seconds of traffic before the fault: the usual latency
    node_class = None  # wsgate_cluster.ClusterNode unless a case runs them elsewhere

    def setUp(self):
        self.cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000,
                                    node_class=self.node_class)
        self.addCleanup(self.cluster.stop)
        self.shard_of = {}  # channel -> port of its master when the test began
        masters = self.cluster.masters()
        base, i = uniq("cc"), 0
        per = {m.port: [] for m in masters}
        while any(len(v) < self.PER_SHARD for v in per.values()) and i < 1000:
            ch = "%s-%d" % (base, i)
            owner = self.cluster.master_of_key(PREFIX + ch)
            if len(per[owner.port]) < self.PER_SHARD:
                per[owner.port].append(ch)
                self.shard_of[ch] = owner.port
            i += 1
        self.channels = sorted(self.shard_of)
        self.seeds = "redis+cluster://" + ",".join(m.addr for m in masters)

    def node_args(self):
        # The node's own link defaults (chaos_lib.DEFAULT_LINK_ARGS), not the harness's
        # faster ones: the figures are what an operator gets.
        return NO_RATE_LIMIT + DEFAULT_LINK_ARGS + ["--redis-url", self.seeds]

    def channels_of(self, port):
        return [ch for ch in self.channels if self.shard_of[ch] == port]

    def start_nodes(self, names=("a", "b")):
        return [self.start_gateway(None, extra_args=self.node_args(), name=n) for n in names]

    def start_readers(self, gws, per_node=2):
        readers = []
        for g in gws:
            for k in range(per_node):
                c = WSClient(g.port, host=getattr(g, "host", "127.0.0.1"), timeout=10)
                self.addCleanup(c.abort)
                readers.append(MultiReader(c, self.channels, "%s/c%d" % (g.name, k)).subscribe())
        for r in readers:
            r.start()
            self.addCleanup(r.stop.set)
        return readers

    def start_publishers(self, count):
        pubs = {}
        for ch in self.channels:
            p = ChaosPublisher(self.cluster, PREFIX + ch, count, self.RATE, limit=90)
            pubs[ch] = p
            self.addCleanup(p.stop.set)
        for p in pubs.values():
            p.start()
        return pubs

    def run_case(self, fault, seconds=8.0, gws=None):
        """Traffic for WARMUP + `seconds` at RATE on every channel, fault() after the warm-up;
        returns (gws, readers, pubs, t0, t1, result of fault())."""
        gws = gws or self.start_nodes()
        readers = self.start_readers(gws)
        count = int(self.RATE * (self.WARMUP + seconds))
        self.probe = StallProbe()
        self.probe.start()
        self.addCleanup(self.probe.stop.set)
        pubs = self.start_publishers(count)
        time.sleep(self.WARMUP)
        t0 = time.monotonic()
        out = fault()
        t1 = time.monotonic()
        self.finish(pubs, readers, count)
        self.probe.stop.set()
        return gws, readers, pubs, t0, t1, out

    def finish(self, pubs, readers, count, timeout=30):
        for p in pubs.values():
            p.join(T(90))
        for ch, p in pubs.items():
            self.assertFalse(p.is_alive(), "%s: the publisher must end within its bound" % ch)
            self.assertEqual(len({a[1] for a in p.acked}), count, "%s: every n acked" % ch)
        self.count = count
        # Until every client has every n, or (where Redis lost some) nothing more has come
        # for 2 s: the repair of a node is done well within that once the publishers are.
        deadline = time.monotonic() + T(timeout)
        while time.monotonic() < deadline and any(
                r.dropped is None and not all(r.has_all(ch, count) for ch in self.channels)
                for r in readers):
            last = max((r.got[-1][0] for r in readers if r.got), default=0.0)
            if time.monotonic() - last > 2.0:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # duplicates after the last one would show here
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(5)
        for r in readers:
            self.assertIsNone(r.dropped, "%s was dropped" % r.label)

    def spring_trap(self, victim, replica, vch, seen, unseen=None, seen_again=None):
        """The failover trap on victim's shard (test_chaos_cluster_trap.py): replica
        SIGSTOPped, FILLER_MB of filler on victim so that what it acks next stays in its own
        output buffer, unseen() (when given: e.g. cut the nodes off victim), 0.6 s of
        publishes, victim SIGKILLed, replica SIGCONTed; what the replica kept is read into
        seen["kept"] ({channel: (offset, epoch)}), seen_again() runs (when given; always, once
        unseen() ran), and the replica is forced over with CLUSTER FAILOVER TAKEOVER. seen gets
        t_kill and t_promoted."""
        fkey = next(k for k in ("filler%d" % i for i in range(2000))
                    if self.cluster.master_of_key(k) is victim)
        blob = b"x" * (8 * 1024 * 1024)
        cut = False
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            try:
                with victim.client(timeout=T(30)) as c:
                    for _ in range(FILLER_MB // 8):
                        c.command("SET", fkey, blob)
                if unseen is not None:
                    cut = True
                    unseen()
                time.sleep(0.6)
                seen["t_kill"] = time.monotonic()
                victim.kill()
            finally:
                os.kill(replica.proc.pid, signal.SIGCONT)
            wait_until(lambda: replica.info("replication").get("master_link_status") == "down", T(10),
                       what="the replica to see its master gone")
            seen["kept"] = {ch: read_meta(replica, PREFIX + ch) for ch in vch}
        finally:
            if cut and seen_again is not None:
                seen_again()
        try:
            self.cluster.failover(replica, mode="TAKEOVER")
        except RedisError:
            if replica.role() != "master":  # else it was promoted on its own meanwhile
                raise
            self.cluster.wait_ok(T(30))
        seen["t_promoted"] = time.monotonic()

    # ---- figures

    @staticmethod
    def latencies(reader, pub, ch):
        """[(send time, latency)] of ch's messages at reader, matched by n to the acked
        publish (a message that came twice counts once, its first arrival)."""
        sent = {a[1]: a[0] for a in pub.acked}
        seen, out = set(), []
        for t, _, n, _, _ in reader.of(ch):
            if n in sent and n not in seen:
                seen.add(n)
                out.append((sent[n], max(0.0, t - sent[n])))
        return out

    def excess(self, readers, pubs, channels, t0, t_end=None, adjust=True):
        """The worst (latency - usual latency) over channels and readers, for messages sent
        from t0 (to t_end): (seconds, label, channel), and the usual latencies seen (the
        send time of the worst goes to self.worst_sent). With
        adjust, each latency less the time the test process itself was stalled within it
        (StallProbe)."""
        probe = getattr(self, "probe", None) if adjust else None
        worst, usual = (0.0, None, None), []
        self.worst_sent = None
        for r in readers:
            for ch in channels:
                lat = self.latencies(r, pubs[ch], ch)
                before = [x for s, x in lat if s < t0]
                if not before:
                    continue
                med = statistics.median(before)
                usual.append(med)
                for s, x in lat:
                    if s < t0 or (t_end is not None and s > t_end):
                        continue
                    if probe is not None:
                        x -= probe.within(s, s + x)
                    if x - med > worst[0]:
                        worst = (x - med, r.label, ch)
                        self.worst_sent = s
        return worst, usual

    def resume_time(self, readers, pubs, channels, t0):
        """Seconds from t0 until every reader had, on every channel given, a message whose
        acked publish was sent after t0 (None when one never did)."""
        worst = 0.0
        for r in readers:
            for ch in channels:
                after = {a[1] for a in pubs[ch].acked if a[0] >= t0}
                ts = [t for t, _, n, _, _ in r.of(ch) if n in after]
                if not ts:
                    return None
                worst = max(worst, min(ts) - t0)
        return worst

    def assert_other_shards_steady(self, readers, pubs, channels, t0, what):
        (ex, label, ch), usual = self.excess(readers, pubs, channels, t0)
        at = self.worst_sent - t0 if self.worst_sent is not None else 0.0
        (raw, _, _), _ = self.excess(readers, pubs, channels, t0, adjust=False)
        stalls = [round((y - x) * 1000) for x, y in self.probe.stalls if y >= t0]
        say("%s: other shards' worst latency over usual %.1f ms (%s %s, sent %+.2f s from the fault's "
            "start; %.1f ms before taking out the test process's own stalls, %s ms since the fault); "
            "usual %.1f-%.1f ms" % (what, ex * 1000, label, ch, at, raw * 1000, stalls,
                                    min(usual, default=0) * 1000, max(usual, default=0) * 1000))
        self.assertLessEqual(ex, PAUSE_BOUND, "%s: %s on %s got a message %.0f ms later than its usual "
                             "latency (bound %.0f ms): a shard the fault is not about paused"
                             % (what, label, ch, ex * 1000, PAUSE_BOUND * 1000))
        return ex

    # ---- the ledger

    def ledger(self, readers, pubs, lost_by_redis=None, blind=None):
        """Checks every client's account of every channel; returns the summed counts
        {delivered, gap, epoch, redis_lost, duplicates}. lost_by_redis: {channel: {n:
        (epoch, offset)}} acked by a master and missing on the replica promoted after it.
        blind: {channel: {n}} published at a position Redis had handed out before (only a
        library without the epoch rule does that): missing, they are counted as "blind"
        (the node-side check's documented blind spot) instead of failing."""
        lost_by_redis, blind = lost_by_redis or {}, blind or {}
        total = {"delivered": 0, "gap": 0, "epoch": 0, "duplicates": 0, "blind": 0,
                 "redis_lost": sum(len(v) for v in lost_by_redis.values())}
        for r in readers:
            for ch in self.channels:
                pub, mine = pubs[ch], r.of(ch)
                acked = {}
                for _, n, off, ep in pub.acked:
                    acked.setdefault(n, (ep, off))
                ns = [g[2] for g in mine]
                twice = [n for n in set(ns) if ns.count(n) > 1]
                self.assertEqual(sorted(set(twice) - pub.maybe_twice()), [],
                                 "%s %s: delivered twice though published once" % (r.label, ch))
                total["duplicates"] += len(ns) - len(set(ns))
                pos = [(g[4], g[3]) for g in mine if g[3] is not None]
                self.assertEqual(len(pos), len(set(pos)), "%s %s: an (epoch, offset) twice" % (r.label, ch))
                for (e1, o1), (e2, o2) in zip(pos, pos[1:]):
                    self.assertTrue(e1 != e2 or o2 > o1, "%s %s: offsets go back in epoch %s: %d then %d"
                                    % (r.label, ch, e1, o1, o2))
                gaps = [(g.get("epoch"), g.get("from"), g.get("to")) for g in r.gaps if g.get("channel") == ch]
                epochs_seen = [g[4] for g in mine]
                got = set(ns)
                for n, (ep, off) in sorted(acked.items()):
                    if n in got:
                        total["delivered"] += 1
                        continue
                    if n in blind.get(ch, ()):
                        total["blind"] += 1
                        continue
                    self.assertIn(n, lost_by_redis.get(ch, {}),
                                  "%s %s: n=%d (epoch %s offset %d) missing, and Redis did not lose it "
                                  "(missing: %s; gap notices: %s)"
                                  % (r.label, ch, n, ep, off, self._missing(acked, got), gaps))
                    if any(ge == ep and gf <= off <= gt for ge, gf, gt in gaps):
                        total["gap"] += 1
                        continue
                    later = [e for e in epochs_seen[self._first_after(mine, ep, off):] if e != ep]
                    self.assertTrue(later, "%s %s: n=%d (epoch %s offset %d) lost by Redis with neither a "
                                    "gap notice nor an epoch change after it" % (r.label, ch, n, ep, off))
                    total["epoch"] += 1
        self.assertEqual(total["delivered"] + total["gap"] + total["epoch"] + total["blind"],
                         len(readers) * sum(len({a[1] for a in p.acked}) for p in pubs.values()))
        return total

    @staticmethod
    def _missing(acked, got):
        return ", ".join("n=%d@%s/%d" % (n, ep, off) for n, (ep, off) in sorted(acked.items()) if n not in got)

    @staticmethod
    def _first_after(mine, ep, off):
        """Index of the first message past (ep, off) in arrival order: after the last one
        of epoch ep below off (0 when none)."""
        idx = 0
        for i, g in enumerate(mine):
            if g[4] == ep and g[3] is not None and g[3] < off:
                idx = i + 1
        return idx

    def report(self, name, readers, pubs, t0, t1, counts, extra=""):
        errors = sum(len(p.errors) for p in pubs.values())
        say("%s: %d channels over 3 shards at %d msg/s each, %d clients on 2 nodes; fault %.2f s; "
            "%d messages acked; per-client sums %s; publish retries %d%s"
            % (name, len(self.channels), self.RATE, len(readers), t1 - t0,
               sum(len({a[1] for a in p.acked}) for p in pubs.values()), counts, errors,
               "; " + extra if extra else ""))

    @staticmethod
    def redis_lost(pubs, channels, kept, t_kill):
        """{channel: {n: (epoch, offset)}}: the publishes the old master acked (sent before
        t_kill: one sent after it cannot have been acked by the dead master) beyond what the
        replica promoted after it kept (kept: {channel: (offset, epoch)} read from that
        replica after the kill, before its promotion). Keyed by n, not by
        position: a promoted replica that reuses the positions gives them to new messages,
        which must not pass for lost."""
        out = {}
        for ch in channels:
            k_off, k_ep = kept[ch]
            out[ch] = {n: (ep, off) for sent, n, off, ep in pubs[ch].acked
                       if sent < t_kill and (ep != k_ep or off > k_off)}
        return out
