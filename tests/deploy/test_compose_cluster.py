#!/usr/bin/env python3
"""The docker-compose stack on a Redis Cluster (docker-compose.yml + docker-compose.cluster.yml),
exercised for real: builds the image, starts six Redis nodes, the one-shot create job, three
wsgate nodes in cluster mode and HAProxy, and checks through the load balancer's one
published port (127.0.0.1):
  1. the create job exits 0 and leaves 3 masters with all 16384 slots and 3 replicas; every
     node runs the recommended settings (cluster-require-full-coverage no,
     cluster-allow-pubsubshard-when-down yes, noeviction);
  2. every gateway becomes ready with its link proven on the 3 masters, and holds exactly two
     connections per master (CLIENT LIST on each) and none to a replica;
  3. clients spread over the nodes through the LB subscribe to one channel per shard; a
     client publish (with history), a backend's SPUBLISH and FCALL wsgate_publish ... shard
     (redis-cli -c inside a Redis container) reach every one of them, and a plain PUBLISH
     reaches none (the backend contract of cluster mode);
  4. one master container is stopped: the other shards' channels keep delivering and the
     load balancer's /readyz stays 200 until its replica is promoted, then its channel
     resumes;
  5. the stack comes down cleanly (always), leaving no containers.

Uses the engine of test_compose.py (docker compose, else podman + podman-compose through the
shared scripts), its own project name and image tag; exits 77 (skipped) without either.
Every wait is bounded, and a watchdog ends the run (after cleaning up) before CTest's own
timeout.
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from deploytools import ROOT, compose_down, compose_logs, compose_up, log, run_suite  # noqa: E402
from test_compose import ComposeHelpers, detect_engine  # noqa: E402
from wsgate_harness import free_port, http_get, plain, wait_until  # noqa: E402

PROJECT = os.environ.get("WSGATE_COMPOSE_CLUSTER_PROJECT", "wsgatedeploycluster")
FILES = (os.path.join(ROOT, "docker-compose.yml"), os.path.join(ROOT, "docker-compose.cluster.yml"))
NODES = ("gw1", "gw2", "gw3")
REDIS = ("redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6")
PREFIX = "gw:"
WATCHDOG_S = int(os.environ.get("WSGATE_DEPLOY_WATCHDOG", "1320"))


class ComposeRedisCluster(ComposeHelpers, unittest.TestCase):
    passed_all = False

    cli_service = "redis"  # where redis-cli runs unless told; moved off a stopped node

    def redis_cli(self, *args, service=None):
        return self.engine.ctl("exec", self.engine.container(service or self.cli_service), "redis-cli", *args,
                               timeout=30).stdout.strip()

    def cluster_nodes(self):
        """[(announced name, is master, [(first, last) slot ranges])] from CLUSTER NODES."""
        out = []
        for line in self.redis_cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            name = f[1].split(",", 1)[1] if "," in f[1] else f[1]
            ranges = []
            for r in f[8:]:
                if not r.startswith("["):
                    lo, _, hi = r.partition("-")
                    ranges.append((int(lo), int(hi or lo)))
            out.append((name, "master" in f[2].split(","), ranges))
        return out

    def owner(self, key):
        slot = int(self.redis_cli("CLUSTER", "KEYSLOT", key))
        for name, master, ranges in self.cluster_nodes():
            if master and any(lo <= slot <= hi for lo, hi in ranges):
                return name
        raise AssertionError("no master owns slot %d" % slot)

    # ------------------------------------------------------------------ set-up / tear-down
    @classmethod
    def setUpClass(cls):
        cls.engine = detect_engine(PROJECT, FILES)
        cls.lb_port = free_port()
        cls.engine.env["WSGATE_PUBLISH"] = "127.0.0.1:%d" % cls.lb_port
        # Its own tag: another run building wsgate:local at the same time cannot swap it.
        cls.engine.env["WSGATE_IMAGE"] = "wsgate:" + PROJECT
        cls.clients = []
        compose_up(cls.engine, cls.dump_logs)
        log("load balancer on 127.0.0.1:%d" % cls.lb_port)

    @classmethod
    def dump_logs(cls):
        compose_logs(cls.engine, ("redis-cluster-create",) + NODES + REDIS[:1], 30)

    @classmethod
    def tearDownClass(cls):
        compose_down(cls.engine, cls.clients, cls.passed_all, cls.dump_logs)

    # ------------------------------------------------------------------ the steps, in order
    def test_1_cluster_created_with_the_recommended_settings(self):
        job = self.engine.container("redis-cluster-create")

        def exited():
            st = self.engine.ctl("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", job, timeout=20)
            return st.stdout.split() if st.stdout.split()[0] == "exited" else None
        status = wait_until(exited, 120, what="the create job to finish", interval=1)
        self.assertEqual(status[1], "0", self.engine.ctl("logs", job, check=False).stdout[-2000:])
        wait_until(lambda: "cluster_state:ok" in self.redis_cli("CLUSTER", "INFO"), 60,
                   what="cluster_state:ok", interval=0.5)
        nodes = self.cluster_nodes()
        masters = [n for n in nodes if n[1]]
        self.assertEqual(len(nodes), 6, nodes)
        self.assertEqual(len(masters), 3, nodes)
        self.assertEqual(sum(hi - lo + 1 for _, _, rs in masters for lo, hi in rs), 16384)
        self.assertEqual(sorted(n[0] for n in nodes), sorted(REDIS), "each node announces its service name")
        for svc in REDIS:
            for key, want in (("cluster-require-full-coverage", "no"),
                              ("cluster-allow-pubsubshard-when-down", "yes"),
                              ("maxmemory-policy", "noeviction")):
                self.assertEqual(self.redis_cli("CONFIG", "GET", key, service=svc).split(), [key, want], svc)
        self.__class__.masters = [n[0] for n in masters]
        log("cluster created: masters %s" % ", ".join(self.masters))

    def test_2_nodes_ready_in_cluster_mode(self):
        for n in NODES:
            wait_until(lambda n=n: self.engine.ctl("exec", self.engine.container(n), "wsgate-healthcheck",
                                                   "/readyz", check=False, timeout=20).returncode == 0,
                       120, what="%s /readyz 200 (every master's link proven)" % n, interval=0.5)
            self.assertEqual(self.metric(n, "wsgate_redis_masters"), 3, n)
            self.assertEqual(self.metric(n, "wsgate_redis_connected"), 1, n)
        wait_until(lambda: http_get(self.lb_port, "/readyz", 2)[0] == 200, 60, what="LB /readyz 200")
        # Two connections per master per gateway (a sharded subscriber and a command
        # connection), whatever the channels; none to a replica.
        for svc in REDIS:
            lines = [ln for ln in self.redis_cli("CLIENT", "LIST", service=svc).splitlines()
                     # replication links (S: a replica's, M: the master's on a replica), ours
                     if " flags=S " not in ln and " flags=M " not in ln and "cmd=client|list" not in ln
                     and "cmd=cluster|" not in ln]
            want = 2 * len(NODES) if svc in self.masters else 0
            self.assertEqual(len(lines), want, (svc, lines))
        log("3 gateways ready in cluster mode, 2 connections each per master")

    def test_3_publish_subscribe_on_every_shard_through_the_lb(self):
        channels = {}
        i = 0
        while len(channels) < 3 and i < 200:
            ch = "demo-shard-%d" % i
            channels.setdefault(self.owner(PREFIX + ch), ch)
            i += 1
        self.assertEqual(sorted(channels), sorted(self.masters), "one channel per master")
        names = sorted(channels.values())
        spread = []
        while len(spread) < 15 and (len(spread) < 3 or len({x for _, x in spread}) < len(NODES)):
            c, node = self.connect_subscribed(names[0], NODES)
            for ch in names[1:]:
                rid = self.next_id()
                self.assertEqual(c.request({"type": "subscribe", "channel": ch, "id": rid}), {"type": "ack", "id": rid})
            spread.append((c, node))
            self.clients.append((c, node))
        log("%d clients through the LB on %r" % (len(spread), sorted({x for _, x in spread})))
        for ch in names:
            key = PREFIX + ch
            # Each node with a subscriber holds one sharded subscription on the owner.
            held = len({x for _, x in spread})
            self.assertEqual(self.redis_cli("PUBSUB", "SHARDNUMSUB", key, service=self.owner(key)).split(),
                             [key, str(held)])
            c = spread[0][0]
            rid = self.next_id()
            reply = c.request({"type": "publish", "channel": ch, "data": {"client": ch}, "id": rid})
            self.assertEqual(plain(reply), {"type": "ack", "id": rid})
            self.assertEqual(reply["offset"], 1)
            self.expect_messages(spread, ch, [{"client": ch}])
            # The backend contract: SPUBLISH and FCALL wsgate_publish ... shard through a
            # cluster-aware client (redis-cli -c follows MOVED) ...
            self.redis_cli("-c", "SPUBLISH", key, '{"backend":"spublish"}')
            self.expect_messages(spread, ch, [{"backend": "spublish"}])
            meta, stream = "{%s}:meta" % key, "{%s}:stream" % key
            out = self.redis_cli("-c", "FCALL", "wsgate_publish", "2", meta, stream, key, '{"backend":"fcall"}',
                                 "", "", "shard")
            self.assertEqual(out.split()[0], "2", out)  # its offset, after the client's publish
            self.expect_messages(spread, ch, [{"backend": "fcall"}])
            # ... while a plain PUBLISH reaches no node.
            self.redis_cli("-c", "PUBLISH", key, '{"backend":"publish"}')
        for c, node in spread:
            c.expect_nothing(1.0)
        log("client publish, SPUBLISH and FCALL shard reached all %d clients on every shard; PUBLISH none"
            % len(spread))
        self.__class__.names, self.__class__.spread = names, spread

    def publish_until_acked(self, c, ch, data, timeout):
        """A client publish, retried while it answers an error (its shard unavailable);
        returns the number of error answers."""
        errors = 0
        deadline = time.monotonic() + timeout
        while True:
            rid = self.next_id()
            reply = c.request({"type": "publish", "channel": ch, "data": data, "id": rid}, timeout=10)
            if reply.get("type") == "ack":
                return errors
            errors += 1
            self.assertLess(time.monotonic(), deadline, "publish on %s still refused: %r" % (ch, reply))
            time.sleep(0.2)

    def test_4_a_stopped_master_pauses_only_its_shard(self):
        names, spread = self.names, self.spread
        victim_ch, others = names[0], names[1:]
        victim = self.owner(PREFIX + victim_ch)
        self.__class__.cli_service = next(s for s in REDIS if s != victim)
        publisher = spread[0][0]
        self.engine.ctl("stop", "-t", "2", self.engine.container(victim), timeout=60)
        t0 = time.monotonic()
        ready, rounds, other_errors = [], 0, 0
        # The other shards' channels keep delivering while the victim's replica waits out the
        # node timeout (5 s) and is promoted; the load balancer keeps answering /readyz 200.
        while self.owner(PREFIX + victim_ch) == victim:
            self.assertLess(time.monotonic() - t0, 60, "no replica of %s promoted in 60 s" % victim)
            ready.append(http_get(self.lb_port, "/readyz", 3)[0])
            for ch in others:
                other_errors += self.publish_until_acked(publisher, ch, {"during": rounds}, 10)
                self.expect_messages(spread, ch, [{"during": rounds}], timeout=5)
            rounds += 1
            time.sleep(0.3)
        promoted_s = time.monotonic() - t0
        new_owner = self.owner(PREFIX + victim_ch)
        log("stopped master %s: %s promoted after %.1fs; %d rounds on the other shards meanwhile "
            "(%d publish errors), LB /readyz %r" % (victim, new_owner, promoted_s, rounds, other_errors,
                                                    sorted(set(ready))))
        self.assertGreaterEqual(rounds, 3)
        self.assertEqual(set(ready), {200}, ready)
        # The victim's channel resumes on the promoted replica.
        errors = self.publish_until_acked(publisher, victim_ch, {"after": "failover"}, 30)
        self.expect_messages(spread, victim_ch, [{"after": "failover"}], timeout=10)
        self.redis_cli("-c", "SPUBLISH", PREFIX + victim_ch, '{"backend":"after"}')
        self.expect_messages(spread, victim_ch, [{"backend": "after"}], timeout=10)
        log("%s resumed on %s (%d publish errors before)" % (victim_ch, new_owner, errors))
        self.__class__.passed_all = True


def main():
    run_suite(ComposeRedisCluster, "deploy compose cluster", WATCHDOG_S)


if __name__ == "__main__":
    main()
