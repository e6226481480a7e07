"""The Redis Cluster tables of bench/report.py (issue 19): wsgate on a 3-master cluster
(target "wsgate-cluster") against wsgate on one Redis ("wsgate") in the same run, round by
round, and what bench/cluster_watch.py saw on the masters (rows of kind "cluster-watch")."""
import statistics


def _spread(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"median {statistics.median(vals):.2f} (min {min(vals):.2f}, max {max(vals):.2f})"


def cluster_tables(rows):
    """Yields (title, head, lines) tables; none when the run has no cluster rows."""
    runs = [r for r in rows if r.get("target") in ("wsgate", "wsgate-cluster")]
    if not any(r["target"] == "wsgate-cluster" for r in runs):
        return
    by = {}
    for r in runs:
        by[(r["scenario"], r["phase"], r.get("conns"), r.get("round", 0), r["target"])] = r
    keys = sorted({k[:3] for k in by}, key=lambda k: (k[0], k[2] or 0, k[1]))
    head = ["scenario", "phase", "clients", "round", "single: server CPU s/M", "cluster: server CPU s/M",
            "cluster/single", "single: Redis CPU s/M", "cluster: Redis CPU s/M (3 masters)",
            "loss % single/cluster"]
    lines = []
    for k in keys:
        ratios = []
        for rnd in sorted({kk[3] for kk in by if kk[:3] == k}):
            s, c = by.get(k + (rnd, "wsgate")), by.get(k + (rnd, "wsgate-cluster"))
            if not s or not c:
                continue
            sv, cv = s.get("server_cpu_s_per_m"), c.get("server_cpu_s_per_m")
            ratio = cv / sv if sv and cv is not None else None
            ratios.append(ratio)
            lines.append([k[0], k[1], str(k[2]), str(rnd), f"{sv:.2f}" if sv else "-",
                          f"{cv:.2f}" if cv is not None else "-",
                          f"{ratio:.2f}x" if ratio else "-",
                          f"{s.get('redis_cpu_s_per_m') or 0:.2f}", f"{c.get('redis_cpu_s_per_m') or 0:.2f}",
                          f"{s.get('loss_pct', 0):.2f} / {c.get('loss_pct', 0):.2f}"])
        if len(ratios) > 1:
            lines.append([k[0], k[1], str(k[2]), "all", "", "", _spread(ratios) + "x", "", "", ""])
    if lines:  # a cluster-only run has nothing to compare
        yield ("wsgate on a 3-master Redis Cluster against one Redis, same run (cluster/single: "
               "lower is better, 1.0 = equal)", head, lines)

    watch = [r for r in rows if r.get("kind") == "cluster-watch"]
    if watch:
        head = ["scenario", "round", "Redis CPU s per master", "busiest/mean CPU",
                "channels per master (at peak)", "busiest/mean channels",
                "connections per node to each master (max seen)"]
        lines = []
        for w in watch:
            conns = "; ".join("/".join(str(x) for x in v) for v in w["node_conns_max"].values())
            if "node_conns_client_list_max" in w:
                conns += " (CLIENT LIST: " + "; ".join(
                    "/".join(str(x) for x in v) for v in w["node_conns_client_list_max"].values()) + ")"
            lines.append([w["scenario"], str(w["round"]), " / ".join(f"{x:.2f}" for x in w["redis_cpu_s"]),
                          f"{w['busiest_over_mean_cpu']}", " / ".join(str(x) for x in w["shard_channels_at_peak"]),
                          f"{w['busiest_over_mean_channels']}", conns])
        yield ("What each master saw (bench/cluster_watch.py: INFO cpu over the whole scenario, "
               "PUBSUB SHARDCHANNELS without the nodes' own __wsgate: channels, ss per node PID, and those of them CLIENT LIST shows)", head, lines)
