#!/usr/bin/env python3
"""Comparison table of one benchmark run: wsgate next to each alternative, with ratios.

    bench/report.py results.jsonl [--label RUN_ID] [--markdown]

Reads the JSON lines wsbench wrote (one per measured phase) and prints, per scenario,
the figures that matter for it. Ratios are wsgate / alternative: for throughput and
connections/s higher is better, for CPU, latency and memory lower is better.
"""
import argparse
import json
import sys

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

    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for line in table:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
        def out(cells):
            print("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
        out(head)
        out(["-" * w for w in widths])
        for line in table:
            out(line)
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
