#!/usr/bin/env python3
"""Redis cost of the channel index behind GET /api/channels (issue 21), one command,
everything started and stopped here: one node, --channels channels with one subscriber
each; Redis time per second (INFO commandstats, every command but the probe's and the
subscriptions') over --idle seconds at rest, then over the same time while one client
subscribes and unsubscribes --churn channels a second, each living half a second or more.

  bench/channels_index.py                          (about 40 s)
  WSGATE_BIN=other/wsgate bench/channels_index.py  another build, same scenario
Needs a built wsgate (WSGATE_BIN, default build-test/) and redis-server on PATH. Every
loop is bounded in count and time.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("WSGATE_BIN", os.path.join(ROOT, "build-test", "gateway", "wsgate"))

from wsgate_harness import Gateway, RedisServer, WSClient  # noqa: E402

SKIP = {"cmdstat_publish", "cmdstat_subscribe", "cmdstat_unsubscribe", "cmdstat_info", "cmdstat_config|resetstat"}


def redis_time(r):
    """{command: (calls, usec)} since the last CONFIG RESETSTAT, the probe's own left out."""
    out = {}
    for line in r.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line.split(":", 1)
            f = dict(x.split("=") for x in rest.split(","))
            if name not in SKIP:
                out[name[8:]] = (int(f["calls"]), int(f["usec"]))
    return out


def pipelined(c, kind, names, chunk=100):
    for k in range(0, len(names), chunk):
        ids = []
        for n in names[k:k + chunk]:
            rid = c.new_id()
            ids.append(rid)
            c.send_json({"type": kind, "channel": n, "id": rid})
        for rid in ids:
            c.wait_reply(rid, timeout=10)


def report(what, stats, secs):
    total = sum(u for _, u in stats.values())
    parts = ", ".join("%s %.1f/s" % (k, c / secs) for k, (c, _) in sorted(stats.items()))
    print("%-34s Redis time %7.1f us/s  (%s)" % (what, total / secs, parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=3000)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--churn", type=int, default=100, help="subscribes + unsubscribes a second")
    a = ap.parse_args()
    r = RedisServer()
    gw = Gateway(r.port, extra_args=["--max-subscriptions", str(a.channels + a.churn), "--client-rate", "1000000",
                                     "--client-burst", "100000", "--anonymous-subscribe", "*"])
    try:
        gw.wait_ready()
        c = WSClient(gw.port)
        pipelined(c, "subscribe", ["room:c%06d" % i for i in range(a.channels)])
        churner = WSClient(gw.port)
        time.sleep(3)
        r.command("CONFIG", "RESETSTAT")
        time.sleep(a.idle)
        report("%d channels, at rest" % a.channels, redis_time(r), a.idle)
        r.command("CONFIG", "RESETSTAT")
        # Every quarter second a quarter of --churn/2 channels come and those of two steps
        # before go: each lives half a second or more, so most are written while they live.
        t0, n, step, live = time.monotonic(), 0, a.churn // 8, []
        while time.monotonic() - t0 < a.idle:
            batch = ["room:z%06d" % (n + i) for i in range(step)]
            pipelined(churner, "subscribe", batch)
            live.append(batch)
            if len(live) > 2:
                pipelined(churner, "unsubscribe", live.pop(0))
            n += step
            time.sleep(max(0.0, t0 + n / step * 0.25 - time.monotonic()))
        secs = time.monotonic() - t0
        report("%d channels, %d changes/s" % (a.channels, a.churn), redis_time(r), secs)
        churner.close()
        c.close()
    finally:
        gw.terminate()
        gw.cleanup()
        r.stop()


if __name__ == "__main__":
    main()
