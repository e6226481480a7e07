"""The node's memory has a bound whatever Redis sends (issue 8, defect 9): a worker that
falls behind (here: --coalesce-ms 1000 makes it drain its inbox once a second) holds at
most --max-inbox-bytes of mail; past it the node stops reading Redis. The node's RSS during
a PUBLISH flood stays within the formula of docs/ARCHITECTURE.md ("Backpressure and memory
bounds").

Run alone: WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_memory_bound
"""

import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import GatewayTestCase, T, rss_bytes, uniq  # noqa: E402

MIB = 1024 * 1024


class MemoryBoundTest(GatewayTestCase):
    @unittest.skipUnless(shutil.which("redis-benchmark"), "redis-benchmark not found")
    def test_slow_worker_inbox_is_bounded(self):
        redis = self.start_redis()
        qbytes, inbox, frame = 1 * MIB, 1 * MIB, 65536
        gw = self.start_gateway(redis.port, ["--coalesce-ms", "1000", "--max-inbox-bytes", str(inbox),
                                             "--queue-max-bytes", str(qbytes),
                                             "--queue-max-messages", "100000"])
        ch = uniq("mem")
        c = self.client(gw.port)
        self.assertEqual(c.subscribe(ch).get("type"), "ack")
        base = rss_bytes(gw.proc.pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_bytes(gw.proc.pid))
                time.sleep(0.02)

        def read():
            while not done.is_set():
                try:
                    c.recv_message(timeout=0.2)
                except Exception:  # noqa: BLE001 - timeouts, or Redis cut the node off
                    pass

        threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=read, daemon=True)]
        for th in threads:
            th.start()
        payload = "x" * 1000
        subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n", "150000", "-c", "4", "-P", "32", "-q",
                        "PUBLISH", "gw:" + ch, payload], capture_output=True, timeout=T(60), check=True)
        time.sleep(2.5)  # two more drains
        done.set()
        for th in threads:
            th.join(5)
        m = gw.metrics()
        # docs/ARCHITECTURE.md: connections x (2 x queue + frame) + channels x queue
        # + 32 x 256 KiB + workers x inbox + 2 x inbox (bus inbox, publishes in flight).
        bound = 1 * (2 * qbytes + frame) + 1 * qbytes + 32 * 256 * 1024 + 1 * inbox + 2 * inbox
        slack = 16 * MIB  # allocator, hiredis' read buffer, one frame per recipient in flight
        grew = peak[0] - base
        sys.stderr.write("\n[observed] RSS %.1f MiB -> peak %.1f MiB (+%.1f MiB); formula %.1f MiB + %.0f "
                         "slack; backpressure pauses %s, paused %.2fs\n"
                         % (base / MIB, peak[0] / MIB, grew / MIB, bound / MIB, slack / MIB,
                            m.get("wsgate_backpressure_pauses_total"),
                            m.get("wsgate_backpressure_seconds_total", 0)))
        self.assertGreaterEqual(m.get("wsgate_backpressure_pauses_total", 0), 1,
                                "the worker's inbox must have reached its bound")
        self.assertLess(grew, bound + slack, "RSS grew past the documented bound")
        self.assertTrue(gw.running)


if __name__ == "__main__":
    unittest.main()
