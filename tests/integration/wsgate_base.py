"""What every part of the wsgate test harness uses: the timeout scale (SCALE, T), unique
names, free ports, bounded waits, and the one deadline-bounded socket receive that the
Redis and WebSocket clients share. Standard library only; importing it has no side effects.
"""

import os
import socket
import time
import uuid


def _env_scale():
    if os.environ.get("WSGATE_TIMEOUT_SCALE"):
        return float(os.environ["WSGATE_TIMEOUT_SCALE"])
    return 10.0 if os.environ.get("WSGATE_WRAPPER") else 1.0
SCALE = _env_scale()
def T(seconds):
    """A timeout scaled for slow runs (valgrind wrapper)."""
    return seconds * SCALE
def uniq(prefix="c"):
    """A channel name no other test (or earlier run) uses."""
    return "%s:%s" % (prefix, uuid.uuid4().hex[:12])
def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; returns that value.
    Raises AssertionError with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last_exc = None
        except Exception as e:  # noqa: BLE001 - polled conditions may fail transiently
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


def recv_before(sock, deadline, nbytes, what):
    """One recv of at most nbytes from sock before deadline (time.monotonic()): the bytes,
    or b"" at EOF. Raises TimeoutError("<what> timed out") once the deadline has passed;
    connection errors propagate to the caller, which knows what they mean for it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("%s timed out" % what)
    sock.settimeout(remaining)
    try:
        return sock.recv(nbytes)
    except socket.timeout:
        raise TimeoutError("%s timed out" % what) from None


def read_until_close(sock, timeout):
    """Reads from sock until the peer closes (EOF or reset) or timeout seconds pass.
    Returns (bytes read, closed by the peer)."""
    buf, deadline = b"", time.monotonic() + timeout
    while True:
        try:
            chunk = recv_before(sock, deadline, 65536, "read")
        except TimeoutError:
            return buf, False
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
