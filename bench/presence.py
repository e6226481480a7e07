#!/usr/bin/env python3
"""Presence benchmarks (issue 20), one command, everything started and stopped here (by
PID), every loop bounded in count and time. One redis-server; wsgate nodes with
`--presence-channels 'pres:*,room:*' --presence-max-members 0` (no event cap, so the event
counts below are not silenced by the limit) and the default heartbeat settings.

1. joins: --clients clients of distinct users (HS256 tokens) subscribe to one presence
   channel, then all leave (--presence-leave-delay 0): Redis CPU (INFO cpu) and FCALL time
   (INFO commandstats) per join and per leave.
2. steady: Redis CPU over --idle seconds with the members connected and idle, at 1,000 and
   19,000 members of one channel and 19,000 channels of one member each, each against the
   same clients on channels without presence (plain:*), the two interleaved, --rounds
   times. The 19,000 clients are one wsbench process (anonymous clients: members without a
   user, which is what an entry costs; bench/wsbench holds 19,000 sockets under the
   20,000-descriptor limit, the node holds its own).
3. events: --watchers clients with "presence": true on node A, --clients joiners of distinct
   users on node B, all at once and paced (--join-rates 0,200), then all leave: node A's CPU
   (/proc/<pid>/task/*/schedstat) per join and per leave event it delivered, less its idle
   CPU over the same time.
4. storm: --storm clients of distinct users on one channel (leave delay --storm-delay s), a
   watcher with "presence": true; all drop their connections (RST) and reconnect and
   resubscribe within the delay: join/leave/occupied/vacated entries on the channel's
   events stream ({gw:<channel>}:events) and events at the watcher, counted after the
   delay has passed (expected: none); then a control: --control clients drop for good and
   exactly that many leaves must follow.

  WSGATE_BIN=build-bench/gateway/wsgate /usr/bin/python3 bench/presence.py   (about 6 min)
  /usr/bin/python3 bench/presence.py --parts joins,storm --storm 1000
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsgate_harness import Gateway, RedisServer, WSClient, wait_until  # noqa: E402

DEFAULTS = ["--redis-heartbeat-interval-ms", "1000", "--redis-heartbeat-timeout-ms", "3000",
            "--redis-backoff-max-ms", "2000", "--log-level", "warn"]


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, sub):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 7200, "channels": ["*"]}).encode())
    sig = b64(hmac.new(secret, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest())
    return "%s.%s.%s" % (head, body, sig)


def redis_cpu(rc):
    info = rc.command("INFO", "cpu").decode()
    v = dict(re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))
    return float(v["used_cpu_sys"]) + float(v["used_cpu_user"])


def fcall_usec(rc):
    m = re.search(r"cmdstat_fcall:calls=(\d+),usec=(\d+)", rc.command("INFO", "commandstats").decode())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def proc_cpu(pid):
    """CPU seconds of every thread of pid, in nanoseconds' resolution (schedstat's run
    time; /proc/<pid>/stat counts 10 ms ticks, too coarse for a burst of events)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total / 1e9


def fcalls_settle(rc, quiet=1.5, limit=60):
    """Waits until no FCALL ran for `quiet` seconds (joins or leaves done), at most `limit`."""
    deadline = time.monotonic() + limit
    last, since = fcall_usec(rc)[0], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        n = fcall_usec(rc)[0]
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise RuntimeError("FCALLs did not settle within %d s" % limit)


def spread(xs):
    return "median %.3f (min %.3f, max %.3f)" % (statistics.median(xs), min(xs), max(xs))


class Bench:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="wsgate-bench-presence-")
        self.secret = os.urandom(32)
        self.key = os.path.join(self.dir, "hmac")
        with open(self.key, "wb") as f:
            f.write(self.secret)
        self.redis = RedisServer()
        self.rc = self.redis.client(timeout=30)
        self.gateways = []

    def gateway(self, delay, name, anonymous=False):
        args = ["--jwt-hmac-secret-file", self.key, "--presence-channels", "pres:*,room:*",
                "--presence-leave-delay", str(delay), "--presence-max-members", "0",
                "--client-rate", "100000", "--client-burst", "100000",
                # a watcher gets one event per join: 5,000 joins must not shed it
                "--queue-max-messages", "50000"] + DEFAULTS
        if anonymous:
            args += ["--anonymous-subscribe", "*"]
        gw = Gateway(self.redis.port, args, dev_access=False, name=name)
        self.gateways.append(gw)
        gw.wait_ready()
        return gw

    def close(self):
        for gw in self.gateways:
            gw.terminate()
        self.redis.cleanup()

    def open_all(self, gw, channel, users, presence=False, rate=0):
        """One client per user, each subscribed (acks collected after all were sent); with
        rate > 0, connected and subscribed at that many per second (paced)."""
        cs = []
        t0 = time.monotonic()
        for i, u in enumerate(users):
            if rate > 0:
                due = t0 + i / rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
            c = WSClient(gw.port, path="/ws?token=" + token(self.secret, u), timeout=60)
            msg = {"type": "subscribe", "channel": channel, "id": 1}
            if presence:
                msg["presence"] = True
            c.send_json(msg)
            cs.append(c)
        for c in cs:
            assert c.wait_reply(1, timeout=60)["type"] == "ack"
        return cs

    def stats(self, gw, channel):
        with WSClient(gw.port, path="/ws?token=" + token(self.secret, "probe")) as p:
            return p.request({"type": "presence_stats", "channel": channel})

    # ---- 1 -------------------------------------------------------------------------
    def joins(self, gw):
        rc, n = self.rc, self.a.clients
        res = {"join_fcall": [], "join_cpu": [], "leave_fcall": [], "leave_cpu": []}
        for r in range(self.a.rounds):
            ch = "room:bench%d" % r
            rc.command("CONFIG", "RESETSTAT")
            cpu0 = redis_cpu(rc)
            cs = self.open_all(gw, ch, ["u%d-%d" % (r, i) for i in range(n)])
            wait_until(lambda: self.stats(gw, ch).get("connections") == n, 30, what="all joined")
            fcalls_settle(rc)
            cpu1 = redis_cpu(rc)
            calls_j, usec_j = fcall_usec(rc)
            rc.command("CONFIG", "RESETSTAT")
            cpu1b = redis_cpu(rc)
            for c in cs:
                c.abort()
            wait_until(lambda: self.stats(gw, ch).get("connections") == 0, 30, what="all left")
            fcalls_settle(rc)
            cpu2 = redis_cpu(rc)
            calls_l, usec_l = fcall_usec(rc)
            res["join_fcall"].append(usec_j / max(calls_j, 1))
            res["join_cpu"].append((cpu1 - cpu0) * 1e6 / n)
            res["leave_fcall"].append(usec_l / max(calls_l, 1))
            res["leave_cpu"].append((cpu2 - cpu1b) * 1e6 / n)
            print("joins round %d: %d clients, %d FCALLs of %.1f us, Redis CPU %.1f us per join; leaves: "
                  "%d FCALLs of %.1f us, Redis CPU %.1f us per leave"
                  % (r + 1, n, calls_j, res["join_fcall"][-1], res["join_cpu"][-1], calls_l,
                     res["leave_fcall"][-1], res["leave_cpu"][-1]), flush=True)
        print("joins: FCALL time per join %s us, Redis CPU per join %s us (INFO cpu, every command, "
              "the probes' presence_stats included); per leave: FCALL %s us, Redis CPU %s us"
              % (spread(res["join_fcall"]), spread(res["join_cpu"]), spread(res["leave_fcall"]),
                 spread(res["leave_cpu"])), flush=True)

    # ---- 2 -------------------------------------------------------------------------
    def steady_one(self, gw, prefix, conns, channels):
        """wsbench holds conns anonymous clients on `channels` channels named prefix<i>;
        returns Redis CPU % of one core over the idle window."""
        wsb = self.a.wsbench
        cmd = [wsb, "--target", "wsgate", "--servers", "127.0.0.1:%d" % gw.port, "--scenario",
               "idle-memory", "--conns", str(conns), "--channels", str(channels), "--chan-prefix",
               prefix, "--settle", str(self.a.idle + 60), "--no-metrics", "--connect-timeout", "90"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            live = None
            while time.monotonic() < deadline:
                line = p.stderr.readline()
                if not line:
                    break
                m = re.search(r"(\d+) of (\d+) connections live", line)
                if m:
                    live = int(m.group(1))
                    break
            if live != conns:
                raise RuntimeError("wsbench: %s of %d clients live" % (live, conns))
            fcalls_settle(self.rc)
            time.sleep(1)
            c0, t0 = redis_cpu(self.rc), time.monotonic()
            time.sleep(self.a.idle)
            c1, t1 = redis_cpu(self.rc), time.monotonic()
            return (c1 - c0) * 100 / (t1 - t0)
        finally:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            fcalls_settle(self.rc)

    def steady(self, gw):
        rows = []
        for label, conns, chans in (("1,000 members, one channel", 1000, 1),
                                    ("19,000 members, one channel", 19000, 1),
                                    ("19,000 channels of one member", 19000, 19000)):
            got = {"presence": [], "none": []}
            for r in range(self.a.rounds):
                for kind, pfx in (("presence", "pres:"), ("none", "plain:")):
                    got[kind].append(self.steady_one(gw, "%ss%d%s%d-" % (pfx, conns, "c" if chans > 1 else "",
                                                                       r), conns, chans))
            ratios = [p / n if n > 0 else float("nan") for p, n in zip(got["presence"], got["none"])]
            rows.append((label, got, ratios))
            print("steady, %s: Redis CPU %% of a core with presence %s / without %s; "
                  "presence/without per round %s"
                  % (label, " / ".join("%.3f" % x for x in got["presence"]),
                     " / ".join("%.3f" % x for x in got["none"]), " / ".join("%.2f" % x for x in ratios)),
                  flush=True)
        return rows

    # ---- 3 -------------------------------------------------------------------------
    def events(self, gw_a, gw_b, rate):
        """Per round: --clients joiners on node B (all at once, or `rate` per second), then
        they all leave; node A's CPU per join and per leave event it delivered to
        --watchers watchers."""
        w, n = self.a.watchers, self.a.clients
        watchers = self.open_all(gw_a, "pres:ev", ["w%d" % i for i in range(w)], presence=True)
        # the watchers' own joins arrive first: read them away (bounded: 1,000 frames each)
        time.sleep(1)
        for c in watchers:
            c.inbox.clear()
            for _ in range(1000):
                try:
                    c.recv_json(timeout=0.05)
                except TimeoutError:
                    break
        pid = gw_a.proc.pid
        i0, t0 = proc_cpu(pid), time.monotonic()
        time.sleep(3)
        idle_rate = (proc_cpu(pid) - i0) / (time.monotonic() - t0)

        def collect(kind, prefix):
            got = [0] * w
            deadline = time.monotonic() + 180
            for i, c in enumerate(watchers):
                while got[i] < n and time.monotonic() < deadline:
                    try:
                        o = c.recv_json(timeout=5)
                    except TimeoutError:
                        break
                    if o.get("type") == kind and str(o.get("user", "")).startswith(prefix):
                        got[i] += 1
            return sum(got)

        per = {"join": [], "leave": []}
        ok = True
        for r in range(self.a.rounds):
            prefix = "j%d-%d-" % (rate, r)
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            joiners = self.open_all(gw_b, "pres:ev", [prefix + str(i) for i in range(n)], rate=rate)
            got = collect("join", prefix)
            cpu1, t1 = proc_cpu(pid), time.monotonic()
            net = (cpu1 - cpu0) - idle_rate * (t1 - t0)
            per["join"].append(net * 1e6 / max(got, 1))
            ok = ok and got == n * w
            print("events (joins %s) round %d: %d joins on node B, %d watchers on node A got %d of %d join events; "
                  "node A CPU %.3f s (less idle %.3f s) over %.1f s: %.2f us per join event delivered"
                  % ("%d/s" % rate if rate else "at once", r + 1, n, w, got, n * w, cpu1 - cpu0, net,
                     t1 - t0, per["join"][-1]), flush=True)
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            for c in joiners:
                c.abort()
            got = collect("leave", prefix)
            cpu1, t1 = proc_cpu(pid), time.monotonic()
            net = (cpu1 - cpu0) - idle_rate * (t1 - t0)
            per["leave"].append(net * 1e6 / max(got, 1))
            ok = ok and got == n * w
            print("events round %d: they left: %d of %d leave events; node A %.2f us per leave event "
                  "delivered" % (r + 1, got, n * w, per["leave"][-1]), flush=True)
            fcalls_settle(self.rc)
        print("events (joins %s): node A CPU per join event delivered %s us; per leave event %s us"
              % ("%d/s" % rate if rate else "at once", spread(per["join"]), spread(per["leave"])),
              flush=True)
        for c in watchers:
            c.abort()
        return ok

    # ---- 4 -------------------------------------------------------------------------
    def storm(self, gw):
        n, ch = self.a.storm, "pres:storm"
        key = "{gw:%s}:events" % ch
        seen = {"join": 0, "leave": 0, "other": 0}
        stop = threading.Event()
        watcher = self.open_all(gw, ch, ["watcher"], presence=True)[0]

        def read():
            end = time.monotonic() + 600
            while not stop.is_set() and time.monotonic() < end:
                try:
                    o = watcher.recv_json(timeout=0.5)
                except TimeoutError:
                    continue
                t = o.get("type")
                seen[t if t in ("join", "leave") else "other"] += 1
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        users = ["s%d" % i for i in range(n)]
        t = time.monotonic()
        cs = self.open_all(gw, ch, users)
        t_first = time.monotonic() - t
        wait_until(lambda: seen["join"] >= n, 60, what="the watcher saw every first join")
        mark = self.rc.command("XREVRANGE", key, "+", "-", "COUNT", "1")[0][0]
        seen.update(join=0, leave=0)
        t = time.monotonic()
        for c in cs:
            c.abort()
        cs = self.open_all(gw, ch, users)
        t_re = time.monotonic() - t
        # the old connections' leaves fall due a leave delay after they went
        time.sleep(max(0.0, self.a.storm_delay + 3 - (time.monotonic() - t)))
        st = self.stats(gw, ch)
        entries = self.rc.command("XRANGE", key, "(" + mark.decode(), "+")
        kinds = {}
        for _id, f in entries:
            d = dict(zip(f[::2], f[1::2]))
            k = d.get(b"event", b"?").decode()
            kinds[k] = kinds.get(k, 0) + 1
        storm_ok = not entries and seen["join"] == 0 and seen["leave"] == 0
        print("storm: %d clients joined in %.2f s; all dropped and were back (reconnected and "
              "subscribed) in %.2f s, leave delay %d s; after the delay + 3 s: stream entries %s, "
              "watcher join %d leave %d; counts connections %s users %s"
              % (n, t_first, t_re, self.a.storm_delay, kinds or "none", seen["join"], seen["leave"],
                 st.get("connections"), st.get("users")), flush=True)
        # control: the same counting sees real leaves
        k = self.a.control
        mark = entries[-1][0] if entries else mark
        for c in cs[:k]:
            c.abort()
        time.sleep(self.a.storm_delay + 3)
        entries = self.rc.command("XRANGE", key, "(" + (mark.decode() if isinstance(mark, bytes) else mark), "+")
        leaves = sum(1 for _id, f in entries if dict(zip(f[::2], f[1::2])).get(b"event") == b"leave")
        print("storm control: %d clients dropped for good: %d leave entries on the stream, watcher saw "
              "%d leaves" % (k, leaves, seen["leave"]), flush=True)
        stop.set()
        reader.join(5)
        for c in cs[k:] + [watcher]:
            c.abort()
        return storm_ok and leaves == k and seen["leave"] == k and t_re < self.a.storm_delay


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="joins,steady,events,storm")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3, choices=range(1, 10))
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--join-rates", default="0,200",
                    help="events: joins all at once (0) and/or paced at N per second")
    ap.add_argument("--storm", type=int, default=5000)
    ap.add_argument("--storm-delay", type=int, default=20)
    ap.add_argument("--control", type=int, default=100)
    ap.add_argument("--wsbench", default=os.environ.get("WSBENCH_BIN",
                                                        os.path.join(ROOT, "build-bench", "bench", "wsbench")))
    a = ap.parse_args()
    parts = a.parts.split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("presence bench: %s, load average %s, git %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), open("/proc/loadavg").read().split()[:3],
        subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True).stdout.strip()), flush=True)
    b = Bench(a)
    ok = True
    try:
        if "joins" in parts or "steady" in parts:
            gw = b.gateway(0, "p0", anonymous=True)
            if "joins" in parts:
                b.joins(gw)
            if "steady" in parts:
                b.steady(gw)
        if "events" in parts:
            for rate in (int(x) for x in a.join_rates.split(",")):
                ga, gb = b.gateway(0, "ea%d" % rate), b.gateway(0, "eb%d" % rate)
                ok = b.events(ga, gb, rate) and ok
                ga.terminate()
                gb.terminate()
        if "storm" in parts:
            ok = b.storm(b.gateway(a.storm_delay, "st")) and ok
    finally:
        b.close()
    if not ok:
        print("presence bench: a check failed (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
