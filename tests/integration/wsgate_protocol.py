"""What the protocol suites share (test_protocol.py: one node's replies and errors,
test_protocol_limits.py: rate, connection, idle and size limits and reserved channels):
ProtocolMixin, the assertions on replies and errors, mixed into a GatewayTestCase.
The suites run on one redis-server, or on a Redis Cluster / over TLS when
WSGATE_TEST_REDIS_CLUSTER=1 / WSGATE_TEST_REDIS_TLS=1 (wsgate_proc.new_redis).
"""

import json


class ProtocolMixin:
    def assert_reply(self, reply, rtype, rid):
        self.assertIsInstance(reply, dict, reply)
        self.assertEqual(reply.get("type"), rtype, reply)
        self.assertEqual(reply.get("id"), rid, reply)

    def assert_error(self, reply, code, rid=None):
        """rid None: the error must carry no id."""
        self.assertIsInstance(reply, dict, reply)
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), code, reply)
        self.assertIsInstance(reply.get("message"), str, reply)
        if rid is None:
            self.assertNotIn("id", reply, reply)
        else:
            self.assertEqual(reply.get("id"), rid, reply)

    def assert_alive(self, c, label=""):
        """The connection answers a ping, and the pong is the very next frame."""
        pid = c.new_id() + 1000000
        c.send_json({"type": "ping", "id": pid})
        r = c.recv_json(timeout=5)
        self.assertEqual(r.get("type"), "pong", "%s: expected pong, got %r" % (label, r))
        self.assertEqual(r.get("id"), pid, "%s: %r" % (label, r))

    def send_bad(self, c, payload, code, rid=None, label=None):
        """Sends one bad text message (str, or an object to encode), expects exactly one
        error, then proves the same connection still works."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        c.send_text(text)
        r = c.recv_json(timeout=5)
        self.assert_error(r, code, rid)
        self.assert_alive(c, label or text[:80])
