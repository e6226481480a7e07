#!/usr/bin/env python3
"""The Helm chart's rendered pod environment runs a real gateway (deploytools.pod_env builds
it as the kubelet would, local directories standing in for the mounted Secrets):

- public keys (test_helm's "publickeys" values): PEM files minted by /usr/bin/python3's
  python3-cryptography in the key directory; the gateway loads both;
- a Redis Cluster over TLS with an ACL user whose password comes from a Secret
  (test_helm_redis' "clustertls" values): $(REDIS_PASSWORD) expanded into the URL, the CA and
  client certificate from the test PKI in the TLS directory, the seeds replaced by a real TLS
  cluster's (wsgate_cluster.TlsRedisCluster); the gateway becomes ready on every master,
  holds two TLS connections per master as the ACL user, and delivers an SPUBLISH.

Needs a gateway binary ($WSGATE_BIN, else build/gateway/wsgate) and Helm (as test_helm);
each case skips without what it needs (python3-cryptography; redis-server and openssl).

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 tests/deploy/test_helm_gateway.py
"""

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import test_helm  # noqa: E402
import test_helm_redis  # noqa: E402
from test_helm import TOOLS, by_kind, helm_template, one, yaml  # noqa: E402
from deploytools import ROOT, log, pod_env, run  # noqa: E402
from wsgate_harness import WSClient, free_port, http_get, wait_until  # noqa: E402

# Run by /usr/bin/python3 (Debian's python3-cryptography): one PEM public key per path, RSA 2048
# for the first, EC P-256 for the others (both families the gateway accepts).
MINT_PEMS = """
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
for i, path in enumerate(sys.argv[1:]):
    key = rsa.generate_private_key(65537, 2048) if i == 0 else ec.generate_private_key(ec.SECP256R1())
    with open(path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
"""


class RenderedGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.binary = os.environ.get("WSGATE_BIN") or os.path.join(ROOT, "build", "gateway", "wsgate")
        if not os.access(cls.binary, os.X_OK):
            raise unittest.SkipTest("no gateway binary (build/gateway/wsgate or $WSGATE_BIN)")
        cls.tmp = tempfile.mkdtemp(prefix="wsgate-helm-gw-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def render(self, flags):
        """(the gateway Deployment, its settings ConfigMap) of one value set."""
        docs = [d for d in yaml.safe_load_all(helm_template("rel", flags).stdout) if d]
        return next(d for d in by_kind(docs, "Deployment")), one(docs, "ConfigMap")

    def volume_dirs(self, dep, given):
        """A directory per Secret volume: given[name] when there, else a new one holding a
        random secret per item (the generated HMAC secret's volume, for one)."""
        dirs = dict(given)
        for v in dep["spec"]["template"]["spec"].get("volumes", []):
            if v["name"] not in dirs:
                dirs[v["name"]] = tempfile.mkdtemp(prefix="vol-" + v["name"] + "-", dir=self.tmp)
                for item in v["secret"].get("items", []):
                    with open(os.path.join(dirs[v["name"]], item["path"]), "w") as f:
                        f.write(base64.b64encode(os.urandom(48)).decode())
        return dirs

    def start(self, env, name):
        """Starts the gateway with env over the non-WSGATE_* environment of this process, on a
        free loopback port, text logs to a file. Returns (process, port, log reader)."""
        port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("WSGATE_")}
        full.update(env)
        full.update(WSGATE_LISTEN="127.0.0.1:%d" % port, WSGATE_NODE_ID=name, WSGATE_LOG_FORMAT="text")
        path = os.path.join(self.tmp, name + ".log")
        with open(path, "w") as err:
            proc = subprocess.Popen([self.binary], env=full, stdout=err, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop, proc)

        def log_text():
            with open(path) as f:
                return f.read()
        return proc, port, log_text

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        return proc.returncode

    def test_public_keys_load_in_the_gateway(self):
        if run(["/usr/bin/python3", "-c", "import cryptography"], timeout=30, check=False).returncode:
            self.skipTest("python3-cryptography is not installed for /usr/bin/python3")
        dep, cm = self.render(test_helm.VALUE_SETS["publickeys"][0])
        keydir = os.path.join(self.tmp, "jwt-keys")
        os.makedirs(keydir, exist_ok=True)
        (vol,) = dep["spec"]["template"]["spec"]["volumes"]
        run(["/usr/bin/python3", "-c", MINT_PEMS] + [os.path.join(keydir, i["path"]) for i in vol["secret"]["items"]],
            timeout=60)
        # The URL Secret the chart creates holds the default URL; a local (absent) Redis here.
        env = pod_env(dep, cm, {"jwt-keys": keydir},
                      secrets={("rel-wsgate-redis-url", "redis-url"): "redis://127.0.0.1:%d/0" % free_port()})
        proc, _, log_text = self.start(env, "helm-keys")
        wait_until(lambda: proc.poll() is not None or "module=access" in log_text(), 15, what="the access line")
        self.assertIsNone(proc.poll(), "gateway exited:\n" + log_text()[-2000:])
        self.assertIn('msg="access" keys=2 anonymous_subscribe=0 anonymous_publish=0', log_text(), log_text()[-3000:])

    def test_rendered_cluster_env_runs_a_gateway_on_a_tls_cluster(self):
        if not (shutil.which("redis-server") and shutil.which("openssl")):
            self.skipTest("needs redis-server and openssl")
        from wsgate_harness import Pki
        from wsgate_cluster_tls import TlsRedisCluster
        pki = Pki()
        self.addCleanup(pki.cleanup)
        password = "s3cret-@,pw"  # '@' and ',' are fine in a cluster URL's password
        cluster = TlsRedisCluster(pki, masters=3, replicas=0, password="admin-pw", acl_user=("wsgate", password))
        self.addCleanup(cluster.stop)
        # The TLS Secret's items, as the kubelet would write them.
        tlsdir = os.path.join(self.tmp, "redis-tls")
        os.makedirs(tlsdir, exist_ok=True)
        for src, dst in (("ca.crt", "ca.crt"), ("client.crt", "tls.crt"), ("client.key", "tls.key")):
            shutil.copy(pki.path(src), os.path.join(tlsdir, dst))
        dep, cm = self.render(test_helm_redis.VALUE_SETS["clustertls"])
        env = pod_env(dep, cm, self.volume_dirs(dep, {"redis-tls": tlsdir}),
                      secrets={("redis-cluster-auth", "password"): password})
        seeds = ",".join(test_helm_redis.SEEDS[:2])
        self.assertEqual(env["WSGATE_REDIS_URL"], "rediss+cluster://wsgate:%s@%s" % (password, seeds))
        # The seeds' names are the only thing this machine cannot resolve: real ones instead.
        masters = cluster.masters()
        env["WSGATE_REDIS_URL"] = env["WSGATE_REDIS_URL"].replace(
            seeds, ",".join("localhost:%d" % m.tls_port for m in masters[:2]))
        proc, port, log_text = self.start(env, "helm-cluster")
        wait_until(lambda: proc.poll() is not None or http_get(port, "/readyz", 2)[0] == 200, 20,
                   what="the gateway ready on the TLS cluster")
        self.assertIsNone(proc.poll(), "gateway exited:\n" + log_text()[-3000:])
        for m in masters:  # two TLS connections per master, logged in as the ACL user
            conns = [ln for ln in m.command("CLIENT", "LIST").decode().splitlines() if " user=wsgate " in ln]
            self.assertEqual(len(conns), 2, (m.addr, conns))
            self.assertTrue(all(" laddr=%s " % m.tls_addr in ln for ln in conns), conns)
        ws = WSClient(port, timeout=5)
        self.addCleanup(ws.abort)
        self.assertEqual(ws.subscribe("demo-helm")["type"], "ack")
        key = "gw:demo-helm"
        cluster.command_for_key(key, "SPUBLISH", key, '{"via":"helm"}')
        self.assertEqual(ws.recv_message(timeout=5)["data"], {"via": "helm"})
        self.assertNotIn(password, log_text(), "the password is never logged")
        self.assertEqual(self.stop(proc), 0, log_text()[-2000:])
        log("rendered clustertls env: gateway ready on a 3-master TLS cluster, SPUBLISH delivered")


def main():
    test_helm.HELM = test_helm.helm_cmd()
    log("helm: %s; shared scripts: %s" % ("helm on PATH" if test_helm.HELM == "helm" else "helm-render.sh", TOOLS))
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(RenderedGateway)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    n_fail = len(result.failures) + len(result.errors)
    print("deploy helm gateway: %d passed, %d failed, %d skipped"
          % (result.testsRun - n_fail - len(result.skipped), n_fail, len(result.skipped)), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
