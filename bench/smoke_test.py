#!/usr/bin/env python3
"""ctest smoke test for wsbench (label `bench`): one redis-server, one wsgate node and a
short fanout; every message must arrive exactly once, in order. Then a node without
anonymous rights and an HS256 key: a connect-storm with --token-file must get every
client live, one without a token none. Then, when redis-cli is there, a 3-master Redis
Cluster (tests/integration/wsgate_cluster.py) and a node on redis+cluster://: wsbench's
--redis-cluster SPUBLISHes each of 60 channels on its slot's master (a wrong master answers
MOVED and the message is lost), every message arrives exactly once and every master took
some. Proves the tool and the JSON it writes, not performance. Runs in about 15 seconds.

    smoke_test.py WSGATE_BIN WSBENCH_BIN
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready: {url}")


def hs256_token(secret, claims):
    """Minted with the standard library, independently of the gateway's verifier."""
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def storm(wsbench, port, pid, out, conns, extra):
    """One connect-storm against 127.0.0.1:port; returns its JSON row."""
    run = subprocess.run(
        [wsbench, "--target", "wsgate", "--servers", f"127.0.0.1:{port}", "--scenario", "connect-storm",
         "--conns", str(conns), "--server-pids", str(pid), "--json", out, "--no-header"] + extra,
        timeout=30, capture_output=True, text=True)
    print(run.stdout, run.stderr, sep="\n")
    if run.returncode != 0:
        raise SystemExit(f"wsbench exited {run.returncode}")
    with open(out) as f:
        return json.loads(f.readlines()[-1])


def cluster_case(wsgate, wsbench, tmp, log):
    """The --redis cluster path of run.sh in small; returns the checks."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests", "integration"))
    import unittest
    try:
        from wsgate_cluster import RedisCluster
        cluster = RedisCluster(masters=3, replicas=0, node_timeout_ms=5000)
    except unittest.SkipTest as e:
        print(f"cluster case skipped: {e}")
        return {}
    node = None
    try:
        masters = cluster.masters()
        view = cluster._slot_view(masters[0])
        cmap = ",".join(f"{lo}-{hi}@{addr}" for lo, hi, addr in view)
        port = free_port()
        node = subprocess.Popen(
            [wsgate, "--listen", f"127.0.0.1:{port}", "--redis-url",
             "redis+cluster://" + ",".join(m.addr for m in masters), "--log-level", "warn",
             "--anonymous-subscribe", "*", "--anonymous-publish", "*"], stdout=log, stderr=log)
        wait_ready(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 20)
        out = os.path.join(tmp, "cluster.jsonl")
        run = subprocess.run(
            [wsbench, "--target", "wsgate", "--servers", f"127.0.0.1:{port}", "--redis-cluster", cmap,
             "--scenario", "many-channels", "--conns", "60", "--rate", "300", "--duration", "2",
             "--drain", "10", "--server-pids", str(node.pid), "--target-name", "wsgate-cluster",
             "--round", "1", "--json", out, "--no-header"], timeout=60, capture_output=True, text=True)
        print(run.stdout, run.stderr, sep="\n")
        if run.returncode != 0:
            raise SystemExit(f"wsbench (cluster) exited {run.returncode}")
        r = json.loads(open(out).readlines()[-1])
        spublish = []
        for m in masters:
            stats = m.command("INFO", "commandstats").decode()
            line = [x for x in stats.splitlines() if x.startswith("cmdstat_spublish:")]
            spublish.append(int(line[0].split("calls=")[1].split(",")[0]) if line else 0)
        return {
            "cluster: all 60 clients live": r["live"] == 60,
            "cluster: delivered == expected > 0": r["expected"] > 0 and r["delivered"] == r["expected"],
            "cluster: no duplicates or reordering": r["dups"] == 0 and r["reorders"] == 0,
            "cluster: the row is named and numbered": r["target"] == "wsgate-cluster" and r.get("round") == 1,
            "cluster: every master took SPUBLISHes": all(n > 0 for n in spublish),
        }
    finally:
        if node is not None:
            stop(node)
        cluster.stop()


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    wsgate, wsbench = sys.argv[1], sys.argv[2]
    redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not redis_bin:
        raise SystemExit("redis-server not found")
    tmp = tempfile.mkdtemp(prefix="wsbench-smoke.")
    procs = []
    try:
        rport, wport = free_port(), free_port()
        procs.append(subprocess.Popen(
            [redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
        log = open(os.path.join(tmp, "wsgate.log"), "w")
        procs.append(subprocess.Popen(
            [wsgate, "--listen", f"127.0.0.1:{wport}", "--redis-url", f"redis://127.0.0.1:{rport}",
             "--log-level", "warn", "--anonymous-subscribe", "*", "--anonymous-publish", "*"],
            stdout=log, stderr=log))
        wait_ready(f"http://127.0.0.1:{wport}/readyz", time.monotonic() + 20)
        out = os.path.join(tmp, "rows.jsonl")
        run = subprocess.run(
            [wsbench, "--target", "wsgate", "--servers", f"127.0.0.1:{wport}", "--redis", f"127.0.0.1:{rport}",
             "--scenario", "fanout", "--conns", "200", "--rate", "20", "--duration", "2", "--drain", "10",
             "--server-pids", str(procs[1].pid), "--redis-pid", str(procs[0].pid), "--json", out],
            timeout=60, capture_output=True, text=True)
        print(run.stdout, run.stderr, sep="\n")
        if run.returncode != 0:
            raise SystemExit(f"wsbench exited {run.returncode}")
        rows = [json.loads(line) for line in open(out)]
        assert len(rows) == 1, rows
        r = rows[0]

        # Same tool against a node that only lets a token in (the BENCH_AUTH runs of run.sh).
        secret = os.urandom(32).hex().encode()
        with open(os.path.join(tmp, "secret"), "wb") as f:
            f.write(secret)
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write(hs256_token(secret, {"sub": "smoke", "channels": ["*"], "exp": int(time.time()) + 600}) + "\n")
        aport = free_port()
        procs.append(subprocess.Popen(
            [wsgate, "--listen", f"127.0.0.1:{aport}", "--redis-url", f"redis://127.0.0.1:{rport}",
             "--log-level", "warn", "--jwt-hmac-secret-file", os.path.join(tmp, "secret")],
            stdout=log, stderr=log))
        wait_ready(f"http://127.0.0.1:{aport}/readyz", time.monotonic() + 20)
        auth_out = os.path.join(tmp, "auth.jsonl")
        with_token = storm(wsbench, aport, procs[2].pid, auth_out, 100,
                           ["--token-file", os.path.join(tmp, "token")])
        # refused subscribes (unauthorized) are never acked: they stay pending until --connect-timeout
        without = storm(wsbench, aport, procs[2].pid, auth_out, 20, ["--connect-timeout", "2"])
        checks = {
            "all 200 clients live": r["live"] == 200,
            "about 40 messages published": 30 <= r["published"] <= 50,
            "expected = published x 200": r["expected"] == r["published"] * 200,
            "delivered == expected": r["delivered"] == r["expected"],
            "no duplicates or reordering": r["dups"] == 0 and r["reorders"] == 0,
            "latency measured": r["p50_ms"] > 0 and r["max_ms"] >= r["p99_ms"] >= r["p50_ms"],
            "server CPU measured": r["server_cpu_s"] > 0,
            "own CPU reported": r["tool_cpu_pct"] > 0,
            "with a token all 100 clients live": with_token["live"] == 100 and with_token["conn_per_s"] > 0,
            "without a token no client live": without["live"] == 0,
        }
        checks.update(cluster_case(wsgate, wsbench, tmp, log))
        failed = [k for k, ok in checks.items() if not ok]
        for k, ok in checks.items():
            print(f"{'ok  ' if ok else 'FAIL'} {k}")
        if failed:
            raise SystemExit(f"smoke test failed: {', '.join(failed)}")
        print(f"{len(checks)} passed, 0 failed")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
