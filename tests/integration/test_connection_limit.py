"""--max-connections holds under concurrent upgrades on several workers (issue 11, defect b).

The limit is checked at LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION but a connection is counted
only at LWS_CALLBACK_ESTABLISHED, so workers that check at the same moment all see room and
the node overshoots. Many more upgrades than the limit are written at once from several
threads to a node with several workers; at most the limit may get 101.
"""

import sys
import unittest

from wsgate_harness import REFUSED, GatewayTestCase, NO_RATE_LIMIT, T, WSClient, burst_upgrades, wait_until

LIMIT = 100
ATTEMPTS = 400
WORKERS = 2
SENDERS = 8  # client threads writing upgrade requests, released together by a barrier
# Bursts per test; the first one that overshoots fails the test. Measured on 2 cores with
# today's code, one burst overshoots about 3 times in 10 (14 of 40), so 30 bursts (~6 s)
# miss the race with odds of about 0.7**30 = 2e-5.
ROUNDS = 30


def burst(port, attempts, senders, timeout):
    """attempts upgrades from one source address at once: (upgraded, refused, undecided)."""
    upgraded, refused, undecided = burst_upgrades(port, ["127.0.0.1"], attempts, senders, timeout)
    return upgraded["127.0.0.1"], refused["127.0.0.1"], undecided


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
        with self.assertRaises(REFUSED):
            extra = WSClient(gw.port, timeout=3)
            extra.abort()
        for c in clients:
            c.abort()
        wait_until(lambda: gw.metric("wsgate_connections") == 0, T(5),
                   what="wsgate_connections back to 0")


if __name__ == "__main__":
    unittest.main()
