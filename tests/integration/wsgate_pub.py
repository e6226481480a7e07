"""The backend side: publishing through the wsgate Redis Function (fn_keys,
fcall_publish), Publisher (a paced, bounded publisher thread that retries the same message
on failure), and parse_envelope for the history envelope Redis carries."""

import json
import re
import threading
import time

from wsgate_base import T  # noqa: F401


# --------------------------------------------------------------------------------------
# publishing with history, as a backend does (deploy/redis/wsgate.lua)


def fn_keys(channel):
    """The two keys of pub/sub channel `channel`'s history: {C}:meta and {C}:stream."""
    return "{%s}:meta" % channel, "{%s}:stream" % channel
def fcall_publish(rc, channel, payload, history="", ttl=""):
    """FCALL wsgate_publish on RedisClient rc; returns [offset, epoch, receivers]."""
    return rc.command("FCALL", "wsgate_publish", "2", *fn_keys(channel), channel, payload,
                      history, ttl)
class Publisher(threading.Thread):
    """A backend publishing {"n": i} for i in 1..count through FCALL wsgate_publish at
    `rate` messages/s. A failed call (Redis killed, stopped, cut off, or without the
    function right after a restart) is retried with the same n, never skipped, so every
    n is published exactly once as far as the publisher can tell. Bounded by count and
    by `limit` seconds."""

    def __init__(self, redis, channel, count, rate, pad=0, limit=60, history=""):
        super().__init__(daemon=True)
        self.redis, self.key, self.count, self.rate = redis, "gw:" + channel, count, rate
        self.pad = "x" * pad
        self.limit, self.history = limit, history
        self.acked = []  # (monotonic time, n, offset, epoch)
        self.errors = []  # (monotonic time, n, repr of the error)
        self.stop = threading.Event()

    def published(self):
        return len(self.acked)

    @property
    def offsets(self):
        return [a[2] for a in self.acked]

    def run(self):
        rc = None
        i = 1
        start = time.monotonic()
        deadline = start + T(self.limit)
        while i <= self.count and not self.stop.is_set() and time.monotonic() < deadline:
            due = start + (i - 1) / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            try:
                if rc is None:
                    # A backend that gives up on a call it cannot judge and sends it
                    # again publishes that n twice if the first call was only held
                    # (a stopped or paused Redis runs it later): wait long instead.
                    rc = self.redis.client(timeout=10)
                body = {"n": i, "pad": self.pad} if self.pad else {"n": i}
                r = fcall_publish(rc, self.key, json.dumps(body), self.history)
                self.acked.append((time.monotonic(), i, r[0], r[1].decode()))
                i += 1
            except Exception as e:  # noqa: BLE001 - any failure: retry the same n
                self.errors.append((time.monotonic(), i, repr(e)[:120]))
                if rc is not None:
                    rc.close()
                    rc = None
                time.sleep(0.05)
        if rc is not None:
            rc.close()
_ENVELOPE = re.compile(rb"\xffwsgate1 ([1-9][0-9]{0,19}) ([0-9A-Za-z_-]{1,32})\n", re.S)
def parse_envelope(raw):
    """None for a plain PUBLISH payload, else (offset, epoch, payload) of a history
    envelope (docs/PROTOCOL.md); raises ValueError for a reserved payload (leading
    0xFF/0xFE) that is not a version 1 envelope."""
    if not raw or raw[0] not in (0xFF, 0xFE):
        return None
    m = _ENVELOPE.match(raw)
    if not m or int(m.group(1)) > 2 ** 64 - 1:
        raise ValueError("malformed envelope %r" % raw[:60])
    return int(m.group(1)), m.group(2).decode(), raw[m.end():]
