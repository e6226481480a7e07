/* One result row per measured phase, printed as a table line and as a JSON line. */
#ifndef WSBENCH_REPORT_H
#define WSBENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

struct row {
    const char *target, *scenario, *phase, *label;
    int round;
    int conns, live, nodes, channels, size;
    double rate;          /* target publish rate, messages/s */
    double pub_rate;      /* achieved publish rate */
    double pub_s;         /* seconds of publishing */
    uint64_t published, expected, delivered, dups, reorders, stale, closed;
    double expected_per_s, delivered_per_s, loss_pct;
    double p50_ms, p99_ms, p999_ms, max_ms;
    double srv_cpu_s, srv_cpu_per_m, redis_cpu_s, redis_cpu_per_m;
    double tool_cpu_pct, loop_p99_ms;
    double other_cpu_pct; /* machine CPU beyond server, Redis and wsbench: noise */
    double irq_cpu_pct;   /* interrupts and softirq (loopback TCP), machine-wide */
    long srv_rss_kib;
    double rss_per_conn_kib;  /* negative: not measured */
    double conn_per_s;        /* connect-storm only; negative otherwise */
    double shed_client;       /* slow consumers seen closed by the server; negative: n/a */
    double shed_metrics;      /* wsgate_clients_shed_total{reason="slow_consumer"}; negative: n/a */
    double p99_vs_warm;       /* slow-consumers: healthy p99 over warm-phase p99 */
    double rss_growth_kib;    /* slow-consumers: server RSS growth over the slow phase */
    double tcp_mem_growth_kib; /* slow-consumers: kernel TCP buffer growth, machine-wide */
    int tool_limited;
    char warn[768];
};

void row_init(struct row *r);
void row_warn(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_header(FILE *out);
void report_row(FILE *out, const struct row *r);
void report_json(FILE *out, const struct row *r);

#endif
