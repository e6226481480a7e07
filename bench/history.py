#!/usr/bin/env python3
"""History benchmarks (issue 10), one command, everything started and stopped here:

1. Publishing through wsgate_publish against plain PUBLISH on the same redis-server:
   the highest rate redis-benchmark reaches (pipelined, 50 clients) and Redis CPU
   seconds per million messages (INFO cpu before/after), payload of --size bytes.
2. Fan-out with offsets on: one wsgate node, --fanout subscribers of one channel, a
   backend publishing N messages through the function vs plain PUBLISH; node CPU
   seconds per million deliveries (from /proc) for each.
3. Mass recovery: --clients clients each missed --missed messages and subscribe with
   `since` at once; the time until every one has its replay, and Redis CPU for it.

  bench/history.py                    (about 1 minute on 2 cores)
  bench/history.py --quick            smaller sizes
Needs a built wsgate (WSGATE_BIN, default build-test/ then build-bench/) and
redis-server/redis-benchmark on PATH. Every loop is bounded in count and time.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_harness import Gateway, RedisServer, WSClient  # noqa: E402


def redis_cpu(rc):
    info = rc.command("INFO", "cpu").decode()
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))
    return float(v["used_cpu_sys"]) + float(v["used_cpu_user"])


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_publish(redis, n, size):
    rc = redis.client(timeout=30)
    payload = json.dumps({"p": "x" * max(0, size - 8)})
    out = {}
    for name, cmd in (("PUBLISH", ["PUBLISH", "gw:bench:plain", payload]),
                      ("FCALL wsgate_publish", ["FCALL", "wsgate_publish", "2", "{gw:bench:h}:meta",
                                                "{gw:bench:h}:stream", "gw:bench:h", payload,
                                                "1000", "86400"])):
        before = redis_cpu(rc)
        t0 = time.monotonic()
        r = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n", str(n), "-c", "50",
                            "-P", "16", "-q", "--csv"] + cmd, capture_output=True, text=True,
                           timeout=300)
        took = time.monotonic() - t0
        cpu = redis_cpu(rc) - before
        m = re.search(r'^"[^"]*","([0-9.]+)"', r.stdout, re.M)
        rate = float(m.group(1)) if m else n / took
        out[name] = (rate, cpu / n * 1e6)
    rc.close()
    return out


def bench_fanout(redis, gw_bin, fanout, n, size):
    gw = Gateway(redis.port, extra_args=["--client-rate", "100000", "--client-burst", "100000"])
    gw.binary = gw_bin
    try:
        gw.wait_ready(30)
        clients = [WSClient(gw.port, timeout=30) for _ in range(fanout)]
        for c in clients:
            assert c.subscribe("fan").get("type") == "ack"
        rc = redis.client(timeout=30)
        payload = json.dumps({"p": "x" * max(0, size - 8)})
        out = {}
        for name, cmd in (("plain PUBLISH", ["PUBLISH", "gw:fan", payload]),
                          ("wsgate_publish (offsets on)",
                           ["FCALL", "wsgate_publish", "2", "{gw:fan}:meta", "{gw:fan}:stream",
                            "gw:fan", payload, "1000", "86400"])):
            before = proc_cpu(gw.proc.pid)
            for start in range(0, n, 100):
                rc.pipeline([tuple(cmd)] * min(100, n - start))
                for c in clients:  # read as we go: no client may fall behind its queue
                    c.recv_messages(min(100, n - start), timeout=30)
            out[name] = (proc_cpu(gw.proc.pid) - before) / (n * fanout) * 1e6
        for c in clients:
            c.abort()
        rc.close()
        return out
    finally:
        gw.cleanup()


def bench_recovery(redis, gw_bin, nclients, missed):
    gw = Gateway(redis.port)
    gw.binary = gw_bin
    try:
        gw.wait_ready(30)
        rc = redis.client(timeout=30)
        rc.command("FCALL", "wsgate_publish", "2", "{gw:rec}:meta", "{gw:rec}:stream", "gw:rec", "0",
                   "1000", "86400")
        epoch = rc.command("HGET", "{gw:rec}:meta", "epoch").decode()
        rc.pipeline([("FCALL", "wsgate_publish", "2", "{gw:rec}:meta", "{gw:rec}:stream", "gw:rec",
                      json.dumps({"n": i}), "1000", "86400") for i in range(missed)])
        clients = [WSClient(gw.port, timeout=60) for _ in range(nclients)]
        before = redis_cpu(rc)
        t0 = time.monotonic()
        for c in clients:
            c.send_json({"type": "subscribe", "channel": "rec", "id": 1,
                         "since": {"offset": 1, "epoch": epoch}})
        ok = 0
        for c in clients:
            ack = c.wait_reply(1, timeout=60)
            if ack.get("recovered"):
                c.recv_messages(missed, timeout=60)
                ok += 1
        took = time.monotonic() - t0
        cpu = redis_cpu(rc) - before
        for c in clients:
            c.abort()
        rc.close()
        return ok, took, cpu
    finally:
        gw.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    n_pub = 50000 if args.quick else 300000
    fan, n_fan = (50, 500) if args.quick else (500, 2000)
    nrec, missed = (200, 100) if args.quick else (1000, 100)
    gw_bin = os.environ.get("WSGATE_BIN")
    for cand in ("build-test", "build-bench", "build"):
        if not gw_bin and os.path.exists(os.path.join(ROOT, cand, "gateway", "wsgate")):
            gw_bin = os.path.join(ROOT, cand, "gateway", "wsgate")
    os.environ["WSGATE_BIN"] = gw_bin
    redis = RedisServer()
    try:
        with open(os.path.join(ROOT, "deploy", "redis", "wsgate.lua"), "rb") as f:
            c = redis.client()
            c.command("FUNCTION", "LOAD", "REPLACE", f.read())
            c.close()
        print("# bench/history.py%s, wsgate %s, payload %d B" % (" --quick" if args.quick else "",
                                                                  gw_bin, args.size))
        res = bench_publish(redis, n_pub, args.size)
        print("\n## Publishing, %d messages each (redis-benchmark -c 50 -P 16)" % n_pub)
        print("| command | max rate (msg/s) | Redis CPU s per million |")
        print("|---|---|---|")
        for k, (rate, cpu) in res.items():
            print("| %s | %.0f | %.1f |" % (k, rate, cpu))
        plain, fn = res["PUBLISH"], res["FCALL wsgate_publish"]
        print("\nratio wsgate_publish / PUBLISH: rate %.2fx, Redis CPU per message %.2fx"
              % (fn[0] / plain[0], fn[1] / plain[1]))
        fo = bench_fanout(redis, gw_bin, fan, n_fan, args.size)
        print("\n## Fan-out, %d subscribers on one node, %d messages" % (fan, n_fan))
        print("| published with | node CPU s per million deliveries |")
        print("|---|---|")
        for k, v in fo.items():
            print("| %s | %.1f |" % (k, v))
        ok, took, cpu = bench_recovery(redis, gw_bin, nrec, missed)
        print("\n## Mass recovery: %d clients, %d missed messages each, at once" % (nrec, missed))
        print("recovered %d of %d in %.2f s; Redis CPU %.3f s (%.1f ms per recovery)"
              % (ok, nrec, took, cpu, cpu / max(1, nrec) * 1000))
    finally:
        redis.cleanup()


if __name__ == "__main__":
    main()
