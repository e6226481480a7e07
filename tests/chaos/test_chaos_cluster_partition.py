"""A network partition between one wsgate node and one Redis Cluster master (issue 19 §6,
docs/RELIABILITY.md "Redis Cluster"). The six cluster nodes run in one network namespace
("redis", each on its own port), the two wsgate nodes in two others (gw1, gw2), all on a
bridge (chaos_lib.NetTopology); this process joins the bridge through a veth, so the
clients and the backend publishers reach every host. iptables DROP in gw1's namespace
black-holes gw1 <-> one master's port both ways for 5 s (no RST: gw1 finds out from the
missing heartbeat echo) under the steady traffic of chaos_cluster.py. Then:

- only that shard's channels on gw1 stop: gw1's other channels and every channel on gw2
  never get a message more than 100 ms over its usual latency, and /readyz of both stays 200;
- gw1's channels of that shard are repaired after the heal: every client ends with every
  message, in order, none twice.

A second case cuts both nodes off one master while it acks writes its replica will never
have (the failover trap of test_chaos_cluster_trap.py): messages Redis itself lost and no
node saw. Each client must miss exactly those, each covered by the epoch change after it.

Needs root, ip and iptables (skipped, saying which is missing, without them); every
namespace and veth made is removed, even on failure.

Run alone: WSGATE_BIN=build-test/gateway/wsgate /usr/bin/python3 -m unittest -v \\
    test_chaos_cluster_partition
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos_cluster import ClusterChaosCase, T, say, wait_until  # noqa: E402
from chaos_lib import Gateway, NetTopology, NsGateway, ReadyzWatch, netns_available  # noqa: E402
from wsgate_cluster import ClusterNode  # noqa: E402

PARTITION_S = 5.0


class NsClusterGateway(NsGateway):
    """A node in host's namespace, in cluster mode (--redis-url from extra_args)."""

    def __init__(self, topo, host, extra_args):
        self.topo, self.host_name, self.host = topo, host, topo.ip[host]
        Gateway.__init__(self, None, extra_args=extra_args, start=False, name=host, wrapper="")
        self.wrapper = topo.wrap(host)
        self.scale = 1.0

    def command_line(self):
        cmd = Gateway.command_line(self)
        cmd[cmd.index("--listen") + 1] = "%s:%d" % (self.host, self.port)
        return cmd


class ClusterPartitionTest(ClusterChaosCase):
    def setUp(self):
        why = netns_available()
        if why:
            self.skipTest(why)
        try:
            self.topo = NetTopology().setup()
        except RuntimeError as e:
            # Root without CAP_NET_ADMIN (a container's root) cannot make namespaces.
            if "Operation not permitted" in str(e):
                self.skipTest("cannot create network namespaces here: %s" % e)
            raise
        self.addCleanup(self.check_torn_down)
        self.addCleanup(self.topo.teardown)
        self.node_class = type("NsClusterNode", (ClusterNode,), {
            "host": self.topo.ip["redis"], "wrapper": tuple(self.topo.wrap("redis"))})
        super().setUp()

    def check_torn_down(self):
        self.assertEqual(self.topo.leftovers(), [], "namespaces or links left behind")

    def start_nodes(self, names=("gw1", "gw2")):
        gws = []
        for host in names:
            g = NsClusterGateway(self.topo, host, self.node_args())
            self.addCleanup(g.cleanup)
            self.addCleanup(self._save_log, g)
            self.addCleanup(g.check_clean_exit)
            self._gateways.append(g)
            g.start()
            g.wait_ready()
            gws.append(g)
        return gws

    def cut(self, port, hosts=("gw1",), add=True):
        """DROP host <-> the redis host's `port`, both ways, inside each host's namespace."""
        for host in hosts:
            for chain, addr, pflag in (("OUTPUT", "-d", "--dport"), ("INPUT", "-s", "--sport")):
                self.topo.nx(self.topo.ns[host], "iptables", "-A" if add else "-D", chain, addr,
                             self.topo.ip["redis"], "-p", "tcp", pflag, str(port), "-j", "DROP", check=add)

    def test_partition_of_one_node_from_one_master(self):
        victim = self.cluster.masters()[0]
        vch = self.channels_of(victim.port)
        others = [ch for ch in self.channels if ch not in vch]
        gws = self.start_nodes()
        watches = []
        for g in gws:
            w = ReadyzWatch(g)
            w.start()
            self.addCleanup(w.stop.set)
            watches.append(w)
        seen = {}

        def fault():
            self.cut(victim.port)
            t_cut = time.monotonic()
            try:
                # gw1 notices by its heartbeat (timeout 3 s): that master alone is down.
                def victim_down():
                    m = gws[0].metrics()
                    for i in range(int(m.get("wsgate_redis_masters", 0))):
                        if int(m['wsgate_redis_master_port{master="%d"}' % i]) == victim.port:
                            return int(m['wsgate_redis_master_up{master="%d"}' % i]) == 0
                    return False
                seen["down"] = wait_until(victim_down, T(PARTITION_S + 2), interval=0.1,
                                          what="gw1 to see the cut master down")
                seen["t_down"] = time.monotonic()
                time.sleep(max(0.0, t_cut + PARTITION_S - time.monotonic()))
            finally:
                self.cut(victim.port, add=False)
            seen["t_heal"] = time.monotonic()
        gws, readers, pubs, t0, t1, _ = self.run_case(fault, seconds=PARTITION_S + 5.0, gws=gws)
        counts = self.ledger(readers, pubs)
        gw1_readers = [r for r in readers if r.label.startswith("gw1/")]
        gw2_readers = [r for r in readers if r.label.startswith("gw2/")]
        # Repaired: the last message of the cut shard's channels sent before the heal
        # reached gw1's clients this long after the heal.
        repaired = 0.0
        for r in gw1_readers:
            for ch in vch:
                before = {a[1] for a in pubs[ch].acked if a[0] < seen["t_heal"]}
                repaired = max(repaired, max(t for t, _, n, _, _ in r.of(ch) if n in before) - seen["t_heal"])
        (cut_ex, _, _), _ = self.excess(gw1_readers, pubs, vch, t0)
        (gw2_ex, _, _), _ = self.excess(gw2_readers, pubs, self.channels, t0)
        self.report("partition gw1 <-> master %d, %.0f s (iptables DROP both ways)" % (victim.port, PARTITION_S),
                    readers, pubs, t0, t1, counts,
                    "gw1 saw that master down %.2f s after the cut; its channels on gw1 repaired %.2f s "
                    "after the heal (worst latency over usual %.2f s); gw2 worst over usual %.0f ms; "
                    "/readyz gw1 %s, gw2 %s" % (seen["t_down"] - t0, repaired, cut_ex, gw2_ex * 1000,
                                                watches[0].describe(t0), watches[1].describe(t0)))
        self.assertEqual((counts["gap"], counts["epoch"], counts["duplicates"]), (0, 0, 0),
                         "a partition loses nothing and duplicates nothing")
        self.assertGreater(cut_ex, 1.0, "the cut shard's channels on gw1 did stop")
        self.assertLess(repaired, T(10), "the cut shard's channels on gw1 repaired %.1f s after the heal"
                        % repaired)
        # Readiness says whether the node can serve: one shard cut off does not take it out.
        for g, w in zip(gws, watches):
            self.assertEqual(w.statuses_between(t0, t1 + 1.0), {200}, "/readyz of %s: %s"
                             % (g.name, w.describe(t0)))
        self.assert_other_shards_steady(gw2_readers, pubs, self.channels, t0, "partition: gw2, every channel")
        self.assert_other_shards_steady(gw1_readers, pubs, others, t0, "partition: gw1, other shards")

    def test_writes_no_node_saw_and_redis_lost(self):
        # The failover trap (test_chaos_cluster_trap.py) with both nodes cut off the
        # master for the 0.6 s it acks what its replica will never have: those messages
        # reach no node either. Every client must end with every other message, and miss
        # only those: each covered by the epoch change after it (the promoted replica's
        # new epoch), exactly the offsets Redis lost.
        victim = self.cluster.masters()[1]
        replica = self.cluster.replicas_of(victim)[0]
        vch = self.channels_of(victim.port)
        hosts = ("gw1", "gw2")
        seen = {}

        # The cut stays until the namespaces go: the dead master's orphaned sockets keep
        # retransmitting what it sent, and a heal right after the kill handed it all to the
        # nodes once (every client then had every write Redis lost). Its port is dead
        # anyway; the nodes notice by the heartbeat (3 s) and move to the promoted replica.
        def fault():
            self.spring_trap(victim, replica, vch, seen, unseen=lambda: self.cut(victim.port, hosts))
        gws, readers, pubs, t0, t1, _ = self.run_case(fault, seconds=6.0)
        lost = self.redis_lost(pubs, vch, seen["kept"], seen["t_kill"])
        counts = self.ledger(readers, pubs, lost)
        missed = {r.label: sum(1 for ch in vch for n in lost[ch] if n not in {g[2] for g in r.of(ch)})
                  for r in readers}
        self.report("acked writes no node saw, lost by Redis (nodes cut off the master, replica "
                    "stopped, master killed, TAKEOVER)", readers, pubs, t0, t1, counts,
                    "acked and never replicated %s; missed per client %s (each covered by the epoch "
                    "change after it)" % ({ch: len(v) for ch, v in lost.items()}, missed))
        self.assertEqual(counts["duplicates"], 0)
        for label, m in missed.items():
            self.assertGreater(m, 0, "%s received every write Redis lost: the cut came too late" % label)


if __name__ == "__main__":
    say("running against %s" % os.environ.get("WSGATE_BIN", "?"))
    unittest.main()
