#!/usr/bin/env python3
"""The Helm chart's Redis modes (helm/wsgate, values redis.*), exercised for real, offline,
with the helpers of test_helm.py:

- one Redis over TLS (rediss://, CA and client certificate from an existing Secret);
- Redis Sentinel (the Sentinels listed, both passwords from existing Secrets);
- Redis Cluster: seeds listed (redis+cluster://), with an ACL user whose password comes from
  an existing Secret by Kubernetes' $(VAR) expansion, over TLS (rediss+cluster://, the CA and
  client certificate from a Secret), and the URL form (a redis+cluster:// redis.url, or one in
  redis.existingSecret);

each `helm lint --strict`, rendered, validated offline (validate-manifests.sh), checked with
test_helm's essentials and for its exact env and volumes; the chart's checks and the schema
refuse mixed or incomplete Redis settings; NOTES.txt names the backend contract of each
mode. (test_helm_gateway.py starts a real gateway on the env rendered for a TLS cluster.)

Run alone: python3 tests/deploy/test_helm_redis.py
"""

import base64
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_helm  # noqa: E402
from test_helm import HelmChart, TOOLS, by_kind, helm_lint, helm_template, one, yaml  # noqa: E402
from deploytools import ROOT, log, run  # noqa: E402

SEEDS = ["redis-cluster-0.redis-cluster:6379", "redis-cluster-1.redis-cluster:6379",
         "redis-cluster-2.redis-cluster:6379"]
TLS_SECRET = ["--set", "redis.tls.existingSecret=redis-tls", "--set", "redis.tls.certKey=tls.crt",
              "--set", "redis.tls.keyKey=tls.key"]

# name -> helm flags
VALUE_SETS = {
    "defaults": [],
    # TLS to one Redis with mTLS, the material from an existing Secret.
    "redistls": ["--set", "redis.url=rediss://redis.example.com:6380/0"] + TLS_SECRET
                + ["--set", "redis.tls.serverName=redis.internal"],
    # Redis Sentinel: the Sentinels listed, both passwords from existing Secrets.
    "sentinel": ["--set-json", 'redis.sentinel.addresses=["sentinel-0.sentinel:26379","sentinel-1.sentinel:26379"]',
                 "--set", "redis.sentinel.masterName=cache", "--set", "redis.sentinel.db=2",
                 "--set", "redis.sentinel.masterPasswordSecret=redis-auth",
                 "--set", "redis.sentinel.existingSecret=sentinel-auth", "--set", "redis.sentinel.user=watcher"],
    # Redis Cluster, seeds only (no AUTH, no TLS).
    "cluster": ["--set-json", "redis.cluster.seeds=%s" % str(SEEDS).replace("'", '"')],
    # Seeds, an ACL user, its password from an existing Secret, TLS with mTLS from another.
    "clustertls": ["--set-json", "redis.cluster.seeds=%s" % str(SEEDS[:2]).replace("'", '"'),
                   "--set", "redis.cluster.tls=true", "--set", "redis.cluster.user=wsgate",
                   "--set", "redis.cluster.passwordSecret=redis-cluster-auth",
                   "--set", "redis.cluster.passwordKey=password"] + TLS_SECRET,
    # The default user's password (requirepass), no TLS.
    "clusterpass": ["--set-json", "redis.cluster.seeds=%s" % str(SEEDS[:1]).replace("'", '"'),
                    "--set", "redis.cluster.passwordSecret=redis-cluster-auth"],
    # The URL form: the whole rediss+cluster:// URL in values (stored in the chart's Secret) ...
    "clusterurl": ["--set-string", r"redis.url=rediss+cluster://:pw@redis-a:6380\,redis-b:6380"] + TLS_SECRET,
    # ... or in an existing Secret, with the CA from another.
    "clustersecret": ["--set", "redis.existingSecret=my-cluster-url", "--set", "redis.tls.existingSecret=redis-ca"],
}


class RedisModes(unittest.TestCase):
    # test_helm's checks of every manifest (probes, security, selectors, the URL's source).
    check_essentials = HelmChart.check_essentials

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wsgate-helm-redis-")
        cls.rendered = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def render(self, name):
        if name not in self.rendered:
            out = helm_template("rel", VALUE_SETS[name]).stdout
            path = os.path.join(self.tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(out)
            self.rendered[name] = (path, [d for d in yaml.safe_load_all(out) if d])
        return self.rendered[name]

    def env(self, name):
        e = self.check_essentials(name)
        return e, [x["name"] for x in e["c"]["env"]], {x["name"]: x for x in e["c"]["env"]}

    def url_secrets(self, docs):
        return [s for s in by_kind(docs, "Secret") if s["metadata"]["name"].endswith("-redis-url")]

    # ------------------------------------------------------------------ every mode
    def test_lint_validate_and_essentials_every_mode(self):
        for name in VALUE_SETS:
            with self.subTest(values=name):
                p = helm_lint(VALUE_SETS[name])
                self.assertEqual(p.returncode, 0, "helm lint --strict %s:\n%s%s" % (name, p.stdout, p.stderr))
                self.check_essentials(name)
                if TOOLS:
                    path, docs = self.render(name)
                    p = run(["bash", os.path.join(TOOLS, "validate-manifests.sh"), "--kube-version=1.31", path],
                            timeout=300, check=False)
                    self.assertEqual(p.returncode, 0, "%s:\n%s%s" % (name, p.stdout[-4000:], p.stderr[-2000:]))
                    self.assertIn("%d passed, 0 failed" % len(docs), p.stdout)
                    log("lint + validate-manifests %-14s %d objects ok" % (name, len(docs)))

    # ------------------------------------------------------------------ one Redis over TLS
    def test_redis_tls_from_secret(self):
        # The CA, client certificate and key of an existing Secret, mounted read-only and
        # named by the WSGATE_REDIS_TLS_* variables; the URL keeps its own Secret.
        e, _, env = self.env("redistls")
        self.assertEqual(env["WSGATE_REDIS_TLS_CA_FILE"]["value"], "/etc/wsgate/redis-tls/ca.crt")
        self.assertEqual(env["WSGATE_REDIS_TLS_CERT_FILE"]["value"], "/etc/wsgate/redis-tls/tls.crt")
        self.assertEqual(env["WSGATE_REDIS_TLS_KEY_FILE"]["value"], "/etc/wsgate/redis-tls/tls.key")
        self.assertEqual(env["WSGATE_REDIS_TLS_SERVER_NAME"]["value"], "redis.internal")
        self.assertIn("secretKeyRef", env["WSGATE_REDIS_URL"]["valueFrom"])
        (mount,) = [m for m in e["c"]["volumeMounts"] if m["name"] == "redis-tls"]
        self.assertEqual((mount["mountPath"], mount["readOnly"]), ("/etc/wsgate/redis-tls", True))
        (vol,) = [v for v in e["pod"]["volumes"] if v["name"] == "redis-tls"]
        self.assertEqual(vol["secret"]["secretName"], "redis-tls")
        self.assertEqual(vol["secret"]["defaultMode"], 0o444)
        self.assertEqual(sorted(i["key"] for i in vol["secret"]["items"]), ["ca.crt", "tls.crt", "tls.key"])
        # Off by default: no TLS variable, no mount.
        _, names, _ = self.env("defaults")
        self.assertEqual([n for n in names if n.startswith("WSGATE_REDIS_TLS")], [])

    # ------------------------------------------------------------------ Sentinel
    def test_redis_sentinel(self):
        # The URL is built from the listed Sentinels (no URL Secret), the master's password
        # is expanded into it from its Secret (declared before it), the Sentinels' password
        # comes from its own Secret.
        e, names, env = self.env("sentinel")
        self.assertEqual(env["WSGATE_REDIS_URL"]["value"],
                         "redis+sentinel://:$(REDIS_MASTER_PASSWORD)@sentinel-0.sentinel:26379,"
                         "sentinel-1.sentinel:26379/cache?db=2")
        self.assertLess(names.index("REDIS_MASTER_PASSWORD"), names.index("WSGATE_REDIS_URL"))
        self.assertEqual(env["REDIS_MASTER_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "redis-auth", "key": "redis-password"})
        self.assertEqual(env["WSGATE_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "sentinel-auth", "key": "sentinel-password"})
        self.assertEqual(env["WSGATE_REDIS_SENTINEL_USER"]["value"], "watcher")
        self.assertEqual(names.count("WSGATE_REDIS_URL"), 1)
        self.assertEqual(self.url_secrets(e["docs"]), [])
        _, names, _ = self.env("defaults")
        self.assertEqual([n for n in names if "SENTINEL" in n or "MASTER" in n], [])

    # ------------------------------------------------------------------ Redis Cluster
    def test_cluster_seeds(self):
        e, names, env = self.env("cluster")
        self.assertEqual(env["WSGATE_REDIS_URL"], {"name": "WSGATE_REDIS_URL",
                                                   "value": "redis+cluster://" + ",".join(SEEDS)})
        self.assertEqual(names.count("WSGATE_REDIS_URL"), 1)
        self.assertNotIn("REDIS_PASSWORD", names)
        self.assertEqual([n for n in names if n.startswith("WSGATE_REDIS_TLS")], [])
        self.assertEqual(self.url_secrets(e["docs"]), [], "no URL Secret: the seeds hold no secret")
        self.assertNotIn("redis-tls", [v["name"] for v in e["pod"].get("volumes", [])])

    def test_cluster_user_password_and_tls_from_secrets(self):
        e, names, env = self.env("clustertls")
        self.assertEqual(env["WSGATE_REDIS_URL"]["value"],
                         "rediss+cluster://wsgate:$(REDIS_PASSWORD)@" + ",".join(SEEDS[:2]))
        # Declared before the URL, so that the kubelet expands $(REDIS_PASSWORD) in it.
        self.assertLess(names.index("REDIS_PASSWORD"), names.index("WSGATE_REDIS_URL"))
        self.assertEqual(env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "redis-cluster-auth", "key": "password"})
        self.assertEqual(env["WSGATE_REDIS_TLS_CA_FILE"]["value"], "/etc/wsgate/redis-tls/ca.crt")
        self.assertEqual(env["WSGATE_REDIS_TLS_CERT_FILE"]["value"], "/etc/wsgate/redis-tls/tls.crt")
        self.assertEqual(env["WSGATE_REDIS_TLS_KEY_FILE"]["value"], "/etc/wsgate/redis-tls/tls.key")
        (vol,) = [v for v in e["pod"]["volumes"] if v["name"] == "redis-tls"]
        self.assertEqual(sorted(i["key"] for i in vol["secret"]["items"]), ["ca.crt", "tls.crt", "tls.key"])
        self.assertEqual(self.url_secrets(e["docs"]), [])

    def test_cluster_default_user_password(self):
        _, names, env = self.env("clusterpass")
        self.assertEqual(env["WSGATE_REDIS_URL"]["value"], "redis+cluster://:$(REDIS_PASSWORD)@" + SEEDS[0])
        self.assertEqual(env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "redis-cluster-auth", "key": "redis-password"})

    def test_cluster_url_form(self):
        e, _, env = self.env("clusterurl")
        ref = env["WSGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        secret = one(e["docs"], "Secret", ref["name"])
        self.assertEqual(base64.b64decode(secret["data"][ref["key"]]).decode(),
                         "rediss+cluster://:pw@redis-a:6380,redis-b:6380")
        self.assertEqual(env["WSGATE_REDIS_TLS_CA_FILE"]["value"], "/etc/wsgate/redis-tls/ca.crt")
        e, _, env = self.env("clustersecret")
        self.assertEqual(env["WSGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"],
                         {"name": "my-cluster-url", "key": "redis-url"})
        self.assertEqual(env["WSGATE_REDIS_TLS_CA_FILE"]["value"], "/etc/wsgate/redis-tls/ca.crt")
        self.assertEqual(self.url_secrets(e["docs"]), [])

    def test_notes_name_the_backend_contract_per_mode(self):
        """NOTES.txt (rendered through a copy of the chart, as test_helm does) tells a
        cluster's backends to SPUBLISH, and the others to PUBLISH."""
        copy = os.path.join(self.tmp, "chart-notes", "wsgate")
        if not os.path.isdir(copy):
            shutil.copytree(os.path.join(ROOT, "helm", "wsgate"), copy)
            shutil.copy(os.path.join(copy, "templates", "NOTES.txt"), os.path.join(copy, "notes.txt"))
            with open(os.path.join(copy, "templates", "zz-notes.yaml"), "w") as f:
                f.write('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n'
                        '{{ tpl (.Files.Get "notes.txt") . | indent 4 }}\n')
        for name, want, not_want in (
                ("cluster", ["SPUBLISH 'gw:demo'", "a plain PUBLISH reaches no pod", "Redis Cluster, seeds " + SEEDS[0]],
                 ["redis-cli -u"]),
                ("clusterurl", ["SPUBLISH 'gw:demo'", "URL from values"], ["redis-cli -u"]),
                ("sentinel", ["redis-cli -u <your redis url> PUBLISH", "Redis Sentinel, sentinel-0"], ["SPUBLISH"]),
                ("defaults", ["redis-cli -u <your redis url> PUBLISH", "\n\n3. Publish"], ["SPUBLISH"])):
            out = helm_template("rel", VALUE_SETS[name] + ["--show-only", "templates/zz-notes.yaml"], chart=copy).stdout
            notes = yaml.safe_load(out)["data"]["notes"]
            for n in want:
                self.assertIn(n, notes, name)
            for n in not_want:
                self.assertNotIn(n, notes, name)

    # ------------------------------------------------------------------ refused
    def test_schema_and_checks_reject_bad_redis_values(self):
        cases = [
            (["--set", "redis.tls.existingSecret=t"], "redis.tls.* needs a rediss:// redis.url"),
            (["--set", "redis.url=rediss://c", "--set", "redis.tls.existingSecret=t", "--set", "redis.tls.certKey=a"],
             "redis.tls.certKey and redis.tls.keyKey go together"),
            (["--set", "redis.url=rediss://c", "--set", "redis.tls.certKey=a", "--set", "redis.tls.keyKey=b"],
             "redis.tls.certKey needs redis.tls.existingSecret"),
            (["--set", "gateway.extraEnv.WSGATE_REDIS_TLS_CA_FILE=/ca"], "WSGATE_REDIS_TLS_CA_FILE"),
            (["--set", "redis.tls.verify=false"], "verify"),
            (["--set", "redis.sentinel.existingSecret=s"], "redis.sentinel.* needs redis.sentinel.addresses"),
            (["--set", "redis.url=redis+sentinel://s/m", "--set", "redis.sentinel.user=u"],
             "redis.sentinel.user needs redis.sentinel.existingSecret"),
            (["--set", "redis.dev.enabled=true", "--set-json", 'redis.sentinel.addresses=["s:1"]'],
             "exclude each other"),
            (["--set-json", 'redis.sentinel.addresses=["a,b"]'], "addresses"),
            (["--set", "gateway.extraEnv.WSGATE_REDIS_SENTINEL_PASSWORD=x"], "WSGATE_REDIS_SENTINEL_PASSWORD"),
            # Redis Cluster: the chart's checks ...
            (["--set", "redis.dev.enabled=true", "--set-json", 'redis.cluster.seeds=["c:1"]'],
             "redis.cluster.seeds and redis.dev.enabled exclude each other"),
            (["--set-json", 'redis.cluster.seeds=["c:1"]', "--set-json", 'redis.sentinel.addresses=["s:1"]'],
             "choose one Redis mode"),
            (["--set-json", 'redis.cluster.seeds=["c:1"]', "--set", "redis.cluster.user=u"],
             "redis.cluster.user needs redis.cluster.passwordSecret"),
            (["--set", "redis.cluster.tls=true"], "redis.cluster.* needs redis.cluster.seeds"),
            (["--set", "redis.cluster.passwordSecret=p"], "redis.cluster.* needs redis.cluster.seeds"),
            # TLS material needs TLS in the cluster mode too.
            (["--set-json", 'redis.cluster.seeds=["c:1"]', "--set", "redis.tls.existingSecret=t"],
             "redis.tls.* needs a rediss:// redis.url"),
            (["--set-string", r"redis.url=redis+cluster://a:1\,b:2", "--set", "redis.tls.existingSecret=t"],
             "redis.tls.* needs a rediss:// redis.url"),
            (["--set", "redis.url=cluster://a:1"], "redis+cluster://"),
            # ... and the schema (seed form, types, unknown keys).
            (["--set-json", 'redis.cluster.seeds=["c"]'], "redis.cluster.seeds"),
            (["--set-json", 'redis.cluster.seeds=["a:1,b:2"]'], "redis.cluster.seeds"),
            (["--set-json", 'redis.cluster.seeds=["u:p@c:1"]'], "redis.cluster.seeds"),
            (["--set-json", 'redis.cluster.seeds=["c:1","c:1"]'], "unique"),
            (["--set", "redis.cluster.seeds=c:1"], "redis.cluster.seeds"),
            (["--set-string", "redis.cluster.tls=yes"], "redis.cluster.tls"),
            (["--set", "redis.cluster.user=a:b"], "redis.cluster.user"),
            (["--set", "redis.cluster.password=x"], "password"),
            (["--set", "redis.mode=cluster"], "mode"),
        ]
        for flags, needle in cases:
            with self.subTest(flags=flags):
                p = helm_template("bad", flags, check=False)
                self.assertNotEqual(p.returncode, 0, "helm template accepted %s" % flags)
                self.assertIn(needle, p.stderr, p.stderr[-2000:])


def main():
    test_helm.HELM = test_helm.helm_cmd()
    log("helm: %s; shared scripts: %s" % ("helm on PATH" if test_helm.HELM == "helm" else "helm-render.sh", TOOLS))
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(RedisModes)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    n_fail = len(result.failures) + len(result.errors)
    print("deploy helm redis: %d passed, %d failed, %d skipped"
          % (result.testsRun - n_fail - len(result.skipped), n_fail, len(result.skipped)), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
