"""Redis Sentinel failover under steady traffic (issue 17; docs/RELIABILITY.md "Sentinel
failover"): a group of 1 master + 1 replica + 3 Sentinels started here, two nodes on
redis+sentinel://, two clients on each, and a backend publishing {"n": i} through FCALL
wsgate_publish at 200 msg/s to whichever master the Sentinels name (it follows a switch
within 20 ms, as a Sentinel-aware client does).

What Redis itself discarded is measured, not guessed: a witness follows the channel's stream
on the replica from the start (XREAD BLOCK), so it sees exactly the publishes replication
brought there; an n the old master acknowledged that the witness never saw was lost with
the old master. Every
client must end with every acknowledged n, except n that Redis discarded, and for each of
those it must have been told: an epoch change (the promoted replica has another
master_replid, so the next publish starts a new epoch) or a gap notice. Delivered plus
covered adds up to what was published, and no (epoch, offset) is ever given twice.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_chaos_sentinel
"""

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos_lib import ChaosCase, Publisher, T, WSClient, report, uniq, wait_until  # noqa: E402
from wsgate_harness import RedisClient, RedisError, fn_keys  # noqa: E402
from wsgate_sentinel import FollowingBackend, MasterWatch, SentinelGroup  # noqa: E402

DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS = 1000, 3000
CLIENT_RATE = 50


class Witness(threading.Thread):
    """Follows the channel's stream on one Redis server (XREAD BLOCK: a replica serves it
    as replication writes the entries) and keeps every n it sees: on the replica, exactly
    the publishes that reached it before its promotion."""

    def __init__(self, server, channel):
        super().__init__(daemon=True)
        self.rc = RedisClient(server.port, timeout=5)
        self.key = fn_keys("gw:" + channel)[1]
        self.seen = set()
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + T(120)
        last = "0-0"
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                r = self.rc.command("XREAD", "COUNT", "1000", "BLOCK", "100", "STREAMS", self.key, last)
            except (TimeoutError, OSError, RedisError):
                continue
            for _key, entries in r or []:
                for eid, fields in entries:
                    last = eid.decode()
                    f = dict(zip(fields[::2], fields[1::2]))
                    self.seen.add(json.loads(f[b"payload"])["n"])
        self.rc.close()


class ClientPublisher(threading.Thread):
    """A WebSocket client publishing {"n": i} through one node at `rate` per second, i from
    1 on, retrying the same i after `unavailable`; bounded by stop and 60 s. acked holds
    (time, n, offset, epoch), errors the refusals."""

    def __init__(self, node, channel, rate):
        super().__init__(daemon=True)
        self.c = WSClient(node.port, timeout=10)
        self.channel, self.rate = channel, rate
        self.acked, self.errors, self.failure = [], [], None
        self.stop = threading.Event()

    def run(self):
        i, start = 1, time.monotonic()
        deadline = start + T(60)
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                due = start + (i - 1) / self.rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                r = self.c.publish(self.channel, {"n": i}, timeout=10)
                if r.get("type") == "ack":
                    self.acked.append((time.monotonic(), i, r.get("offset"), r.get("epoch")))
                    i += 1
                elif r.get("code") == "unavailable":
                    self.errors.append((time.monotonic(), i))
                    time.sleep(0.02)
                else:
                    self.failure = "publish answered %r" % r
                    return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.failure = repr(e)
        finally:
            self.c.abort()


class SentinelFailoverTest(ChaosCase):
    def setUp(self):
        self.group = SentinelGroup(down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=FAILOVER_TIMEOUT_MS)
        self.addCleanup(self.group.cleanup)

    def run_case(self, name, fault, total):
        group = self.group
        gws = [self.start_gateway(None, self.node_args() + ["--redis-url", group.url()], name="n%d" % i)
               for i in range(2)]
        ch = uniq("sentinel")
        witness = Witness(group.replica, ch)
        witness.start()
        self.addCleanup(witness.stop.set)
        readers = self.start_readers(gws, ch)
        # Clients publish too, through n1, read on n0: the node's own publishes must follow
        # the same rule (fenced once the switch is seen, covered when Redis discarded them).
        cch = uniq("sentinel-client")
        cwitness = Witness(group.replica, cch)
        cwitness.start()
        self.addCleanup(cwitness.stop.set)
        creaders = self.start_readers(gws[:1], cch, per_node=1)
        cpub = ClientPublisher(gws[1], cch, CLIENT_RATE)
        cpub.start()
        self.addCleanup(cpub.stop.set)
        watches = self.watch(gws)
        mw = MasterWatch(group)
        mw.start()
        self.addCleanup(mw.stop.set)
        pub = Publisher(FollowingBackend(mw), ch, total, self.RATE)
        pub.start()
        wait_until(lambda: pub.published() >= self.RATE, T(10), what="one second of traffic")
        t0 = time.monotonic()
        t_switch, during = fault(group, gws, mw)
        self.finish(pub, readers, total, timeout=30)
        cpub.stop.set()
        cpub.join(T(15))
        last_c = cpub.acked[-1][1] if cpub.acked else 0
        deadline = time.monotonic() + T(10)
        while time.monotonic() < deadline and any(r.last_n() < last_c and r.dropped is None for r in creaders):
            time.sleep(0.05)
        time.sleep(0.3)
        for r in creaders:
            r.stop.set()
            r.join(5)
        for w in (witness, cwitness):
            w.stop.set()
            w.join(5)
        mw.stop.set()

        lines, discarded = self.account(pub.acked, witness, readers)
        cl_lines, cl_discarded = self.account(cpub.acked, cwitness, creaders)
        report(name, readers, total, t0, t_switch, watches,
               "%s; Redis discarded %d acked publishes; publisher retried %d times; switches seen %r\n[chaos]   %s"
               "\n[chaos]   client publishes through n1: %d acked, %d answered unavailable (fenced or down), "
               "%d discarded by Redis\n[chaos]   %s"
               % (during, len(discarded), len(pub.errors), [s[1:] for s in mw.switches], "\n[chaos]   ".join(lines),
                  len(cpub.acked), len(cpub.errors), len(cl_discarded), "\n[chaos]   ".join(cl_lines)),
               pub=pub)
        self.assertFalse(cpub.failure, cpub.failure)
        self.assertGreater(len(cpub.acked), 100, "the client publisher got through before and after")
        self.assert_not_dropped(readers)
        switches = sum(g.metric("wsgate_redis_master_switches_total", 0) for g in gws)
        self.assertGreaterEqual(switches, 2, "both nodes counted the master switch")
        return gws, readers, pub, t0, t_switch, watches

    def account(self, acked_list, witness, readers):
        """Checks every reader against what was acknowledged and what Redis discarded;
        returns a report line per reader and the discarded set."""
        acked = {a[1]: (a[3], a[2]) for a in acked_list}
        pairs = [(a[3], a[2]) for a in acked_list]
        self.assertEqual(len(set(pairs)), len(pairs), "an (epoch, offset) was given to two messages")
        # The epoch of the old master's acks; the promoted replica's start later.
        first_epoch = acked_list[0][3] if acked_list else None
        discarded = {n for n, pos in acked.items() if pos[0] == first_epoch and n not in witness.seen}
        lines = []
        for r in readers:
            got = {g[1] for g in r.got}
            missing = set(acked) - got
            gap_cov = {n for n in missing if any(
                g.get("epoch") == acked[n][0] and g.get("from", 0) <= acked[n][1] <= g.get("to", 0) for g in r.gaps)}
            epochs_in_order = []
            for g in r.got:
                if g[3] is not None and (not epochs_in_order or epochs_in_order[-1] != g[3]):
                    epochs_in_order.append(g[3])
            epoch_cov = set()
            for n in missing - gap_cov:
                e = acked[n][0]
                later_epochs = epochs_in_order[epochs_in_order.index(e) + 1:] if e in epochs_in_order else []
                # An epoch change told the client that what the old epoch had after its
                # last message may be gone; it covers exactly what Redis discarded.
                if n in discarded and (later_epochs or e not in epochs_in_order):
                    epoch_cov.add(n)
            delivered = len(got & set(acked))
            silent = missing - gap_cov - epoch_cov
            lines.append("%s delivered %d, covered by epoch change %d, by gap notice %d, silently lost %d"
                         % (r.label, delivered, len(epoch_cov), len(gap_cov), len(silent)))
            self.assertEqual(silent, set(), "%s: acknowledged n lost without notice (first %r); Redis discarded %d"
                             % (r.label, sorted(silent)[:10], len(discarded)))
            self.assertEqual(delivered + len(epoch_cov) + len(gap_cov), len(acked), r.label)
            per_epoch = {}
            for g in r.got:
                per_epoch.setdefault(g[3], []).append(g[2])
            for e, offs in per_epoch.items():
                self.assertEqual(offs, sorted(set(offs)), "%s: epoch %s offsets in order, each once" % (r.label, e))
        return lines, discarded

    def test_sentinel_failover_graceful(self):
        def fault(group, gws, mw):
            old = mw.port
            with group.sentinels[0].client() as c:
                self.assertEqual(c.command("SENTINEL", "FAILOVER", group.name), "OK")
            wait_until(lambda: mw.port != old, T(20), what="the Sentinels naming the new master")
            return mw.switches[-1][0], "SENTINEL FAILOVER %d -> %d" % (old, mw.port)
        gws, readers, pub, t0, t_switch, watches = self.run_case("Sentinel FAILOVER (graceful)", fault, total=1200)
        self.assert_resume(readers, t_switch, pub, bound=2.0)

    def test_sentinel_master_sigkill_then_restart(self):
        state = {}

        def fault(group, gws, mw):
            old = mw.port
            victim = group.servers[old]
            victim.kill()
            t_kill = time.monotonic()
            wait_until(lambda: mw.port != old, T(30), what="the replica promoted")
            state.update(t_kill=t_kill, old=old, victim=victim)
            t_switch = mw.switches[-1][0]
            time.sleep(0.5)
            # The old master comes back, empty and calling itself a master until the
            # Sentinels turn it into a replica: the nodes must not go back to it.
            state["log_marks"] = [len(g.log_text()) for g in gws]
            victim.restart()
            state["t_restart"] = time.monotonic()
            return t_switch, "master SIGKILL, switch seen %.2fs later" % (t_switch - t_kill)
        gws, readers, pub, t0, t_switch, watches = self.run_case(
            "Sentinel: master SIGKILL, promoted replica, old master back", fault, total=2400)
        bound = (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000.0 + 2.0
        self.assert_resume(readers, state["t_kill"], pub, bound=bound)
        self.assertLess(state["t_restart"] + 2.0, pub.acked[-1][0], "traffic went on after the old master returned")
        for g, mark in zip(gws, state["log_marks"]):
            after = g.log_text()[mark:]
            self.assertNotIn("master=127.0.0.1:%d" % state["old"], after,
                             "%s went back to the old master after it returned" % g.name)
        for label, w in watches:
            wait_until(lambda: w.status_at_end() == 200, T(5), what="/readyz of %s back to 200" % label)


if __name__ == "__main__":
    unittest.main()
