"""A short scenario with the gateway under valgrind: no memory errors, no definite or
indirect leaks, clean exit 0 after SIGTERM. Runs only with WSGATE_VALGRIND=1.

Run alone: WSGATE_VALGRIND=1 WSGATE_BIN=build/gateway/wsgate python3 -m unittest -v test_valgrind
"""

import json
import os
import re
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsgate_harness import OP_TEXT, GatewayTestCase, wait_until  # noqa: E402

VALGRIND = ("valgrind --leak-check=full --show-leak-kinds=definite,indirect "
            "--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "
            "--track-fds=no --num-callers=30")
WAIT = 60  # seconds, for any single step under valgrind


@unittest.skipUnless(os.environ.get("WSGATE_VALGRIND") == "1", "set WSGATE_VALGRIND=1 to run")
class ValgrindTest(GatewayTestCase):
    def test_short_scenario_is_clean_under_valgrind(self):
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, ["--client-rate", "100000", "--client-burst", "100000",
                                             "--drain-timeout", "10"],
                                wrapper=VALGRIND, ready=False, name="valgrind")
        gw.wait_ready(timeout=120)
        ch = "vg:%s" % uuid.uuid4().hex[:8]
        clients = [self.client(gw.port, timeout=WAIT) for _ in range(10)]
        for c in clients:
            self.assertEqual(c.subscribe(ch, timeout=WAIT).get("type"), "ack")
        rc = redis.client(timeout=WAIT)
        self.addCleanup(rc.close)
        n = 20
        self.assertEqual(rc.pipeline([("PUBLISH", "gw:" + ch, json.dumps({"n": i}))
                                      for i in range(n)]), [1] * n)
        for c in clients:
            got = [m["data"] for m in c.recv_messages(n, timeout=WAIT)]
            self.assertEqual(got, [{"n": i} for i in range(n)])
        # A client publish and a few bad inputs.
        self.assertEqual(clients[0].publish(ch, {"from": "client"}, timeout=WAIT).get("type"), "ack")
        for c in clients:
            self.assertEqual(c.recv_message(timeout=WAIT)["data"], {"from": "client"})
        clients[1].send_text("{bad json")
        self.assertEqual(clients[1].recv_json(timeout=WAIT).get("code"), "bad_json")
        clients[1].send_binary(b"\x00\x01")
        self.assertEqual(clients[1].recv_json(timeout=WAIT).get("code"), "binary_not_supported")
        clients[1].send_frame(OP_TEXT, b'{"type":"ping","x":"\xff"}')
        self.assertEqual(clients[1].expect_close(timeout=WAIT)[0], 1007)
        clients[2].send_text('{"type":"subscribe","channel":"a b","id":9}')
        self.assertEqual(clients[2].recv_json(timeout=WAIT).get("code"), "bad_channel")
        # A slow-ish unsubscribe, then abrupt disconnects (RST) of subscribed clients.
        time.sleep(1)
        self.assertEqual(clients[3].unsubscribe(ch, timeout=WAIT).get("type"), "ack")
        for c in clients[4:7]:
            c.abort(rst=True)
        clients[7].close()
        wait_until(lambda: gw.metric("wsgate_connections") == 5, WAIT,
                   what="5 connections left (clients 0, 2, 3, 8, 9)")
        self.assertEqual(redis.publish("gw:" + ch, '"last"'), 1)
        for c in (clients[0], clients[2], clients[8], clients[9]):
            self.assertEqual(c.recv_message(timeout=WAIT)["data"], "last")
        code = gw.terminate(timeout=180)
        log = gw.log_text()
        self.assertIn("Memcheck", log, "the gateway did not run under valgrind")
        self.assertEqual(code, 0, "exit code under valgrind (99 = valgrind found errors)")
        self.assertIsNone(re.search(r"definitely lost: [1-9]", log), "definite leak")
        self.assertIsNone(re.search(r"indirectly lost: [1-9]", log), "indirect leak")
        self.assertRegex(log, r"ERROR SUMMARY: 0 errors")


if __name__ == "__main__":
    unittest.main()
