"""The admin view (issue 7): every node registers itself in Redis with a short TTL and
refreshes it; /admin/api/cluster (behind an --api-key-file key) lists every live node with
what its /metrics says, the busiest channels and its Redis mode; a killed node drops out
within the TTL. In Redis Cluster mode (issue 19 item 4) each node's entry lists the shards'
masters with their slots and that node's link to each (state, heartbeat round trip,
reconnects), checked against the cluster's own CLUSTER SLOTS and, after a master's
SIGKILL, against the link each node lost. The page at /admin itself is static (tested in a
browser by the JS suite).

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_admin
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_api import KEY1, key_file, post  # noqa: E402
from wsgate_harness import GatewayTestCase, T, uniq, wait_until  # noqa: E402
from wsgate_cluster import RedisCluster  # noqa: E402

TTL = 5  # GW_ROSTER_TTL_S


def cluster(gw, key=KEY1):
    status, _, body = post(gw.port, None, key=key, method="GET", path="/admin/api/cluster")
    return status, body


class AdminTest(GatewayTestCase):
    def test_three_nodes_listed_then_a_killed_one_drops_out(self):
        keys = key_file(self, KEY1 + "\n")
        redis = self.start_redis()
        gws = [self.start_gateway(redis.port, ["--api-key-file", keys, "--node-id", "adm%d" % i],
                                  name="adm%d" % i) for i in range(3)]
        ch = uniq("busy")
        clients = []
        for i, g in enumerate(gws):  # 1, 2 and 3 clients on the nodes
            for _ in range(i + 1):
                c = self.client(g.port)
                self.assertEqual(c.subscribe(ch).get("type"), "ack")
                clients.append(c)
        lonely, lonely_ch = self.client(gws[0].port), uniq("quiet")
        self.assertEqual(lonely.subscribe(lonely_ch).get("type"), "ack")

        self.assertEqual(cluster(gws[0], key=None)[0], 401)
        self.assertEqual(cluster(gws[0], key="wrong-key-0123456789")[0], 401)
        page = post(gws[0].port, None, key=None, method="GET", path="/admin")
        self.assertEqual(page[0], 200)
        self.assertIn(b"/admin/api/cluster", page[2] if isinstance(page[2], bytes) else
                      json.dumps(page[2]).encode())

        def listed(g):
            status, body = cluster(g)
            return {n["id"]: n for n in body["nodes"]} if status == 200 else {}

        # Every node's view converges on all three, each entry agreeing with that
        # node's own /metrics (top channels are refreshed every 2 s).
        def agrees():
            for g in gws:
                nodes = listed(g)
                if sorted(nodes) != ["adm0", "adm1", "adm2"]:
                    return False
                for i, o in enumerate(gws):
                    n, m = nodes["adm%d" % i], o.metrics()
                    top = {t["channel"]: t["subscribers"] for t in n["top_channels"]}
                    if (n["connections"], n["channels"], n["ready"]) != \
                            (m["wsgate_connections"], m["wsgate_channels"], True) or top.get(ch) != i + 1:
                        return False
            return True
        wait_until(agrees, T(10), what="every node lists all three, matching /metrics")
        n0 = listed(gws[0])["adm0"]
        self.assertEqual(n0["address"], "127.0.0.1:%d" % gws[0].port)
        self.assertEqual(sorted((t["channel"], t["subscribers"]) for t in n0["top_channels"]),
                         sorted([(ch, 1), (lonely_ch, 1)]))
        self.assertIn("version", n0)
        self.assertEqual(n0["redis"], {"mode": "single"})

        gws[2].kill()
        t0 = time.monotonic()
        wait_until(lambda: sorted(listed(gws[0])) == ["adm0", "adm1"], T(TTL + 3),
                   what="the killed node drops out of the roster")
        gone = time.monotonic() - t0
        sys.stderr.write("\n[observed] killed node left the roster after %.1fs (TTL %ds)\n" % (gone, TTL))
        self.assertLess(gone, TTL + 2)
        # Readers drop the expired node from the index too.
        wait_until(lambda: b"adm2" not in redis.command("SMEMBERS", "wsgate:nodes"), T(3),
                   what="adm2 removed from wsgate:nodes")

    def test_cluster_shards_masters_and_links(self):
        rc = RedisCluster(masters=3, replicas=0, node_timeout_ms=1000)
        self.addCleanup(rc.stop)
        masters = rc.masters()
        seeds = "redis+cluster://" + ",".join(m.addr for m in masters)
        keys = key_file(self, KEY1 + "\n")
        gws = [self.start_gateway(None, ["--redis-url", seeds, "--api-key-file", keys, "--node-id", "sh%d" % i],
                                  name="sh%d" % i) for i in range(2)]
        slots = {}
        for lo, hi, addr in RedisCluster._slot_view(masters[0]):
            slots[addr] = slots.get(addr, 0) + hi - lo + 1
        self.assertEqual(sorted(slots), sorted(m.addr for m in masters))

        def links(g):
            """{node id: {master address: (slots, link)}} as node g serves the roster."""
            status, body = cluster(g)
            if status != 200:
                return {}
            return {n["id"]: {m["address"]: (m["slots"], m["link"]) for m in n["redis"].get("masters", [])}
                    for n in body["nodes"] if n["redis"]["mode"] == "cluster"}

        want = {a: (k, "live") for a, k in slots.items()}
        wait_until(lambda: all(links(g) == {"sh0": want, "sh1": want} for g in gws), T(15),
                   what="both nodes list both, each linked live to every master with its slots")
        entry = {n["id"]: n for n in cluster(gws[0])[1]["nodes"]}["sh1"]
        self.assertEqual(sum(m["slots"] for m in entry["redis"]["masters"]), 16384)
        for m in entry["redis"]["masters"]:
            self.assertEqual(m["reconnects"], 0, m)
            self.assertTrue(0 <= m["rtt_ms"] < 1000, m)
        # A master that does not hold the roster ({wsgate}) is SIGKILLed: both nodes show
        # their link to it lost, the other two live.
        holder = rc.master_of_key("{wsgate}:nodes")
        victim = next(m for m in masters if m.addr != holder.addr)
        victim.kill()

        def lost():
            view = links(gws[0])
            if sorted(view) != ["sh0", "sh1"]:
                return False
            for node in view.values():
                if node.get(victim.addr, (0, "live"))[1] == "live":
                    return False
                if any(link != "live" for a, (_, link) in node.items() if a != victim.addr):
                    return False
            return view
        view = wait_until(lost, T(15), what="both nodes show their link to the killed master lost")
        sys.stderr.write("\n[observed] links after the SIGKILL of %s: %r\n" % (victim.addr, view))

    def test_admin_is_off_without_api_keys(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port)
        self.assertEqual(post(gw.port, None, key=None, method="GET", path="/admin")[0], 404)
        self.assertEqual(cluster(gw)[0], 404)


if __name__ == "__main__":
    unittest.main()
