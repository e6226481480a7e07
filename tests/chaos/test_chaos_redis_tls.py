"""The Redis faults of test_chaos_redis, with the nodes' link over TLS (rediss://, the
server verified against a CA minted for the run): the same traffic, the same faults and
the same assertions. Backends and the test's own commands use Redis' plain port.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_chaos_redis_tls
"""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_chaos_redis import RedisFaultTest  # noqa: E402
from wsgate_harness import Pki, TlsRedisServer  # noqa: E402

@unittest.skipUnless(shutil.which("openssl"), "needs openssl to mint the certificates")
class RedisFaultTlsTest(RedisFaultTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        cls.tls_ports = {}

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()
        super().tearDownClass()

    def start_redis(self, **kw):
        r = TlsRedisServer(self.pki, **kw)
        self.addCleanup(r.cleanup)
        self.tls_ports[r.port] = r.tls_port
        return r

    def start_gateway(self, redis_port, extra_args=(), ready=True, **kw):
        args = list(extra_args) + ["--redis-url", "rediss://localhost:%d" % self.tls_ports[redis_port],
                                   "--redis-tls-ca-file", self.pki.path("ca.crt")]
        return super().start_gateway(None, args, ready=ready, **kw)


del RedisFaultTest  # its plain cases run in test_chaos_redis, not a second time here


if __name__ == "__main__":
    unittest.main()
