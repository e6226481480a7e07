#!/usr/bin/env python3
"""The Helm chart (helm/wsgate), exercised for real, offline.

- `helm lint --strict` with the default values and with other value sets;
- `helm template` with the defaults and with several value sets (HPA, ServiceMonitor,
  Ingress, existing Secret, development Redis, a production-like values file);
- every rendered set passes offline schema validation (validate-manifests.sh: Kubernetes
  OpenAPI schemas, unknown fields, label/selector consistency);
- the essentials are asserted on the parsed manifests: probes on the right paths and port,
  grace period longer than preStop + drain, non-root, read-only root filesystem, no
  privilege escalation, capabilities dropped, seccomp, resources, topology spread, selectors
  matching labels, PDB present, rolling update that keeps capacity, Redis URL from a Secret;
- values.schema.json rejects wrong types and unknown keys, and the chart's own checks reject
  settings that would break the drain or the Redis link (helm template must fail);
- (TLS, Sentinel and Redis Cluster values: test_helm_redis.py, which reuses these helpers)
- public keys (access.jwt.publicKeys): a Secret volume of <kid>.pem items, mounted read-only,
  named by WSGATE_JWT_PUBLIC_KEY_FILES; kids without a Secret and bad types are refused
  (test_helm_gateway.py starts a real gateway on that rendered env);
- NOTES.txt renders.

Uses `helm` when it is on PATH, else the shared helm-render.sh (the real Helm 3 binary,
fetched once); exits 77 (skipped) when neither is available. validate-manifests.sh comes
from the shared scripts only; without them that check is skipped with a message.
Needs python3-yaml.
"""

import base64
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploytools import ROOT, log, run, shared_tools, skip  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover - python3-yaml is in deploy/install-deps.sh
    skip("python3-yaml is not installed (deploy/install-deps.sh installs it)")

CHART = os.path.join(ROOT, "helm", "wsgate")
TOOLS = shared_tools()
KUBE_VERSION = "1.31.0"

PROD_VALUES = """
replicaCount: 5
image:
  repository: example/wsgate
  tag: "1.2.3"
  pullPolicy: Always
imagePullSecrets:
  - name: regcred
gateway:
  port: 9000
  drainTimeoutSeconds: 45
  workers: 2
  logLevel: warn
  allowedOrigins:
    - https://app.example.com
    - "https://*.example.org"
  maxConnectionsPerIp: 50
  extraEnv:
    WSGATE_IDLE_TIMEOUT: 90
    WSGATE_QUEUE_MAX_BYTES: "8388608"
shutdown:
  preStopSleepSeconds: 10
service:
  type: LoadBalancer
  port: 443
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: nlb
podAnnotations:
  team: realtime
podLabels:
  tier: edge
nodeSelector:
  kubernetes.io/os: linux
tolerations:
  - key: dedicated
    operator: Equal
    value: gateways
    effect: NoSchedule
topologySpread:
  whenUnsatisfiable: DoNotSchedule
  topologyKeys: [kubernetes.io/hostname]
podDisruptionBudget:
  maxUnavailable: "25%"
rollingUpdate:
  maxSurge: "50%"
priorityClassName: high
"""

# name -> (helm flags, validate-manifests flags)
VALUE_SETS = {
    "defaults": ([], []),
    "hpa": (["--set", "autoscaling.enabled=true", "--set", "autoscaling.targetMemoryUtilizationPercentage=80"], []),
    "servicemonitor": (["--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=prom"],
                       ["--allow-unknown-kinds"]),
    "ingress": (["--set", "ingress.enabled=true", "--set", "ingress.tls[0].secretName=wsgate-tls",
                 "--set", "ingress.tls[0].hosts[0]=wsgate.example.com"], []),
    "existingsecret": (["--set", "redis.existingSecret=my-redis", "--set", "redis.existingSecretKey=url"], []),
    "devredis": (["--set", "redis.dev.enabled=true"], []),
    "tokensonly": (["--set-json", "access.anonymousSubscribe=[]", "--set-json", "access.anonymousPublish=[]",
                    "--set", "access.jwt.existingSecret=my-jwt", "--set", "access.jwt.audience=wsgate"], []),
    "api": (["--set", "api.existingSecret=wsgate-api-keys", "--set", "api.listen=8081"], []),
    # TLS, Sentinel and Redis Cluster value sets: test_helm_redis.py.
    # Public keys only: no HMAC secret, no anonymous rights (the keys alone are access).
    "publickeys": (["--set-json", "access.anonymousSubscribe=[]", "--set-json", "access.anonymousPublish=[]",
                    "--set", "access.jwt.generateHmacSecret=false",
                    "--set", "access.jwt.publicKeys.existingSecret=wsgate-jwt-keys",
                    "--set-json", 'access.jwt.publicKeys.kids=["2026-01","2026-07"]'], []),
    # Public keys beside the generated HMAC secret and the API key file: three Secret volumes.
    "keysandhmac": (["--set", "access.jwt.publicKeys.existingSecret=wsgate-jwt-keys",
                     "--set", "access.jwt.publicKeys.kids[0]=ec.p256",
                     "--set", "api.existingSecret=wsgate-api-keys"], []),
    "grafana": (["--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.annotations.grafana_folder=realtime"], []),
    "prod": (["-f", "@PROD"], []),
    "everything": (["--set", "autoscaling.enabled=true", "--set", "serviceMonitor.enabled=true",
                    "--set", "ingress.enabled=true", "--set", "redis.dev.enabled=true",
                    "--set", "serviceAccount.create=false", "--set", "podDisruptionBudget.enabled=false",
                    "--set", "topologySpread.enabled=false", "--set", "fullnameOverride=gw"],
                   ["--allow-unknown-kinds"]),
}


def helm_cmd():
    if shutil.which("helm") and run(["helm", "version", "--short"], timeout=30, check=False).returncode == 0:
        return "helm"
    if TOOLS:
        return "shared"
    skip("helm is not installed and the shared deploy scripts (../shared/tools/deploy beside the "
         "repository, or $WSGATE_DEPLOY_TOOLS) are not there")


HELM = None


def helm_template(release, flags, chart=CHART, check=True):
    if HELM == "helm":
        cmd = ["helm", "template", release, chart]
    else:
        cmd = ["bash", os.path.join(TOOLS, "helm-render.sh"), release, chart]
    return run(cmd + ["--kube-version", KUBE_VERSION] + flags, timeout=180, check=check)


def helm_lint(flags):
    if HELM == "helm":
        cmd = ["helm", "lint", "--strict", CHART]
    else:
        cmd = ["bash", os.path.join(TOOLS, "helm-render.sh"), "--lint", CHART]
    return run(cmd + flags, timeout=180, check=False)


def by_kind(docs, kind):
    return [d for d in docs if d and d.get("kind") == kind]


def one(docs, kind, name=None):
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError("expected one %s%s, found %d" % (kind, " " + name if name else "", len(found)))
    return found[0]


def subset(sel, labels):
    return all(labels.get(k) == v for k, v in sel.items())


class HelmChart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wsgate-helm-")
        cls.prod_values = os.path.join(cls.tmp, "prod-values.yaml")
        with open(cls.prod_values, "w") as f:
            f.write(PROD_VALUES)
        cls.rendered = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def flags(self, name):
        return [self.prod_values if f == "@PROD" else f for f in VALUE_SETS[name][0]]

    def render(self, name):
        """Renders a value set once; returns (path of the manifest file, parsed documents)."""
        if name not in self.rendered:
            out = helm_template("rel", self.flags(name)).stdout
            path = os.path.join(self.tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(out)
            docs = [d for d in yaml.safe_load_all(out) if d]
            self.assertTrue(docs, "nothing rendered for %s" % name)
            self.rendered[name] = (path, docs)
        return self.rendered[name]

    # ------------------------------------------------------------------ lint
    def test_lint_strict(self):
        for flags in ([], ["--set", "redis.dev.enabled=true"], ["-f", self.prod_values],
                      ["--set", "autoscaling.enabled=true", "--set", "ingress.enabled=true"],
                      self.flags("publickeys")):
            p = helm_lint(flags)
            self.assertEqual(p.returncode, 0, "helm lint --strict %s:\n%s%s" % (flags, p.stdout, p.stderr))
            self.assertIn("0 chart(s) failed", p.stdout)

    # ------------------------------------------------------------------ offline validation
    def test_validate_every_value_set(self):
        if not TOOLS:
            self.skipTest("validate-manifests.sh: shared deploy scripts not found")
        for name in VALUE_SETS:
            with self.subTest(values=name):
                path, docs = self.render(name)
                p = run(["bash", os.path.join(TOOLS, "validate-manifests.sh"), "--kube-version=1.31"]
                        + VALUE_SETS[name][1] + [path], timeout=300, check=False)
                self.assertEqual(p.returncode, 0, "%s:\n%s%s" % (name, p.stdout[-4000:], p.stderr[-2000:]))
                self.assertIn("%d passed, 0 failed" % len(docs), p.stdout)
                log("validate-manifests %-15s %d objects ok" % (name, len(docs)))

    # ------------------------------------------------------------------ essentials, every set
    def check_essentials(self, name):
        _, docs = self.render(name)
        dep = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["labels"].get(
            "app.kubernetes.io/component") == "gateway")
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        self.assertTrue(subset(spec["selector"]["matchLabels"], labels), "Deployment selector vs pod labels")
        (c,) = pod["containers"]
        # The gateway's settings; the optional Grafana dashboard is a ConfigMap of its own.
        settings = one([d for d in docs if not d["metadata"]["name"].endswith("-dashboard")], "ConfigMap")
        cm = settings["data"]
        drain = int(cm["WSGATE_DRAIN_TIMEOUT"])
        port = int(cm["WSGATE_LISTEN"].rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["http"], port, "container port = WSGATE_LISTEN port")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertIn(get["port"], ("http", port))
        self.assertEqual(c["lifecycle"]["preStop"]["exec"]["command"][0], "sleep")
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreater(pod["terminationGracePeriodSeconds"], pre_stop + drain,
                           "grace period must exceed preStop sleep + drain timeout")
        psc, csc = pod["securityContext"], c["securityContext"]
        self.assertTrue(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"))
        self.assertNotEqual(psc.get("runAsUser", csc.get("runAsUser", 1)), 0)
        self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
        self.assertIs(csc["readOnlyRootFilesystem"], True)
        self.assertIs(csc["allowPrivilegeEscalation"], False)
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertTrue(c["resources"].get("requests") and c["resources"].get("limits"))
        self.assertEqual(spec["strategy"]["type"], "RollingUpdate")
        self.assertEqual(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        for tsc in pod.get("topologySpreadConstraints", []):
            self.assertTrue(subset(tsc["labelSelector"]["matchLabels"], labels))
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["WSGATE_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        # The URL comes from a Secret; only a Sentinel or cluster seed list (no secret in it)
        # is a plain value, the password expanded into it from its own Secret (declared first).
        ref = env["WSGATE_REDIS_URL"].get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            url = env["WSGATE_REDIS_URL"]["value"]
            self.assertTrue(url.startswith(("redis+sentinel://", "rediss+sentinel://", "redis+cluster://",
                                            "rediss+cluster://")), url)
            userinfo = url.split("://", 1)[1].split("@", 1)[0] if "@" in url else ""
            self.assertTrue(userinfo in ("", ":$(REDIS_MASTER_PASSWORD)") or
                            userinfo.endswith(":$(REDIS_PASSWORD)"), url)
            names = [x["name"] for x in c["env"]]
            for var in ("REDIS_MASTER_PASSWORD", "REDIS_PASSWORD"):
                if "$(%s)" % var in url:
                    self.assertIn("secretKeyRef", env[var]["valueFrom"])
                    self.assertLess(names.index(var), names.index("WSGATE_REDIS_URL"))
        self.assertEqual(c["envFrom"][0]["configMapRef"]["name"], settings["metadata"]["name"])
        # The publish API's own Service (api.listen) selects the gateway pods too.
        def is_api(s):
            return s["metadata"]["name"].endswith("-api")
        svc = next(s for s in by_kind(docs, "Service") if subset(s["spec"]["selector"], labels)
                   and not is_api(s))
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "http")
        for s in by_kind(docs, "Service"):  # no Service mixes gateway and redis pods
            if s is not svc and not is_api(s):
                self.assertFalse(subset(s["spec"]["selector"], labels), s["metadata"]["name"])
        sa = pod["serviceAccountName"]
        if by_kind(docs, "ServiceAccount"):
            self.assertEqual(one(docs, "ServiceAccount")["metadata"]["name"], sa)
        return dict(docs=docs, dep=dep, pod=pod, c=c, labels=labels, svc=svc, ref=ref, drain=drain,
                    port=port)

    def test_essentials_every_value_set(self):
        for name in VALUE_SETS:
            with self.subTest(values=name):
                self.check_essentials(name)

    def test_defaults(self):
        e = self.check_essentials("defaults")
        docs = e["docs"]
        self.assertEqual(e["dep"]["spec"]["replicas"], 3)
        self.assertEqual(e["drain"], 10)
        self.assertEqual(e["port"], 8080)
        self.assertGreater(e["pod"]["terminationGracePeriodSeconds"], 10)
        pdb = one(docs, "PodDisruptionBudget")
        self.assertTrue(subset(pdb["spec"]["selector"]["matchLabels"], e["labels"]))
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertEqual(by_kind(docs, "HorizontalPodAutoscaler"), [])
        self.assertEqual(by_kind(docs, "Ingress"), [])
        self.assertEqual(by_kind(docs, "ServiceMonitor"), [])
        secret = one(docs, "Secret", e["ref"]["name"])
        self.assertEqual(base64.b64decode(secret["data"][e["ref"]["key"]]).decode(), "redis://redis:6379/0")
        keys = {t["topologyKey"] for t in e["pod"]["topologySpreadConstraints"]}
        self.assertEqual(keys, {"kubernetes.io/hostname", "topology.kubernetes.io/zone"})
        self.assertIs(e["pod"]["automountServiceAccountToken"], False)
        self.assertEqual(e["c"]["image"], "wsgate:0.1.0")
        cm = one(docs, "ConfigMap")["data"]
        self.assertEqual(cm["WSGATE_ALLOWED_ORIGINS"], "", "default: the same-host Origin rule")
        self.assertEqual(cm["WSGATE_MAX_CONNECTIONS_PER_IP"], "0")
        # History everywhere, bounded per client (docs/SECURITY.md, "Redis cost").
        self.assertEqual(cm["WSGATE_HISTORY_CHANNELS"], "*")
        self.assertEqual(cm["WSGATE_CLIENT_STORE_BYTES"], "4194304")
        self.assertEqual(cm["WSGATE_DEMO_PAGE"], "0", "the chart serves no demo page by default")
        self.assertEqual(cm["WSGATE_MAX_HTTP_CONNECTIONS_PER_IP"], "0", "behind an Ingress clients share an address")

    def test_hpa(self):
        e = self.check_essentials("hpa")
        hpa = one(e["docs"], "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": e["dep"]["metadata"]["name"]})
        self.assertNotIn("replicas", e["dep"]["spec"], "the HPA owns the replica count")
        self.assertEqual(sorted(m["resource"]["name"] for m in hpa["spec"]["metrics"]), ["cpu", "memory"])

    def test_servicemonitor(self):
        e = self.check_essentials("servicemonitor")
        sm = one(e["docs"], "ServiceMonitor")
        self.assertTrue(subset(sm["spec"]["selector"]["matchLabels"], e["svc"]["metadata"]["labels"]))
        self.assertEqual(sm["spec"]["endpoints"][0]["port"], e["svc"]["spec"]["ports"][0]["name"])
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")

    def test_grafana_dashboard(self):
        # Off by default; on, a ConfigMap with the sidecar's label holding deploy/grafana/wsgate.json as is.
        self.assertEqual([d for d in self.check_essentials("defaults")["docs"]
                          if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")], [])
        e = self.check_essentials("grafana")
        cm = [d for d in e["docs"] if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
        self.assertEqual(len(cm), 1)
        cm = cm[0]
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "realtime"})
        with open(os.path.join(ROOT, "deploy", "grafana", "wsgate.json"), encoding="utf-8") as f:
            self.assertEqual(json.loads(cm["data"]["wsgate.json"]), json.load(f))

    def test_ingress(self):
        e = self.check_essentials("ingress")
        ing = one(e["docs"], "Ingress")
        ann = ing["metadata"]["annotations"]
        self.assertGreaterEqual(int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]), 3600)
        self.assertGreaterEqual(int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]), 3600)
        backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        self.assertEqual(backend["name"], e["svc"]["metadata"]["name"])
        self.assertEqual(backend["port"]["name"], e["svc"]["spec"]["ports"][0]["name"])
        self.assertEqual(ing["spec"]["tls"][0]["hosts"], ["wsgate.example.com"])

    def test_existing_secret(self):
        e = self.check_essentials("existingsecret")
        self.assertEqual(e["ref"], {"name": "my-redis", "key": "url"})
        self.assertEqual([s for s in by_kind(e["docs"], "Secret") if not s["metadata"]["name"].endswith("-jwt")],
                         [], "no Redis Secret of our own with an existing one")

    def test_access_defaults(self):
        # The development setting: anonymous demo* channels (the demo page) and a generated
        # HMAC secret mounted as a file, so tokens work too; nothing else is open.
        e = self.check_essentials("defaults")
        cm = one(e["docs"], "ConfigMap")["data"]
        self.assertEqual(cm["WSGATE_ANONYMOUS_SUBSCRIBE"], "demo*")
        self.assertEqual(cm["WSGATE_ANONYMOUS_PUBLISH"], "demo*")
        env = {v["name"]: v for v in e["c"]["env"]}
        path = env["WSGATE_JWT_HMAC_SECRET_FILE"]["value"]
        (mount,) = e["c"]["volumeMounts"]
        self.assertTrue(path.startswith(mount["mountPath"] + "/"))
        self.assertIs(mount["readOnly"], True)
        vol = next(v for v in e["pod"]["volumes"] if v["name"] == mount["name"])
        secret = one(e["docs"], "Secret", vol["secret"]["secretName"])
        (item,) = vol["secret"]["items"]
        self.assertEqual(item["path"], path.rsplit("/", 1)[1])
        self.assertGreaterEqual(len(base64.b64decode(secret["data"][item["key"]])), 32)

    def test_access_tokens_only(self):
        e = self.check_essentials("tokensonly")
        cm = one(e["docs"], "ConfigMap")["data"]
        self.assertEqual(cm["WSGATE_ANONYMOUS_SUBSCRIBE"], "")
        self.assertEqual(cm["WSGATE_JWT_AUDIENCE"], "wsgate")
        vol = next(v for v in e["pod"]["volumes"] if v["name"] == "jwt")
        self.assertEqual(vol["secret"]["secretName"], "my-jwt")
        self.assertEqual([s for s in by_kind(e["docs"], "Secret") if s["metadata"]["name"].endswith("-jwt")], [])

    def test_api_keys_from_secret(self):
        e = self.check_essentials("api")
        env = {x["name"]: x for x in e["c"]["env"]}
        self.assertEqual(env["WSGATE_API_KEY_FILE"]["value"], "/run/secrets/wsgate-api/keys")
        self.assertEqual(env["WSGATE_API_LISTEN"]["value"], "0.0.0.0:8081")
        (mount,) = [m for m in e["c"]["volumeMounts"] if m["name"] != "jwt"]  # jwt: access.jwt
        self.assertEqual((mount["mountPath"], mount["readOnly"]), ("/run/secrets/wsgate-api", True))
        (vol,) = [v for v in e["pod"]["volumes"] if v["name"] == mount["name"]]
        self.assertEqual(vol["secret"]["secretName"], "wsgate-api-keys")
        ports = {p["name"]: p["containerPort"] for p in e["c"]["ports"]}
        self.assertEqual(ports["api"], 8081)
        api = one(e["docs"], "Service", "rel-wsgate-api")
        self.assertEqual(api["spec"]["type"], "ClusterIP")
        self.assertEqual(api["spec"]["ports"][0]["targetPort"], "api")
        self.assertNotEqual(e["svc"]["spec"]["ports"][0]["targetPort"], "api")
        # Off by default: no key file, no mount, no API Service.
        d = self.check_essentials("defaults")
        self.assertNotIn("WSGATE_API_KEY_FILE", {x["name"] for x in d["c"]["env"]})
        self.assertEqual([m["name"] for m in d["c"]["volumeMounts"]], ["jwt"], "only the generated HMAC secret")
        self.assertEqual([s for s in by_kind(d["docs"], "Service") if s["metadata"]["name"].endswith("-api")], [])

    def test_public_keys(self):
        # Every listed kid is one item of the Secret volume, mounted read-only, and named in
        # WSGATE_JWT_PUBLIC_KEY_FILES as <mount>/<kid>.pem (the gateway's kid = base name).
        e = self.check_essentials("publickeys")
        env = {x["name"]: x for x in e["c"]["env"]}
        files = env["WSGATE_JWT_PUBLIC_KEY_FILES"]["value"].split(",")
        self.assertEqual(files, ["/etc/wsgate/jwt-keys/2026-01.pem", "/etc/wsgate/jwt-keys/2026-07.pem"])
        self.assertNotIn("WSGATE_JWT_HMAC_SECRET_FILE", env, "generateHmacSecret=false: no HMAC secret")
        (mount,) = e["c"]["volumeMounts"]
        self.assertEqual((mount["name"], mount["mountPath"], mount["readOnly"]),
                         ("jwt-keys", "/etc/wsgate/jwt-keys", True))
        (vol,) = e["pod"]["volumes"]
        self.assertEqual(vol["name"], "jwt-keys")
        self.assertEqual(vol["secret"]["secretName"], "wsgate-jwt-keys")
        self.assertEqual(vol["secret"]["defaultMode"], 0o444)
        self.assertEqual([(i["key"], i["path"]) for i in vol["secret"]["items"]],
                         [("2026-01.pem", "2026-01.pem"), ("2026-07.pem", "2026-07.pem")])
        self.assertEqual([mount["mountPath"] + "/" + i["path"] for i in vol["secret"]["items"]], files)
        self.assertEqual(by_kind(e["docs"], "Secret")[0]["metadata"]["name"], e["ref"]["name"],
                         "only the Redis URL Secret: the key Secret exists already, no HMAC one")
        self.assertEqual(len(by_kind(e["docs"], "Secret")), 1)
        cm = one(e["docs"], "ConfigMap")["data"]
        self.assertNotIn("WSGATE_JWT_PUBLIC_KEY_FILES", cm)
        self.assertEqual((cm["WSGATE_ANONYMOUS_SUBSCRIBE"], cm["WSGATE_ANONYMOUS_PUBLISH"]), ("", ""))
        # Off by default.
        d = self.check_essentials("defaults")
        self.assertNotIn("WSGATE_JWT_PUBLIC_KEY_FILES", {x["name"] for x in d["c"]["env"]})
        self.assertNotIn("jwt-keys", [v["name"] for v in d["pod"]["volumes"]])

    def test_public_keys_with_hmac_and_api(self):
        e = self.check_essentials("keysandhmac")
        env = {x["name"]: x for x in e["c"]["env"]}
        self.assertEqual(env["WSGATE_JWT_PUBLIC_KEY_FILES"]["value"], "/etc/wsgate/jwt-keys/ec.p256.pem")
        self.assertEqual(env["WSGATE_JWT_HMAC_SECRET_FILE"]["value"], "/etc/wsgate/jwt/hmac-secret")
        self.assertEqual(env["WSGATE_API_KEY_FILE"]["value"], "/run/secrets/wsgate-api/keys")
        mounts = {m["name"]: m["mountPath"] for m in e["c"]["volumeMounts"]}
        self.assertEqual(mounts, {"jwt": "/etc/wsgate/jwt", "jwt-keys": "/etc/wsgate/jwt-keys",
                                  "api-keys": "/run/secrets/wsgate-api"})
        vols = {v["name"]: v["secret"] for v in e["pod"]["volumes"]}
        self.assertEqual(sorted(vols), sorted(mounts))
        self.assertEqual(vols["jwt-keys"]["items"], [{"key": "ec.p256.pem", "path": "ec.p256.pem"}])
        self.assertEqual(vols["jwt"]["secretName"], "rel-wsgate-jwt")

    def test_dev_redis(self):
        e = self.check_essentials("devredis")
        docs = e["docs"]
        rdep = next(d for d in by_kind(docs, "Deployment") if d is not e["dep"])
        rlabels = rdep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(rlabels["app.kubernetes.io/component"], "redis")
        rsvc = next(s for s in by_kind(docs, "Service") if subset(s["spec"]["selector"], rlabels))
        self.assertFalse(subset(e["svc"]["spec"]["selector"], rlabels), "gateway Service must not select Redis")
        url = base64.b64decode(one(docs, "Secret", e["ref"]["name"])["data"][e["ref"]["key"]]).decode()
        self.assertEqual(url, "redis://%s:6379/0" % rsvc["metadata"]["name"])
        (rc,) = rdep["spec"]["template"]["spec"]["containers"]
        self.assertIs(rc["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertEqual(rc["image"], "redis:7")

    def test_prod_values(self):
        e = self.check_essentials("prod")
        self.assertEqual(e["dep"]["spec"]["replicas"], 5)
        self.assertEqual(e["port"], 9000)
        self.assertEqual(e["pod"]["terminationGracePeriodSeconds"], 10 + 45 + 5)
        cm = one(e["docs"], "ConfigMap")["data"]
        self.assertEqual(cm["WSGATE_IDLE_TIMEOUT"], "90")
        self.assertEqual(cm["WSGATE_WORKERS"], "2")
        self.assertEqual(cm["WSGATE_ALLOWED_ORIGINS"], "https://app.example.com,https://*.example.org")
        self.assertEqual(cm["WSGATE_MAX_CONNECTIONS_PER_IP"], "50")
        self.assertEqual(e["c"]["image"], "example/wsgate:1.2.3")
        self.assertEqual(e["svc"]["spec"]["type"], "LoadBalancer")
        self.assertEqual(one(e["docs"], "PodDisruptionBudget")["spec"]["maxUnavailable"], "25%")

    # ------------------------------------------------------------------ rejected values
    def test_schema_and_checks_reject_bad_values(self):
        cases = [
            (["--set-string", "replicaCount=three"], "replicaCount"),
            (["--set-string", "gateway.drainTimeoutSeconds=10"], "drainTimeoutSeconds"),
            (["--set-string", "autoscaling.enabled=yes"], "autoscaling.enabled"),
            (["--set", "gateway.port=70000"], "gateway.port"),
            (["--set", "gateway.logFormat=xml"], "logFormat"),
            (["--set", "replicas=3"], "replicas"),
            (["--set", "shutdown.extraGraceSeconds=0"], "extraGraceSeconds"),
            (["--set", "gateway.extraEnv.WSGATE_DRAIN_TIMEOUT=99"], "WSGATE_DRAIN_TIMEOUT"),
            (["--set", "gateway.extraEnv.LOG=1"], "extraEnv"),
            (["--set", "gateway.extraEnv.WSGATE_ALLOWED_ORIGINS=x"], "WSGATE_ALLOWED_ORIGINS"),
            (["--set", "gateway.allowedOrigins[0]=https://app.example.com/"], "allowedOrigins"),
            (["--set", "gateway.allowedOrigins=https://a.example"], "allowedOrigins"),
            (["--set", "gateway.maxConnectionsPerIp=-1"], "maxConnectionsPerIp"),
            (["--set", "redis.url=http://cache:6380"], "rediss://"),
            (["--set", "redis.url="], "no Redis configured"),
            (["--set", "redis.dev.enabled=true", "--set", "redis.existingSecret=x"], "redis.dev.enabled"),
            (["--set-json", "access.anonymousSubscribe=[]", "--set-json", "access.anonymousPublish=[]",
              "--set", "access.jwt.generateHmacSecret=false"], "no access configured"),
            (["--set", "access.anonymousSubscribe[0]=a*b"], "anonymousSubscribe"),
            (["--set", "gateway.extraEnv.WSGATE_ANONYMOUS_PUBLISH=x"], "WSGATE_ANONYMOUS_PUBLISH"),
            (["--set", "api.listen=8081"], "api.listen needs api.existingSecret"),
            (["--set", "api.existingSecret=k", "--set", "api.listen=8080"], "api.listen must differ"),
            (["--set", "api.token=x"], "token"),
            (["--set", "gateway.extraEnv.WSGATE_API_KEY_FILE=/k"], "WSGATE_API_KEY_FILE"),
            # Public keys: the chart's checks ...
            (["--set", "access.jwt.publicKeys.kids[0]=2026-07"],
             "access.jwt.publicKeys.kids needs access.jwt.publicKeys.existingSecret"),
            (["--set", "access.jwt.publicKeys.existingSecret=k"],
             "access.jwt.publicKeys.existingSecret needs access.jwt.publicKeys.kids"),
            (["--set", "access.jwt.publicKeys.existingSecret=k", "--set", "access.jwt.publicKeys.kids[0]=a.pem"],
             'list the kid "a"'),
            (["--set", "access.jwt.publicKeys.existingSecret=k", "--set", "access.jwt.publicKeys.kids[0]=a",
              "--set", "gateway.extraEnv.WSGATE_JWT_PUBLIC_KEY_FILES=/k/a.pem"],
             "WSGATE_JWT_PUBLIC_KEY_FILES and access.jwt.publicKeys are both set"),
            (["--set-json", "access.anonymousSubscribe=[]", "--set-json", "access.anonymousPublish=[]",
              "--set", "access.jwt.generateHmacSecret=false",
              "--set-json", "access.jwt.publicKeys.kids=[]"], "no access configured"),
            # ... and the schema (types, names, duplicates, unknown keys).
            (["--set", "access.jwt.publicKeys.kids=2026-07"], "access.jwt.publicKeys.kids"),
            (["--set-json", "access.jwt.publicKeys.kids=[7]"], "access.jwt.publicKeys.kids"),
            (["--set-json", "access.jwt.publicKeys.existingSecret=[\"k\"]"], "access.jwt.publicKeys.existingSecret"),
            (["--set-json", 'access.jwt.publicKeys.kids=["../etc/passwd"]'], "access.jwt.publicKeys.kids"),
            (["--set-json", 'access.jwt.publicKeys.kids=["a","a"]'], "unique"),
            (["--set", "access.jwt.publicKeys.secretName=k"], "secretName"),
        ]
        for flags, needle in cases:
            with self.subTest(flags=flags):
                p = helm_template("bad", flags, check=False)
                self.assertNotEqual(p.returncode, 0, "helm template accepted %s" % flags)
                self.assertIn(needle, p.stderr, p.stderr[-2000:])

    # ------------------------------------------------------------------ NOTES.txt
    def test_notes_render(self):
        """helm template skips NOTES.txt, so render it through a copy of the chart."""
        copy = os.path.join(self.tmp, "chart-notes", "wsgate")
        shutil.copytree(CHART, copy)
        shutil.copy(os.path.join(copy, "templates", "NOTES.txt"), os.path.join(copy, "notes.txt"))
        with open(os.path.join(copy, "templates", "zz-notes.yaml"), "w") as f:
            f.write('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n'
                    '{{ tpl (.Files.Get "notes.txt") . | indent 4 }}\n')
        for flags, needles in (
                ([], ["port-forward svc/rel-wsgate 8080:80", "ws://127.0.0.1:8080/ws", "redis-cli"]),
                (["--set", "ingress.enabled=true", "--set", "ingress.tls[0].secretName=t",
                  "--set", "ingress.tls[0].hosts[0]=wsgate.example.com", "--set", "redis.dev.enabled=true"],
                 ["wss://wsgate.example.com/ws", "DEVELOPMENT Redis"])):
            out = helm_template("rel", flags + ["--show-only", "templates/zz-notes.yaml"], chart=copy).stdout
            notes = yaml.safe_load(out)["data"]["notes"]
            for n in needles:
                self.assertIn(n, notes)


def main():
    global HELM
    HELM = helm_cmd()
    log("helm: %s; shared scripts: %s" % ("helm on PATH" if HELM == "helm" else "helm-render.sh", TOOLS))
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(HelmChart)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    n_fail = len(result.failures) + len(result.errors)
    print("deploy helm: %d passed, %d failed, %d skipped"
          % (result.testsRun - n_fail - len(result.skipped), n_fail, len(result.skipped)), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
