"""--max-connections holds under concurrent upgrades on several workers (issue 11, defect b).

The limit is checked at LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION but a connection is counted
only at LWS_CALLBACK_ESTABLISHED, so workers that check at the same moment all see room and
the node overshoots. Many more upgrades than the limit are written at once from several
threads to a node with several workers; at most the limit may get 101.
"""

import base64
import os
import selectors
import socket
import sys
import threading
import time
import unittest

from wsgate_harness import GatewayTestCase, NO_RATE_LIMIT, T, WSClient, wait_until

LIMIT = 100
ATTEMPTS = 400
WORKERS = 2
SENDERS = 8  # client threads writing upgrade requests, released together by a barrier
# Bursts per test; the first one that overshoots fails the test. Measured on 2 cores with
# today's code, one burst overshoots about 3 times in 10 (14 of 40), so 30 bursts (~6 s)
# miss the race with odds of about 0.7**30 = 2e-5.
ROUNDS = 30


def upgrade_request(port):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (port, key)).encode()


def burst(port, attempts, senders, timeout, settle=0.0):
    """Connects `attempts` sockets first, then writes all upgrade requests at once from
    `senders` threads. Returns (upgraded sockets, refused count, undecided count)."""
    socks = []
    try:
        for _ in range(attempts):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
    except OSError:
        for s in socks:
            s.close()
        raise
    if settle:
        time.sleep(settle)  # lets the workers accept every connection before the burst
    requests = [upgrade_request(port) for _ in socks]
    barrier = threading.Barrier(senders, timeout=timeout)
    errors = []

    def send(part):
        try:
            barrier.wait()
            for i in part:
                socks[i].sendall(requests[i])
        except (OSError, threading.BrokenBarrierError) as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(range(k, attempts, senders),), daemon=True)
               for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if errors or any(t.is_alive() for t in threads):
        for s in socks:
            s.close()
        raise AssertionError("sending the upgrade requests failed: %r" % errors[:3])

    # Read each answer up to the end of its status line/headers, or EOF/RST.
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    upgraded, refused = [], 0
    deadline = time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                bufs[s] += chunk
                if b"\r\n\r\n" not in bufs[s]:
                    continue
            sel.unregister(s)
            head = bufs.pop(s)
            if head.startswith(b"HTTP/1.1 101"):
                s.setblocking(True)
                upgraded.append(s)
            else:
                refused += 1
                s.close()
    undecided = len(bufs)
    for s in bufs:
        sel.unregister(s)
        s.close()
    sel.close()
    return upgraded, refused, undecided


class ConcurrentConnectionLimitTest(GatewayTestCase):
    def test_concurrent_upgrades_never_exceed_max_connections(self):
        gw = self.start_gateway(None, ["--workers", str(WORKERS),
                                       "--max-connections", str(LIMIT)] + NO_RATE_LIMIT)
        refused_key = 'wsgate_upgrades_refused_total{reason="limit"}'
        refused_before = 0
        results = []
        for rnd in range(ROUNDS):
            upgraded, refused, undecided = burst(gw.port, ATTEMPTS, SENDERS, T(5))
            try:
                results.append(len(upgraded))
                self.assertEqual(undecided, 0, "round %d: upgrades left without an answer" % rnd)
                self.assertLessEqual(
                    len(upgraded), LIMIT,
                    "round %d: %d of %d concurrent upgrades got 101 with --max-connections %d "
                    "on %d workers (refused %d); rounds so far: %r"
                    % (rnd, len(upgraded), ATTEMPTS, LIMIT, WORKERS, refused, results))
                self.assertEqual(len(upgraded), LIMIT,
                                 "round %d: the node must fill up to its limit" % rnd)
                m = wait_until(lambda: (lambda m: m if m.get(refused_key, 0) - refused_before
                                        >= refused else None)(gw.metrics()),
                               T(5), what="refusals counted in /metrics")
                counted = m.get(refused_key, 0) - refused_before
                self.assertEqual(counted, refused, "round %d: refusals in /metrics" % rnd)
                self.assertEqual(len(upgraded) + counted, ATTEMPTS,
                                 "round %d: 101s + counted refusals must equal the attempts" % rnd)
                self.assertEqual(m.get("wsgate_connections"), len(upgraded))
                refused_before += counted
            finally:
                for s in upgraded:
                    s.close()
            wait_until(lambda: gw.metric("wsgate_connections") == 0, T(5),
                       what="wsgate_connections back to 0 after closing every client")
        sys.stderr.write("\n[observed] 101s per round of %d upgrades (limit %d): %r\n"
                         % (ATTEMPTS, LIMIT, results))

        # No slot leaked: the limit can be filled again one by one, and not passed.
        clients = [self.client(gw.port) for _ in range(LIMIT)]
        for c in clients[::25]:
            self.assertEqual(c.ping().get("type"), "pong")
        with self.assertRaises(Exception):
            extra = WSClient(gw.port, timeout=3)
            extra.abort()
        for c in clients:
            c.abort()
        wait_until(lambda: gw.metric("wsgate_connections") == 0, T(5),
                   what="wsgate_connections back to 0")


if __name__ == "__main__":
    unittest.main()
