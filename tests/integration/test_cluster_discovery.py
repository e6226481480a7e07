"""Redis Cluster discovery (gateway/shards.[ch], issue 19) against a real 6-node cluster,
through tests/integration/shards_probe.c: the first map comes from a seed list whose first
address is dead; it equals the cluster's own CLUSTER SLOTS; fifty refresh requests in a row
cost exactly two queries (one at once, one after it for the requests made during it); a
migrated slot shows in the next map as exactly one moved slot; after the SIGKILL of the
master that was the only live seed, the periodic refresh alone (asking the masters it
knows) finds the promoted replica, with exactly that master's slots moved; it exits clean.

Run alone: GW_SHARDS_PROBE=build-test/tests/integration/shards_probe \\
    python3 -m unittest -v test_cluster_discovery
"""

import os
import queue
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import T, free_port  # noqa: E402
from wsgate_cluster import RedisCluster  # noqa: E402


class Probe:
    """shards_probe as a child process; its stdout lines arrive on a queue."""

    def __init__(self, refresh_ms, min_gap_ms, seeds):
        path = os.environ.get("GW_SHARDS_PROBE")
        if not path:
            raise unittest.SkipTest("GW_SHARDS_PROBE is not set")
        self.proc = subprocess.Popen([path, str(refresh_ms), str(min_gap_ms)] + seeds,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _pump(f, put):
        for line in f:
            put(line.rstrip("\n"))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def line(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line from shards_probe in %.1fs; stderr tail:\n%s"
                                 % (timeout, "\n".join(self.err[-30:]))) from None

    def next_map(self, timeout):
        """The next on_map: {"covered", "masters", "moved", "owners": [(lo, hi, port)]}."""
        deadline = time.monotonic() + timeout
        while True:
            w = self.line(max(0.1, deadline - time.monotonic())).split()
            if w[0] == "map":
                m = {"covered": int(w[3]), "masters": int(w[5]), "moved": int(w[7]),
                     "owners": []}
                while True:
                    w = self.line(T(5)).split()
                    if w[0] == "end":
                        return m
                    lo, hi = map(int, w[1].split("-"))
                    m["owners"].append((lo, hi, int(w[2].rsplit(":", 1)[1])))

    def stats(self):
        self.send("stats")
        while True:
            w = self.line(T(5)).split()
            if w[0] == "stats":
                return {"queries": int(w[1]), "failures": int(w[2]), "changes": int(w[3]),
                        "state": w[4], "same": int(w[5])}

    def quit(self):
        self.send("quit")
        deadline = time.monotonic() + T(10)
        while self.line(max(0.1, deadline - time.monotonic())) != "bye":
            pass
        return self.proc.wait(timeout=T(10))

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class ClusterDiscoveryTest(unittest.TestCase):
    def setUp(self):
        self.cluster = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
        self.addCleanup(self.cluster.stop)

    def view(self):
        return sorted((lo, hi, int(a.rsplit(":", 1)[1]))
                      for lo, hi, a in self.cluster._slot_view(self.cluster.masters()[0]))

    def test_discovery_refresh_and_changes(self):
        c = self.cluster
        seed = c.masters()[0]
        dead = "127.0.0.1:%d" % free_port()  # nothing listens there
        probe = Probe(1000, 200, [dead, seed.addr])
        self.addCleanup(probe.cleanup)

        m = probe.next_map(T(10))
        self.assertEqual((m["covered"], m["masters"], m["moved"]), (16384, 3, 16384))
        self.assertEqual(sorted(m["owners"]), self.view())
        st = probe.stats()
        self.assertEqual((st["failures"], st["changes"]), (0, 1))

        # Fifty requests in a row: one query at once, one more after it (the requests made
        # during it), and no map change: each answer reported as the same map (on_same,
        # which tells the cluster link its refresh was answered).
        time.sleep(0.3)  # past the spacing; the periodic timer (1 s) stays out of the way
        before = probe.stats()
        probe.send("refresh 50")
        time.sleep(0.45)
        after = probe.stats()
        self.assertEqual(after["queries"] - before["queries"], 2, (before, after))
        self.assertEqual(after["changes"], before["changes"])
        self.assertEqual(after["same"] - before["same"], 2, (before, after))

        # Hurried (a slot waits for a live master): one query every 250 ms, none in between,
        # however the periodic timer (1 s) stands; back to normal, the 1 s period again.
        time.sleep(0.3)
        before = probe.stats()
        probe.send("hurry 1")
        time.sleep(1.1)  # queries at about 0, 0.25, 0.5, 0.75 and 1.0 s
        after = probe.stats()
        self.assertIn(after["queries"] - before["queries"], range(4, 7), (before, after))
        probe.send("hurry 0")
        time.sleep(0.05)
        before = probe.stats()
        time.sleep(0.7)  # within 1 s of the last query: nothing
        after = probe.stats()
        self.assertEqual(after["queries"] - before["queries"], 0, (before, after))
        self.assertEqual(after["failures"], 0)

        # A migrated slot: the next map (asked for) moves exactly it.
        slot = 4242
        src = c.master_of_slot(slot)
        dst = next(x for x in c.masters() if x is not src)
        c.migrate_slot(slot, dst)
        probe.send("refresh 1")
        m = probe.next_map(T(10))
        self.assertEqual(m["moved"], 1)
        self.assertEqual(sorted(m["owners"]), self.view())
        self.assertIn((slot, slot, dst.port), m["owners"])

        # The seed master is SIGKILLed: the periodic refresh alone, asking the masters the
        # map lists, finds its promoted replica.
        lost = sum(hi - lo + 1 for lo, hi, port in m["owners"] if port == seed.port)
        promoted = c.kill_master(seed)
        deadline = time.monotonic() + T(15)
        while True:
            m = probe.next_map(max(0.1, deadline - time.monotonic()))
            if any(port == promoted.port for _, _, port in m["owners"]):
                break
        self.assertEqual(m["moved"], lost)
        self.assertEqual(sorted(m["owners"]), self.view())
        self.assertNotIn(seed.port, {port for _, _, port in m["owners"]})
        self.assertEqual(probe.stats()["failures"], 0)
        self.assertEqual(probe.quit(), 0)

    def test_no_reachable_seed_reports_and_retries(self):
        probe = Probe(300, 50, ["127.0.0.1:%d" % free_port()])
        self.addCleanup(probe.cleanup)
        self.assertTrue(probe.line(T(10)).startswith("error 127.0.0.1:"))
        self.assertTrue(probe.line(T(10)).startswith("error "))  # retried on its own
        self.assertGreaterEqual(probe.stats()["failures"], 2)
        self.assertEqual(probe.quit(), 0)


if __name__ == "__main__":
    unittest.main()
