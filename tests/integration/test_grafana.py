"""deploy/grafana/wsgate.json names only metrics a running node exports.

Every PromQL expression of the dashboard (panel targets and template variable queries) is
reduced to the metric names it reads, and each of them must be a family in the /metrics of a
real node (redis-server + wsgate). A metric the node does not export (yet) would draw an empty
panel without any error in Grafana, which is why this is checked against a live scrape rather
than a list kept by hand.
"""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgate_harness import GatewayTestCase  # noqa: E402

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


class MetricNameParsing(unittest.TestCase):
    def test_parser(self):
        self.assertEqual(metric_names('sum by (code) (rate(wsgate_client_errors_total{job=~"$job"}[$__rate_interval]))'),
                         {"wsgate_client_errors_total"})
        self.assertEqual(metric_names('label_values(wsgate_info{job=~"$job"}, instance)'), {"wsgate_info"})
        self.assertEqual(metric_names("max by (instance) (a_b) / on (instance) c_d"), {"a_b", "c_d"})


class DashboardAgainstANode(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dash = json.load(f)
        cls.redis = cls.start_class_redis()
        cls.gw = cls.start_class_gateway(cls.redis.port)
        cls.gw.wait_ready()

    def exported(self):
        text = self.gw.metrics_text()
        return set(re.findall(r"^# TYPE (\S+) ", text, re.M))

    def test_every_query_names_exported_metrics(self):
        exported = self.exported()
        self.assertIn("wsgate_connections", exported)
        queries = dashboard_queries(self.dash)
        self.assertGreater(len(queries), 15)
        for where, expr in queries:
            names = metric_names(expr)
            with self.subTest(where=where, expr=expr):
                self.assertTrue(names, "no metric in the query")
                self.assertEqual(names - exported, set(), "not exported by the node")

    def test_covers_what_operators_watch(self):
        read = set()
        for _, expr in dashboard_queries(self.dash):
            read |= metric_names(expr)
        for m in ["wsgate_connections", "wsgate_messages_delivered_total", "wsgate_clients_shed_total",
                  "wsgate_redis_connected", "wsgate_redis_heartbeat_rtt_seconds", "wsgate_client_errors_total",
                  "wsgate_ready"]:
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
