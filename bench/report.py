#!/usr/bin/env python3
"""Comparison table of one benchmark run: wsgate next to each alternative, with ratios.

    bench/report.py results.jsonl [--label RUN_ID] [--markdown]

Reads the JSON lines wsbench wrote (one per measured phase) and prints, per scenario,
the figures that matter for it. Ratios are wsgate / alternative: for throughput and
connections/s higher is better, for CPU, latency and memory lower is better.
many-channels-sweep gets its own tables: one per message rate, one row per connection
count, server CPU s/M per target, and how wsgate's figure grows with the count.
"""
import argparse
import json
import sys

from report_cluster import cluster_tables

# (scenario, phase or None for every phase, label, json key, better: "high"/"low")
METRICS = {
    "fanout": [
        ("delivered/s", "delivered_per_s", "high"),
        ("loss %", "loss_pct", "low"),
        ("p50 ms", "p50_ms", "low"),
        ("p99 ms", "p99_ms", "low"),
        ("p99.9 ms", "p999_ms", "low"),
        ("server CPU s/M", "server_cpu_s_per_m", "low"),
        ("Redis CPU s/M", "redis_cpu_s_per_m", "low"),
    ],
    "saturation": [
        ("max sustained delivered/s", "delivered_per_s", "high"),
        ("p99 ms at max", "p99_ms", "low"),
        ("server CPU s/M at max", "server_cpu_s_per_m", "low"),
    ],
    "slow-consumers": [
        ("healthy delivered/s", "delivered_per_s", "high"),
        ("healthy loss %", "loss_pct", "low"),
        ("healthy p99 ms", "p99_ms", "low"),
        ("p99 slow/warm", "p99_vs_warm", "low"),
        ("slow clients shed (client view)", "shed_client", "high"),
        ("shed per /metrics", "shed_metrics", "high"),
        ("server RSS growth KiB", "rss_growth_kib", "low"),
        ("kernel TCP memory growth KiB", "tcp_mem_growth_kib", "low"),
    ],
    "idle-memory": [
        ("RSS KiB per idle conn", "rss_per_conn_kib", "low"),
    ],
    "connect-storm": [
        ("connections/s", "conn_per_s", "high"),
        ("p99 connect+subscribe ms", "p99_ms", "low"),
    ],
}
METRICS["many-channels"] = METRICS["fanout"]
PHASES = {"saturation": {"max"}, "slow-consumers": {"slow"}}
SCENARIO_ORDER = ["fanout", "many-channels", "slow-consumers", "saturation", "idle-memory", "connect-storm"]


def fmt(v):
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1000:
        return f"{v:.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


SWEEP = "many-channels-sweep"
# a sweep cell is marked when its delivery was incomplete: its CPU figure is then per
# message delivered, not per message owed
SWEEP_LOSS_MARK = 1.0


def sweep_tables(rows, targets):
    """(title, head, lines) per publish rate of the sweep, in rate order."""
    by = {}
    for r in rows:
        if r["scenario"] == SWEEP:
            by[(r["target"], r["rate"], r["conns"])] = r
    rates = sorted({k[1] for k in by})
    alts = [t for t in targets if t != "wsgate"]
    have_ws = "wsgate" in targets
    out = []
    for rate in rates:
        counts = sorted({k[2] for k in by if k[1] == rate})
        size = next(r["size"] for k, r in by.items() if k[1] == rate)
        # nchan is one address (nginx spreads it over its workers): count wsgate's nodes
        nodes = max(r["nodes"] for r in by.values())
        head = ["connections (" + {1: "1 node", 2: "both nodes"}.get(nodes, f"{nodes} nodes") + ")"] + targets
        if have_ws:
            head += [f"wsgate/{a}" for a in alts]
        lines = []
        for n in counts:
            vals, cells = {}, [f"{n:,}"]
            for t in targets:
                r = by.get((t, rate, n))
                vals[t] = r.get("server_cpu_s_per_m") if r else None
                cell = fmt(vals[t])
                if r and r.get("loss_pct", 0) > SWEEP_LOSS_MARK:
                    cell += f" (loss {r['loss_pct']:.0f}%)"
                cells.append(cell)
            if have_ws:
                cells += [ratio(vals["wsgate"], vals[a]) for a in alts]
            lines.append(cells)
        if len(counts) > 1:
            # growth from the smallest to the largest count, per target
            lo, hi = counts[0], counts[-1]
            cells = [f"ratio {hi:,} / {lo:,}"]
            for t in targets:
                a, b = by.get((t, rate, hi), {}), by.get((t, rate, lo), {})
                cells.append(ratio(a.get("server_cpu_s_per_m"), b.get("server_cpu_s_per_m")))
            if have_ws:
                cells += ["" for _ in alts]
            lines.append(cells)
        title = f"{SWEEP}: server CPU s per million delivered messages at {rate:,.0f} msg/s, {size} B"
        out.append((title, head, lines))
    return out


def print_table(head, table, markdown, left=1):
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|")
        for line in table:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    def out(cells):
        print("  ".join(str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    out(head)
    out(["-" * w for w in widths])
    for line in table:
        out(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--label", help="only rows of this run (default: the last run in the file)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    rows = []
    with open(args.jsonl) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    if not rows:
        sys.exit("no rows")
    label = args.label or rows[-1].get("label", "")
    rows = [r for r in rows if r.get("label", "") == label]
    extra = rows
    # the main table: wsbench's rows, and of several rounds the last
    # (wsgate-cluster is compared with wsgate in its own table below)
    rows = [r for r in rows if "target" in r and r["target"] != "wsgate-cluster"]

    targets = []
    for r in rows:
        if r["target"] not in targets:
            targets.append(r["target"])
    if "wsgate" in targets:
        targets.remove("wsgate")
        targets.insert(0, "wsgate")
    alts = [t for t in targets if t != "wsgate"]

    # last row wins for each (target, scenario, phase)
    by = {}
    phases = {}
    for r in rows:
        key = (r["scenario"], r["phase"])
        by[(r["target"],) + key] = r
        phases.setdefault(r["scenario"], [])
        if r["phase"] not in phases[r["scenario"]]:
            phases[r["scenario"]].append(r["phase"])

    head = ["scenario", "phase", "figure"] + targets + [f"wsgate/{a}" for a in alts if "wsgate" in targets]
    table = []
    notes = []
    for scen in SCENARIO_ORDER:
        for phase in phases.get(scen, []):
            if scen in PHASES and phase not in PHASES[scen]:
                continue
            for name, key, _better in METRICS[scen]:
                vals = {t: by.get((t, scen, phase), {}).get(key) for t in targets}
                line = [scen, phase, name] + [fmt(vals[t]) for t in targets]
                if "wsgate" in targets:
                    line += [ratio(vals["wsgate"], vals[a]) for a in alts]
                table.append(line)
            for t in targets:
                r = by.get((t, scen, phase))
                if r and r.get("warnings"):
                    mark = " (generator-limited)" if r.get("tool_limited") else ""
                    notes.append(f"{t} {scen} {phase}{mark}: {r['warnings']}")

    if table:
        print_table(head, table, args.markdown, left=3)
    for title, shead, lines in sweep_tables(rows, targets):
        print()
        print(f"**{title}**" if args.markdown else title)
        print()
        print_table(shead, lines, args.markdown)
    for t in targets:
        for r in rows:
            if r["target"] == t and r["scenario"] == SWEEP and r.get("warnings"):
                mark = " (generator-limited)" if r.get("tool_limited") else ""
                notes.append(f"{t} {SWEEP} {r['phase']}{mark}: {r['warnings']}")
    for title, chead, lines in cluster_tables(extra):
        print()
        print(f"**{title}**" if args.markdown else title)
        print()
        print_table(chead, lines, args.markdown)
    if notes:
        print()
        print("notes (from wsbench):")
        for n in notes:
            print(f"  - {n}")
    print()
    print(f"run {label}: ratios are wsgate / alternative; for delivered/s, shed and connections/s "
          "higher is better, for the others lower is better.")


if __name__ == "__main__":
    main()
