#!/usr/bin/env python3
"""Presence benchmarks (issue 20), one command, everything started and stopped here:

1. Redis CPU per join and per leave: --clients clients of distinct users subscribe to one
   presence channel on one node, then all leave (--presence-leave-delay 0); Redis CPU
   (INFO cpu before/after) and FCALL's own time (INFO commandstats) per join and per leave.
2. Steady state: with --clients members subscribed and idle, Redis CPU over --idle seconds,
   against the same clients on a channel outside --presence-channels.

  bench/presence.py                   (about 40 s on 2 cores)
  bench/presence.py --clients 200     smaller
Needs a built wsgate (WSGATE_BIN, default build-test/) and redis-server on PATH. Every
loop is bounded in count and time.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_harness import Gateway, RedisServer, WSClient, wait_until  # noqa: E402


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, sub):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600, "channels": ["*"]}).encode())
    sig = b64(hmac.new(secret, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest())
    return "%s.%s.%s" % (head, body, sig)


def redis_cpu(rc):
    info = rc.command("INFO", "cpu").decode()
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))
    return float(v["used_cpu_sys"]) + float(v["used_cpu_user"])


def fcall_usec(rc):
    m = re.search(r"cmdstat_fcall:calls=(\d+),usec=(\d+)", rc.command("INFO", "commandstats").decode())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=10.0)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="wsgate-bench-presence-")
    secret = os.urandom(32)
    key = os.path.join(d, "hmac")
    with open(key, "wb") as f:
        f.write(secret)
    redis = RedisServer()
    gw = Gateway(redis.port, ["--jwt-hmac-secret-file", key, "--presence-channels", "room:*",
                              "--presence-leave-delay", "0", "--client-rate", "100000",
                              "--client-burst", "100000", "--log-level", "info"], dev_access=False)
    try:
        gw.wait_ready()
        rc = redis.client()
        tokens = [token(secret, "u%d" % i) for i in range(a.clients)]

        def open_all(channel):
            cs = [WSClient(gw.port, path="/ws?token=" + t, timeout=30) for t in tokens]
            for c in cs:
                c.send_json({"type": "subscribe", "channel": channel, "id": 1})
            for c in cs:
                assert c.wait_reply(1, timeout=30)["type"] == "ack"
            return cs

        def stats(c, channel):
            return c.request({"type": "presence_stats", "channel": channel})

        # 1. joins and leaves
        rc.command("CONFIG", "RESETSTAT")
        cpu0 = redis_cpu(rc)
        cs = open_all("room:bench")
        wait_until(lambda: stats(cs[0], "room:bench").get("connections") == a.clients, 30, what="all joined")
        cpu1 = redis_cpu(rc)
        calls_j, usec_j = fcall_usec(rc)
        rc.command("CONFIG", "RESETSTAT")
        cpu1 = redis_cpu(rc)
        for c in cs:
            c.abort()
        probe = WSClient(gw.port, path="/ws?token=" + token(secret, "probe"))
        wait_until(lambda: stats(probe, "room:bench").get("connections") == 0, 30, what="all left")
        cpu2 = redis_cpu(rc)
        calls_l, usec_l = fcall_usec(rc)
        print("joins:  %d FCALLs, FCALL time %.1f us each, Redis CPU %.1f us per join (INFO cpu, all commands)"
              % (calls_j, usec_j / max(calls_j, 1), (cpu1 - cpu0) * 1e6 / a.clients))
        print("leaves: %d FCALLs, FCALL time %.1f us each, Redis CPU %.1f us per leave"
              % (calls_l, usec_l / max(calls_l, 1), (cpu2 - cpu1) * 1e6 / a.clients))

        # 2. steady state, with and without presence
        for channel, label in (("room:steady", "presence"), ("plain:steady", "no presence")):
            cs = open_all(channel)
            time.sleep(2)
            c0 = redis_cpu(rc)
            time.sleep(a.idle)
            c1 = redis_cpu(rc)
            print("steady, %d members, %s: Redis CPU %.2f%% (%.3f s over %.0f s)"
                  % (a.clients, label, (c1 - c0) * 100 / a.idle, c1 - c0, a.idle))
            for c in cs:
                c.abort()
            time.sleep(1)
    finally:
        gw.terminate()
        redis.cleanup()


if __name__ == "__main__":
    main()
