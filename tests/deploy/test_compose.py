#!/usr/bin/env python3
"""The container image and the docker-compose cluster, exercised for real.

Builds deploy/Dockerfile through docker-compose.yml, starts Redis + three wsgate nodes +
HAProxy, and checks through the load balancer's one published port (bound to 127.0.0.1):
  1. the demo page, /healthz, /readyz and /metrics answer;
  2. a WebSocket client subscribes via the LB and receives a message published with
     redis-cli inside the Redis container;
  3. clients spread over all three nodes (told apart by each node's /metrics) all receive a
     publish made by a client on each node, and each node holds one Redis subscription;
  4. one gateway container is stopped: its clients are closed with 1001 "server draining",
     the container exits 0, the clients reconnect through the LB to the other nodes and keep
     receiving, and plain HTTP through the LB keeps answering quickly;
  5. the cluster comes down cleanly (always, in a finally), leaving no containers.

Uses `docker compose` when a Docker engine answers, else podman + podman-compose set up by
the shared scripts (../shared/tools/deploy beside the repository); exits 77 (skipped) when
neither is available. WSGATE_COMPOSE_ENGINE=docker|podman forces one. Every wait is bounded,
and a watchdog ends the run (after cleaning up) before CTest's own timeout.
"""

import os
import re
import shutil
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from deploytools import (ROOT, compose_down, compose_logs, compose_up, log, run, run_suite,  # noqa: E402
                         shared_tools, skip)
from wsgate_harness import (ConnectionClosed, ConnectionLost, HandshakeError, WSClient,  # noqa: E402
                            free_port, http_get, plain, wait_until)

PROJECT = os.environ.get("WSGATE_COMPOSE_PROJECT", "wsgatedeploytest")
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
NODES = ("gw1", "gw2", "gw3")
PREFIX = "gw:"
WATCHDOG_S = int(os.environ.get("WSGATE_DEPLOY_WATCHDOG", "1320"))  # CTest TIMEOUT is 1500


class Engine:
    """docker or podman: the compose front-end (one project, its compose files), the
    container CLI and their environment."""

    def __init__(self, kind, env, project=PROJECT, files=(COMPOSE_FILE,)):
        self.kind = kind
        self.env = env
        self.project = project
        self.cli = [kind]
        self.compose = (["docker", "compose"] if kind == "docker" else ["podman-compose"]) + ["-p", project]
        for f in files:
            self.compose += ["-f", f]

    def dc(self, *args, timeout=120, check=True):
        return run(self.compose + list(args), timeout=timeout, check=check, env=self.env)

    def ctl(self, *args, timeout=60, check=True):
        return run(self.cli + list(args), timeout=timeout, check=check, env=self.env)

    def containers(self, service=None, all_states=True):
        args = ["ps", "--format", "{{.Names}}", "--filter", "label=com.docker.compose.project=" + self.project]
        if all_states:
            args.insert(1, "-a")
        if service:
            args += ["--filter", "label=com.docker.compose.service=" + service]
        return [n for n in self.ctl(*args, timeout=30).stdout.split() if n]

    def container(self, service):
        names = self.containers(service)
        if len(names) != 1:
            raise AssertionError("expected one container for %s, found %r" % (service, names))
        return names[0]

    def down(self):
        self.dc("down", "-t", "20", timeout=180, check=False)
        for name in self.containers():  # whatever an interrupted run or an old front-end left
            self.ctl("rm", "-f", name, timeout=60, check=False)
        if self.kind == "podman":  # podman-compose 1.0 leaves the project network behind
            self.ctl("network", "rm", "-f", self.project + "_default", timeout=30, check=False)


def detect_engine(project=PROJECT, files=(COMPOSE_FILE,)):
    forced = os.environ.get("WSGATE_COMPOSE_ENGINE", "")
    env = dict(os.environ)
    if forced in ("", "docker") and shutil.which("docker"):
        if (run(["docker", "compose", "version"], timeout=30, check=False).returncode == 0
                and run(["docker", "info"], timeout=30, check=False).returncode == 0):
            log("engine: docker compose")
            return Engine("docker", env, project, files)
        if forced == "docker":
            skip("WSGATE_COMPOSE_ENGINE=docker but `docker compose` or the Docker engine does not answer")
    if forced == "docker":
        skip("WSGATE_COMPOSE_ENGINE=docker but docker is not installed")
    tools = shared_tools()
    if not tools:
        skip("no Docker engine with `docker compose`, and the shared deploy scripts "
             "(../shared/tools/deploy beside the repository, or $WSGATE_DEPLOY_TOOLS) are not there")
    log("engine: podman + podman-compose via %s/make-base-image.sh --services" % tools)
    p = run(["bash", os.path.join(tools, "make-base-image.sh"), "--services"], timeout=900, check=False)
    print("\n".join(l for l in p.stdout.splitlines() if l.startswith("[make-base-image]")), flush=True)
    if p.returncode != 0:
        raise AssertionError("make-base-image.sh failed (exit %d):\n%s\n%s"
                             % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    state = os.environ.get("DEPLOYCHECK_STATE", "/tmp/deploycheck")
    env["CONTAINERS_CONF"] = os.path.join(state, "containers.conf")
    env["BUILDAH_FORMAT"] = "docker"  # keep the Dockerfile's HEALTHCHECK (OCI format drops it)
    return Engine("podman", env, project, files)


class ComposeHelpers:
    """What the compose tests do through the engine and the load balancer (no tests here):
    ComposeCluster below and test_compose_cluster.py's Redis Cluster stack share it."""
    engine = None
    lb_port = None
    ids = 0

    @classmethod
    def next_id(cls):
        cls.ids += 1
        return cls.ids

    def node_get(self, node, path):
        """GET path inside the node's container (the image has bash, no curl)."""
        script = ('exec 3<>/dev/tcp/127.0.0.1/8080 && '
                  'printf "GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" >&3 && cat <&3' % path)
        p = self.engine.ctl("exec", self.engine.container(node), "bash", "-c", script, timeout=20)
        return p.stdout

    def metric(self, node, name):
        m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), self.node_get(node, "/metrics"), re.M)
        if not m:
            raise AssertionError("metric %s not found on %s" % (name, node))
        return float(m.group(1))

    def accepted(self, nodes):
        return {n: self.metric(n, "wsgate_connections_accepted_total") for n in nodes}

    def redis_cli(self, *args):
        return self.engine.ctl("exec", self.engine.container("redis"), "redis-cli", *args,
                               timeout=20).stdout.strip()

    def connect_subscribed(self, channel, nodes, timeout=5.0):
        """A client through the LB, subscribed to channel; returns (client, node it landed on),
        found by which node's accepted-connections counter moved."""
        before = self.accepted(nodes)
        c = WSClient(self.lb_port, host="127.0.0.1", timeout=timeout)
        try:
            rid = self.next_id()
            reply = c.request({"type": "subscribe", "channel": channel, "id": rid}, timeout=timeout)
            self.assertEqual(reply, {"type": "ack", "id": rid})
            after = self.accepted(nodes)
            moved = [n for n in nodes if after[n] > before[n]]
            self.assertEqual(len(moved), 1, "cannot tell which node took the connection: %r %r" % (before, after))
        except BaseException:
            c.close()
            raise
        return c, moved[0]

    def expect_messages(self, clients, channel, datas, timeout=10.0):
        """Every client receives every payload in datas (in any interleaving)."""
        for c, node in clients:
            want = list(datas)
            deadline = time.monotonic() + timeout
            while want:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "client on %s still waits for %r" % (node, want))
                m = c.recv_message(left)
                if m.get("channel") == channel and m.get("data") in want:
                    want.remove(m["data"])



class ComposeCluster(ComposeHelpers, unittest.TestCase):
    # ------------------------------------------------------------------ set-up / tear-down
    @classmethod
    def setUpClass(cls):
        cls.engine = detect_engine()
        cls.lb_port = free_port()
        cls.engine.env["WSGATE_PUBLISH"] = "127.0.0.1:%d" % cls.lb_port
        cls.clients = []
        compose_up(cls.engine, cls.dump_logs)
        log("load balancer on 127.0.0.1:%d" % cls.lb_port)

    @classmethod
    def dump_logs(cls):
        compose_logs(cls.engine, ("lb",) + NODES + ("redis",), 40)

    @classmethod
    def tearDownClass(cls):
        compose_down(cls.engine, cls.clients, cls.passed_all, cls.dump_logs)

    passed_all = False

    # ------------------------------------------------------------------ the steps, in order
    def test_1_cluster_ready_and_demo_page(self):
        for n in NODES:
            wait_until(lambda n=n: self.engine.ctl("exec", self.engine.container(n), "wsgate-healthcheck",
                                                   "/readyz", check=False, timeout=20).returncode == 0,
                       90, what="%s /readyz 200 (Redis link live)" % n, interval=0.5)
        wait_until(lambda: http_get(self.lb_port, "/readyz", 2)[0] == 200, 60, what="LB /readyz 200")
        log("all nodes ready, LB answers")
        status, headers, body = http_get(self.lb_port, "/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers.get("content-type", ""))
        self.assertIn("<title>wsgate demo</title>", body.decode())
        self.assertEqual(http_get(self.lb_port, "/healthz")[0], 200)
        status, _, body = http_get(self.lb_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("wsgate_ready 1", body.decode())
        for n in NODES:  # the image: non-root, read-only root filesystem
            p = self.engine.ctl("exec", self.engine.container(n), "bash", "-c", "id -u; touch /x 2>&1 || true",
                                timeout=20)
            self.assertEqual(p.stdout.split()[0], "10001", p.stdout)
            self.assertIn("Read-only file system", p.stdout)

    def test_2_redis_publish_reaches_lb_client(self):
        c, node = self.connect_subscribed("demo-deploy-a", NODES)
        self.clients.append((c, node))
        n = self.redis_cli("PUBLISH", PREFIX + "demo-deploy-a", '{"hello":"compose"}')
        self.assertEqual(n, "1", "exactly one node holds the subscription")
        m = c.recv_message(10)
        self.assertEqual(m, {"type": "message", "channel": "demo-deploy-a", "data": {"hello": "compose"}})
        log("redis-cli PUBLISH inside the redis container reached a client on %s through the LB" % node)

    def test_3_spread_clients_receive_publish_from_any_node(self):
        ch = "demo-deploy-b"
        spread = [self.connect_subscribed(ch, NODES) for _ in range(6)]
        self.clients.extend(spread)
        # HAProxy sends each new connection to the node with the fewest, but a node counts
        # only after two good health checks: if one came up late, it gets the next clients.
        while len(spread) < 15 and len({x for _, x in spread}) < len(NODES):
            time.sleep(0.5)
            spread.append(self.connect_subscribed(ch, NODES))
            self.clients.append(spread[-1])
        per_node = {n: sum(1 for _, x in spread if x == n) for n in NODES}
        log("%d clients through the LB landed on: %r" % (len(spread), per_node))
        for n in NODES:
            self.assertGreaterEqual(per_node[n], 1, "the LB sent no client to %s" % n)
        self.assertEqual(self.redis_cli("PUBSUB", "NUMSUB", PREFIX + ch).split()[-1], "3",
                         "each node holds one Redis subscription for the channel")
        datas = []
        for n in NODES:  # a client on each node publishes
            c = next(c for c, x in spread if x == n)
            rid = self.next_id()
            datas.append({"from": n})
            reply = c.request({"type": "publish", "channel": ch, "data": {"from": n}, "id": rid})
            # Published with history: the ack carries the message's place.
            self.assertEqual(plain(reply), {"type": "ack", "id": rid})
            self.assertGreaterEqual(reply["offset"], 1)
        self.expect_messages(spread, ch, datas)
        log("publishes from a client on each node reached all %d clients" % len(spread))
        self.__class__.spread = spread

    def test_4_stop_one_node_clients_fail_over(self):
        ch, victim = "demo-deploy-b", "gw2"
        spread = self.__class__.spread
        mine = [(c, n) for c, n in spread if n == victim]
        others = [(c, n) for c, n in spread if n != victim]
        survivors = [n for n in NODES if n != victim]
        name = self.engine.container(victim)
        t = time.monotonic()
        self.engine.ctl("stop", "-t", "20", name, timeout=60)
        stop_s = time.monotonic() - t
        code = self.engine.ctl("inspect", "-f", "{{.State.ExitCode}}", name, timeout=20).stdout.strip()
        log("stopped %s in %.1fs, exit code %s" % (victim, stop_s, code))
        self.assertEqual(code, "0", "the node drains and exits 0 on SIGTERM")
        self.assertLess(stop_s, 15, "drain took longer than the drain timeout")
        for c, _ in mine:
            self.assertEqual(c.expect_close(10), (1001, "server draining"))
        log("%d client(s) of %s got close 1001 \"server draining\"" % (len(mine), victim))

        # The LB keeps answering plain HTTP without waiting on the stopped node for long.
        worst = 0.0
        for _ in range(6):
            t = time.monotonic()
            self.assertEqual(http_get(self.lb_port, "/", 5)[0], 200)
            worst = max(worst, time.monotonic() - t)
        log("6 GET / through the LB after the stop: slowest %.2fs" % worst)
        self.assertLess(worst, 2.5)

        # Reconnect through the LB, as the demo page does: retry with a short pause.
        moved = []
        for c, _ in mine:
            t = time.monotonic()
            attempts = 0
            while True:
                attempts += 1
                try:
                    nc, node = self.connect_subscribed(ch, survivors, timeout=3)
                    break
                except (OSError, HandshakeError, ConnectionClosed, ConnectionLost, AssertionError) as e:
                    if time.monotonic() - t > 20:
                        raise AssertionError("could not reconnect through the LB in 20 s: %r" % e)
                    time.sleep(0.2)
            log("reconnected to %s in %.2fs (%d attempt(s))" % (node, time.monotonic() - t, attempts))
            self.assertIn(node, survivors)
            moved.append((nc, node))
        self.clients.extend(moved)
        clients = others + moved
        n = self.redis_cli("PUBLISH", PREFIX + ch, '{"after":"failover"}')
        self.assertEqual(n, "2", "the two remaining nodes hold the subscription")
        self.expect_messages(clients, ch, [{"after": "failover"}])
        c = next(c for c, x in clients if x == survivors[0])
        rid = self.next_id()
        self.assertEqual(plain(c.request({"type": "publish", "channel": ch, "data": {"client": "after"}, "id": rid})),
                         {"type": "ack", "id": rid})
        self.expect_messages(clients, ch, [{"client": "after"}])
        log("all %d clients keep receiving after the failover" % len(clients))
        self.__class__.passed_all = True


def main():
    run_suite(ComposeCluster, "deploy compose", WATCHDOG_S)


if __name__ == "__main__":
    main()
