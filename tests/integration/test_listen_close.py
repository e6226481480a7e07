"""Each worker's listen socket is closed exactly once (issue 11, defect a).

lws used to adopt the listen fd as a raw-descriptor wsi and close it in
lws_context_destroy; a second close() by the worker afterwards could close a descriptor
that another thread had just been given. The node runs under strace with two workers in
standalone mode; the trace must show every listen fd closed once after its listen().

lws 4.1.6 on libuv itself closes its event pipe (an eventfd) twice while a context is
destroyed; the node cannot stop that, so it destroys contexts one at a time with no other
thread left that opens descriptors. The only close() -> EBADF allowed is therefore of an
eventfd whose number no thread was handed between its two closes.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from wsgate_harness import GatewayTestCase, Gateway, T, wait_until

# Calls that hand out a descriptor number, so a later close() of the same number can be
# told apart: a close of the listen fd's number after one of these is not the listen fd.
FD_CREATORS = ("socket", "accept", "accept4", "openat", "open", "pipe2", "eventfd2",
               "epoll_create1", "dup", "dup2", "dup3", "timerfd_create", "signalfd4",
               "socketpair", "memfd_create")
TRACED = ("close", "socket", "bind", "listen") + FD_CREATORS

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+(E[A-Z0-9]+))?")
_UNFINISHED = re.compile(r"^(.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. ([a-z0-9_]+) resumed>(.*)$")


def strace_usable():
    """None when strace can trace a child here, else the reason it cannot."""
    exe = shutil.which("strace")
    if not exe:
        return "strace is not installed (deploy/install-deps.sh installs it)"
    try:
        r = subprocess.run([exe, "-f", "-e", "trace=close", "-o", os.devnull, "/bin/true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "strace did not run: %r" % (e,)
    if r.returncode != 0:
        return ("strace cannot trace a child here (ptrace not permitted?): exit %d: %s"
                % (r.returncode, r.stderr.decode("utf-8", "replace").strip()[:300]))
    return None


def parse_strace(path):
    """strace -f output -> list of (line_no, pid, syscall, args, result, errno), in order of
    completion; "<unfinished ...>" / "<... resumed>" pairs are joined."""
    calls, pending = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for no, raw in enumerate(f, 1):
            m = _LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            u = _UNFINISHED.match(rest)
            if u:
                pending[pid] = u.group(1)
                continue
            r = _RESUMED.match(rest)
            if r:
                head = pending.pop(pid, r.group(1) + "(")
                rest = head + r.group(2)
            c = _CALL.match(rest)
            if c:
                result = None if c.group(3) == "?" else int(c.group(3))
                calls.append((no, pid, c.group(1), c.group(2), result, c.group(4)))
    return calls


def first_arg_fd(args):
    m = re.match(r"\s*(\d+)", args)
    return int(m.group(1)) if m else None


class ListenSocketCloseTest(GatewayTestCase):
    WORKERS = 2

    def test_each_listen_socket_closed_exactly_once(self):
        why = strace_usable()
        if why:
            raise unittest.SkipTest(why)
        trace_dir = tempfile.mkdtemp(prefix="wsgate-strace-")
        trace = os.path.join(trace_dir, "strace.out")
        wrapper = ["strace", "-f", "-e", "trace=" + ",".join(TRACED), "-o", trace]
        # LeakSanitizer cannot run under ptrace; the ASan stage checks leaks everywhere else.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "detect_leaks=0"}
        gw = Gateway(None, extra_args=["--workers", str(self.WORKERS)], env=env, wrapper=wrapper,
                     start=False, name="gw-strace")
        self.addCleanup(gw.cleanup)
        self.addCleanup(self._save_log, gw)
        self._gateways.append(gw)
        gw.start()
        gw.wait_ready()

        c = self.client(gw.port)
        self.assertEqual(c.ping().get("type"), "pong")

        # gw.proc is strace; the node is its only child. Signal the node itself, by PID.
        node_pid = wait_until(lambda: self.only_child(gw.proc.pid), T(5), what="wsgate PID")
        os.kill(node_pid, signal.SIGTERM)
        c.expect_close(timeout=10)  # the drain closes the client (1001)
        code = gw.wait_exit(gw.t(20))  # strace exits with the node's exit status
        self.assertEqual(code, 0, "node exit code under strace:\n%s" % gw.log_tail(3000))

        calls = parse_strace(trace)
        self.assertTrue(calls, "empty strace output %s" % trace)
        problems = self.check_listen_closes(calls)
        if problems:
            self.fail("listen sockets not closed exactly once (trace %s):\n  %s\n"
                      "relevant trace lines:\n%s"
                      % (trace, "\n  ".join(problems), self.excerpt(calls)))
        shutil.rmtree(trace_dir, ignore_errors=True)

    @staticmethod
    def only_child(pid):
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            return None
        return kids[0] if len(kids) == 1 else None

    def check_listen_closes(self, calls):
        problems = []
        for j, (no, pid, name, args, result, err) in enumerate(calls):
            if name == "close" and err == "EBADF":
                why = self.unsafe_double_close(calls, j)
                if why:
                    problems.append("line %d: pid %d close(%s) = -1 EBADF: %s"
                                    % (no, pid, args, why))
        bound = {}  # fd -> bind line, for fds a socket() gave out
        listens = []  # (index in calls, fd, line)
        for i, (no, pid, name, args, result, err) in enumerate(calls):
            fd = first_arg_fd(args)
            if name == "socket" and result is not None and result >= 0:
                bound.pop(result, None)
            elif name == "bind" and result == 0:
                bound[fd] = no
            elif name == "listen" and result == 0 and fd in bound:
                listens.append((i, fd, no))
        self.assertEqual(len(listens), self.WORKERS,
                         "want one bound+listening socket per worker, got %r"
                         % [(fd, no) for _, fd, no in listens])
        for i, fd, listen_no in listens:
            closes = []
            for no, pid, name, args, result, err in calls[i + 1:]:
                if name in FD_CREATORS and result == fd and closes:
                    break  # the number was handed out again after the listen fd was closed
                if name == "close" and first_arg_fd(args) == fd:
                    closes.append((no, pid, result, err))
            ok = [c for c in closes if c[2] == 0]
            if len(closes) != 1 or len(ok) != 1:
                problems.append("listen fd %d (listen() at line %d) closed %d times: %s"
                                % (fd, listen_no, len(closes),
                                   ", ".join("line %d pid %d -> %s" % (no, p, e or r)
                                             for no, p, r, e in closes)))
        return problems

    @staticmethod
    def unsafe_double_close(calls, j):
        """None when the EBADF close at calls[j] is lws' known double close of its own
        eventfd that could not have hit another descriptor; else why it is a defect."""
        fd = first_arg_fd(calls[j][3])
        first = None
        for i in range(j - 1, -1, -1):
            no, pid, name, args, result, err = calls[i]
            if name in FD_CREATORS and result == fd:
                if first is None:
                    return "closed a descriptor that was not open (no earlier close)"
                if name != "eventfd2":
                    return "double close of a %s descriptor (line %d)" % (name, no)
                return None
            if name == "close" and first_arg_fd(args) == fd and result == 0:
                if first is not None:
                    return "closed twice before"
                first = no
        return "closed a descriptor that was never opened in the trace"

    @staticmethod
    def excerpt(calls, limit=60):
        keep = [c for c in calls if c[2] in ("socket", "bind", "listen")
                or (c[2] == "close" and c[5] is not None)]
        return "\n".join("  %d: %d %s(%s) = %s %s" % (no, pid, name, args, r, e or "")
                         for no, pid, name, args, r, e in keep[:limit])


if __name__ == "__main__":
    unittest.main()
