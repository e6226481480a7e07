"""Helpers shared by the deployment tests (Python 3 standard library only).

- ROOT: the repository root.
- shared_tools(): the folder of the shared deployment scripts (podman, podman-compose, Helm
  and offline manifest validation for machines without Docker or Helm), or None.
- run(): subprocess.run with a mandatory timeout, text output, and a readable failure.
- log(): a timestamped progress line on stdout.
- skip(): exit 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE 77).
- pod_env(): the environment a rendered Deployment gives its container, as the kubelet
  builds it, with local directories standing in for the mounted Secrets.
- compose_up(), compose_logs(), compose_down(): a compose stack's start, diagnostics and
  clean end, shared by test_compose.py and test_compose_cluster.py (engine: their Engine).
- run_suite(): one TestCase's steps in order, fail-fast, under a watchdog.
"""

import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP_CODE = 77
_T0 = time.monotonic()


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - _T0, msg), flush=True)


def skip(reason):
    print("SKIPPED: " + reason, flush=True)
    sys.exit(SKIP_CODE)


def run(cmd, timeout, check=True, env=None, cwd=None, input=None):
    """Runs cmd (a list) and returns the CompletedProcess (stdout and stderr as text).
    Raises AssertionError with the tail of the output when check and the exit code is not 0,
    or when it runs longer than timeout seconds."""
    try:
        p = subprocess.run(cmd, cwd=cwd or ROOT, env=env, input=input, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-3000:] if isinstance(e.stdout, bytes) else (e.stdout or "")[-3000:]
        raise AssertionError("timed out after %ss: %s\n%s" % (timeout, " ".join(cmd), out))
    if check and p.returncode != 0:
        raise AssertionError("exit %d: %s\n--- stdout\n%s\n--- stderr\n%s" % (
            p.returncode, " ".join(cmd), p.stdout[-4000:], p.stderr[-4000:]))
    return p


def _git_toplevel():
    try:
        p = subprocess.run(["git", "-C", HERE, "rev-parse", "--show-toplevel"], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def shared_tools():
    """The shared deploy scripts: $WSGATE_DEPLOY_TOOLS, else <repo>/../shared/tools/deploy
    (the repository's clones, CI's included, have shared/ beside them)."""
    candidates = []
    if os.environ.get("WSGATE_DEPLOY_TOOLS"):
        candidates.append(os.environ["WSGATE_DEPLOY_TOOLS"])
    for top in (_git_toplevel(), ROOT):
        if top:
            candidates.append(os.path.join(top, "..", "shared", "tools", "deploy"))
    for c in candidates:
        if os.path.isfile(os.path.join(c, "make-base-image.sh")):
            return os.path.realpath(c)
    return None


def pod_env(deployment, configmap, dirs, secrets=None):
    """The environment of the (only) container of a rendered Deployment, built the way the
    kubelet builds it: configmap's data (envFrom), then each env entry in order, a
    secretKeyRef read from secrets[(name, key)], a value with $(NAME) of an earlier variable
    expanded (Kubernetes' dependent variables). Each mounted volume's mountPath is replaced
    by dirs[volume name], a local directory holding what the Secret would. fieldRef entries
    are left out. Returns a dict of the WSGATE_* (and other) variables the pod would see."""
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] + "/": dirs[m["name"]].rstrip("/") + "/" for m in c.get("volumeMounts", [])}
    env = {k: str(v) for k, v in configmap["data"].items()}
    for x in c["env"]:
        ref = x.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            env[x["name"]] = (secrets or {})[(ref["name"], ref["key"])]
        elif "value" in x:
            v = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), x["value"])
            for path, d in mounts.items():
                v = v.replace(path, d)
            env[x["name"]] = v
    return env


def compose_logs(engine, services, tail):
    """Prints the last tail lines of each service's containers; diagnostics only, never raises."""
    for svc in services:
        try:
            for name in engine.containers(svc):
                p = engine.ctl("logs", "--tail", str(tail), name, timeout=30, check=False)
                print("----- logs of %s\n%s%s" % (name, p.stdout, p.stderr), flush=True)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            print("(could not read logs of %s: %r)" % (svc, e))


def compose_up(engine, dump_logs):
    """Removes what earlier runs left, builds the image and starts the stack (each step timed).
    On any failure, the build's included, calls dump_logs() and takes the stack down before
    raising again: a half-started stack must not outlive the test."""
    log("removing leftovers of earlier runs (project %s)" % engine.project)
    engine.down()
    try:
        t = time.monotonic()
        engine.dc("build", timeout=900)
        log("compose build: %.1fs" % (time.monotonic() - t))
        t = time.monotonic()
        engine.dc("up", "-d", timeout=300)
        log("compose up -d: %.1fs" % (time.monotonic() - t))
    except BaseException:
        dump_logs()
        engine.down()
        raise


def compose_down(engine, clients, passed_all, dump_logs):
    """Closes the test's clients ([(client, node)]), prints the logs unless every step passed,
    takes the stack down and raises AssertionError if any container is left."""
    for c, _ in clients:
        c.close()
    if not passed_all:
        dump_logs()
    t = time.monotonic()
    engine.down()
    left = engine.containers()
    log("compose down: %.1fs; containers left: %r" % (time.monotonic() - t, left))
    if left:
        raise AssertionError("containers left after down: %r" % left)


def run_suite(case, name, watchdog_s):
    """Runs case's tests in name order, stopping at the first failure (each step needs the one
    before); SIGALRM after watchdog_s raises in the running step, so tearDownClass still cleans
    up before CTest's own timeout kills the process. Exits 0 when all passed, else 1."""
    if hasattr(signal, "SIGALRM"):
        def watchdog(signum, frame):
            raise TimeoutError("%s watchdog: %ss elapsed" % (name, watchdog_s))
        signal.signal(signal.SIGALRM, watchdog)
        signal.alarm(watchdog_s)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    result = unittest.TextTestRunner(verbosity=2, failfast=True).run(suite)
    n_fail = len(result.failures) + len(result.errors)
    print("%s: %d passed, %d failed" % (name, result.testsRun - n_fail, n_fail), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)
