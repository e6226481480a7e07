"""deploy/grafana/wsgate.json names only metrics a running node exports, and shows them all.

Every PromQL expression of the dashboard (panel targets and template variable queries) is
reduced to the metric names it reads, and each of them must be a family in the /metrics of a
real node. Two nodes are scraped: one on a single redis-server and one in Redis Cluster mode
(3 masters), because the per-master families (wsgate_redis_master_*) exist only there. A metric
the node does not export (yet) would draw an empty panel without any error in Grafana, which is
why this is checked against a live scrape rather than a list kept by hand. The other way round,
every family the two nodes export must be on the dashboard, and every label a query groups by
must be one the metrics it reads carry (or Prometheus' own job and instance).
"""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgate_harness import GatewayTestCase  # noqa: E402
from wsgate_cluster import RedisCluster  # noqa: E402

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana", "wsgate.json")

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan"}


def metric_names(expr):
    """Metric names an expression reads: identifiers that are not functions, aggregation
    clauses, label names in {...} or by (...), durations, or Grafana variables."""
    # label_values(metric{...}, label): the second argument is a label, not a metric.
    expr = re.sub(r"label_values\(([^,()]*(?:\{[^}]*\})?)\s*,\s*\w+\s*\)", r"(\1)", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)                       # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                      # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)                     # $__rate_interval, ${var}
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_queries(dash):
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(("panel %r" % p["title"], t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]
            out.append(("variable %r" % v["name"], q["query"] if isinstance(q, dict) else q))
    return out


def grouping_labels(expr):
    """Label names of the expression's by (...) clauses."""
    out = set()
    for m in re.finditer(r"\bby\s*\(([^)]*)\)", expr):
        out |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    return out


def families(text):
    """{family: set of label names on its samples} from a Prometheus text exposition."""
    fams = {}
    for name in re.findall(r"^# TYPE (\S+) ", text, re.M):
        fams[name] = set()
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ", text, re.M):
        if m.group(1) in fams and m.group(2):
            fams[m.group(1)] |= set(re.findall(r'(\w+)="', m.group(2)))
    return fams


class MetricNameParsing(unittest.TestCase):
    def test_parser(self):
        self.assertEqual(metric_names('sum by (code) (rate(wsgate_client_errors_total{job=~"$job"}[$__rate_interval]))'),
                         {"wsgate_client_errors_total"})
        self.assertEqual(metric_names('label_values(wsgate_info{job=~"$job"}, instance)'), {"wsgate_info"})
        self.assertEqual(metric_names("max by (instance) (a_b) / on (instance) c_d"), {"a_b", "c_d"})
        self.assertEqual(grouping_labels('sum by (instance, master) (increase(x{a="b"}[5m]))'), {"instance", "master"})
        self.assertEqual(families('# TYPE a gauge\na{role="sub"} 1\na{role="pub"} 0\n# TYPE b counter\nb 3\n'),
                         {"a": {"role"}, "b": set()})


class DashboardAgainstANode(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dash = json.load(f)
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(cls.redis.port)
        cls.cluster = RedisCluster(masters=3, replicas=0, node_timeout_ms=1000)
        cls.addClassCleanup(cls.cluster.stop)
        seeds = "redis+cluster://" + ",".join(m.addr for m in cls.cluster.masters())
        cls.cgw = cls.start_class_gateway(None, extra_args=["--redis-url", seeds])
        cls.gw.wait_ready()
        cls.cgw.wait_ready()

    def exported(self):
        """The union of both nodes' families, each with its label names."""
        out = families(self.gw.metrics_text())
        for name, labels in families(self.cgw.metrics_text()).items():
            out.setdefault(name, set()).update(labels)
        return out

    def read_by_dashboard(self):
        read = set()
        for _, expr in dashboard_queries(self.dash):
            read |= metric_names(expr)
        return read

    def test_every_query_names_exported_metrics(self):
        exported = self.exported()
        self.assertIn("wsgate_connections", exported)
        queries = dashboard_queries(self.dash)
        self.assertGreater(len(queries), 15)
        for where, expr in queries:
            names = metric_names(expr)
            with self.subTest(where=where, expr=expr):
                self.assertTrue(names, "no metric in the query")
                self.assertEqual(names - set(exported), set(), "not exported by the node")
                carried = {"job", "instance"}.union(*(exported.get(n, set()) for n in names))
                self.assertEqual(grouping_labels(expr) - carried, set(), "grouped by a label no metric has")

    def test_cluster_families_come_from_the_cluster_node(self):
        # The per-master families really are there in cluster mode, one sample per master,
        # and absent on a single Redis: the second node is what makes them checkable.
        single, cluster = families(self.gw.metrics_text()), families(self.cgw.metrics_text())
        m = self.cgw.metrics()
        self.assertEqual(m.get("wsgate_redis_masters"), 3)
        for fam in ["wsgate_redis_master_up", "wsgate_redis_master_port", "wsgate_redis_master_reconnects_total",
                    "wsgate_redis_master_heartbeat_rtt_seconds"]:
            self.assertIn(fam, cluster)
            self.assertNotIn(fam, single)
            self.assertEqual(cluster[fam], {"master"})
        self.assertEqual(sorted(m['wsgate_redis_master_up{master="%d"}' % i] for i in range(3)), [1, 1, 1])

    def test_shows_every_exported_family(self):
        missing = set(self.exported()) - self.read_by_dashboard()
        self.assertEqual(missing, set(), "exported by a node but on no panel of the dashboard")

    def test_covers_what_operators_watch(self):
        read = self.read_by_dashboard()
        for m in ["wsgate_connections", "wsgate_messages_delivered_total", "wsgate_clients_shed_total",
                  "wsgate_redis_connected", "wsgate_redis_heartbeat_rtt_seconds", "wsgate_client_errors_total",
                  "wsgate_ready", "wsgate_redis_link_state", "wsgate_redis_connection_ready",
                  "wsgate_redis_master_switches_total", "wsgate_presence_write_errors_total",
                  "wsgate_presence_members_purged_total", "wsgate_redis_masters", "wsgate_redis_master_up",
                  "wsgate_redis_master_heartbeat_rtt_seconds"]:
            self.assertIn(m, read)

    def test_panels_well_formed(self):
        ids = [p["id"] for p in self.dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        for p in self.dash["panels"]:
            with self.subTest(panel=p["title"]):
                self.assertTrue(p["targets"])
                self.assertEqual(p["datasource"]["uid"], "${datasource}")
                g = p["gridPos"]
                self.assertLessEqual(g["x"] + g["w"], 24)
        self.assertEqual(self.dash["uid"], "wsgate")


if __name__ == "__main__":
    unittest.main()
