/* Table and JSON-lines output of result rows. */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void row_init(struct row *r)
{
    memset(r, 0, sizeof *r);
    r->rss_per_conn_kib = -1;
    r->conn_per_s = -1;
    r->shed_client = -1;
    r->shed_metrics = -1;
    r->p99_vs_warm = -1;
    r->rss_growth_kib = -1;
    r->tcp_mem_growth_kib = -1;
    r->srv_cpu_per_m = -1;
    r->redis_cpu_per_m = -1;
}

void row_warn(struct row *r, const char *fmt, ...)
{
    size_t len = strlen(r->warn);
    if (len + 4 >= sizeof r->warn)
        return;
    if (len) {
        strcpy(r->warn + len, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warn + len, sizeof r->warn - len, fmt, ap);
    va_end(ap);
}

void report_header(FILE *out)
{
    fprintf(out, "%-7s %-19s %-12s %6s %8s %9s %9s %6s %5s %5s %7s %7s %7s %7s %8s %8s %5s %8s %6s\n",
            "target", "scenario", "phase", "conns", "pub/s", "expect/s", "deliv/s", "loss%", "dups", "reord",
            "p50ms", "p99ms", "p999ms", "maxms", "srvCPU/M", "rdsCPU/M", "tool%", "KiB/conn", "shed");
}

static void fmt_num(char *buf, size_t n, double v, const char *f)
{
    if (v < 0 || isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, f, v);
}

void report_row(FILE *out, const struct row *r)
{
    char cpu[16], rcpu[16], kib[16], shed[16], rate[16];
    fmt_num(cpu, sizeof cpu, r->srv_cpu_per_m, "%.2f");
    fmt_num(rcpu, sizeof rcpu, r->redis_cpu_per_m, "%.2f");
    fmt_num(kib, sizeof kib, r->rss_per_conn_kib, "%.2f");
    fmt_num(shed, sizeof shed, r->shed_metrics >= 0 ? r->shed_metrics : r->shed_client, "%.0f");
    fmt_num(rate, sizeof rate, r->rate, "%.0f");
    double dps = r->conn_per_s >= 0 ? r->conn_per_s : r->delivered_per_s;
    fprintf(out, "%-7s %-19s %-12s %6d %8s %9.0f %9.0f %6.2f %5llu %5llu %7.2f %7.2f %7.2f %7.2f %8s %8s %5.0f %8s %6s\n",
            r->target, r->scenario, r->phase, r->live, rate, r->expected_per_s, dps, r->loss_pct,
            (unsigned long long)r->dups, (unsigned long long)r->reorders, r->p50_ms, r->p99_ms, r->p999_ms,
            r->max_ms, cpu, rcpu, r->tool_cpu_pct, kib, shed);
    if (r->warn[0])
        fprintf(out, "  WARNING [%s %s %s]: %s\n", r->target, r->scenario, r->phase, r->warn);
    fflush(out);
}

static void json_str(FILE *out, const char *k, const char *v)
{
    fprintf(out, ",\"%s\":\"", k);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void json_num(FILE *out, const char *k, double v)
{
    if (isnan(v) || isinf(v))
        fprintf(out, ",\"%s\":null", k);
    else
        fprintf(out, ",\"%s\":%.6g", k, v);
}

/* Negative means "not measured" and is written as null. */
static void json_opt(FILE *out, const char *k, double v)
{
    json_num(out, k, v < 0 ? NAN : v);
}

void report_json(FILE *out, const struct row *r)
{
    fprintf(out, "{\"v\":1");
    json_str(out, "target", r->target);
    json_str(out, "scenario", r->scenario);
    json_str(out, "phase", r->phase);
    json_str(out, "label", r->label);
    if (r->round > 0)
        json_num(out, "round", r->round);
    json_num(out, "conns", r->conns);
    json_num(out, "live", r->live);
    json_num(out, "nodes", r->nodes);
    json_num(out, "channels", r->channels);
    json_num(out, "size", r->size);
    json_num(out, "rate", r->rate);
    json_num(out, "pub_rate", r->pub_rate);
    json_num(out, "pub_s", r->pub_s);
    json_num(out, "published", (double)r->published);
    json_num(out, "expected", (double)r->expected);
    json_num(out, "delivered", (double)r->delivered);
    json_num(out, "expected_per_s", r->expected_per_s);
    json_num(out, "delivered_per_s", r->delivered_per_s);
    json_num(out, "loss_pct", r->loss_pct);
    json_num(out, "dups", (double)r->dups);
    json_num(out, "reorders", (double)r->reorders);
    json_num(out, "stale", (double)r->stale);
    json_num(out, "closed", (double)r->closed);
    json_num(out, "p50_ms", r->p50_ms);
    json_num(out, "p99_ms", r->p99_ms);
    json_num(out, "p999_ms", r->p999_ms);
    json_num(out, "max_ms", r->max_ms);
    json_num(out, "server_cpu_s", r->srv_cpu_s);
    json_opt(out, "server_cpu_s_per_m", r->srv_cpu_per_m);
    json_num(out, "redis_cpu_s", r->redis_cpu_s);
    json_opt(out, "redis_cpu_s_per_m", r->redis_cpu_per_m);
    json_num(out, "tool_cpu_pct", r->tool_cpu_pct);
    json_num(out, "other_cpu_pct", r->other_cpu_pct);
    json_num(out, "softirq_cpu_pct", r->irq_cpu_pct);
    json_num(out, "loop_p99_ms", r->loop_p99_ms);
    json_num(out, "server_rss_kib", (double)r->srv_rss_kib);
    json_opt(out, "rss_per_conn_kib", r->rss_per_conn_kib);
    json_opt(out, "conn_per_s", r->conn_per_s);
    json_opt(out, "shed_client", r->shed_client);
    json_opt(out, "shed_metrics", r->shed_metrics);
    json_opt(out, "p99_vs_warm", r->p99_vs_warm);
    json_opt(out, "rss_growth_kib", r->rss_growth_kib);
    json_num(out, "tcp_mem_growth_kib", r->tcp_mem_growth_kib);
    fprintf(out, ",\"tool_limited\":%s", r->tool_limited ? "true" : "false");
    json_str(out, "warnings", r->warn);
    fputs("}\n", out);
    fflush(out);
}
