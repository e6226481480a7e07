/* The scenarios. Each connects its clients, runs one or more measured phases and emits
 * one result row per phase. Defaults finish in under a minute on 2 cores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "phase.h"
#include "report.h"
#include "scenario.h"
#include "sweep.h"

static double now_s(void)
{
    return (double)bench_now_us() / 1e6;
}

static double metrics_sum(struct bench *b, const char *name)
{
    if (b->o.target != TARGET_WSGATE || !b->o.metrics)
        return -1;
    double sum = 0;
    for (int i = 0; i < b->o.nservers; i++) {
        double v;
        if (metrics_scrape(&b->o.servers[i], name, &v) < 0)
            return -1;
        sum += v;
    }
    return sum;
}

static void scenario_fanout(struct bench *b, const char *name, int def_conns, int many)
{
    phase_dflt_i(&b->o.conns, def_conns);
    phase_dflt_i(&b->o.channels, many ? b->o.conns : 1);
    phase_dflt_d(&b->o.duration_s, 10);
    if (many)
        phase_default_deliveries(b, 20000, 0);
    else
        phase_default_deliveries(b, 40000, 160000);
    phase_setup(b, b->o.conns, b->o.channels);
    pub_open(b);
    phase_connect_measured(b);
    for (int i = 0; i < b->o.nrates; i++) {
        struct row r;
        char phase[32];
        double rate = phase_rate_at(b, i);
        snprintf(phase, sizeof phase, "%.0fk/s", rate * b->nconns / b->nchans / 1000);
        phase_run(b, name, phase, rate, b->o.duration_s, &r);
        phase_emit(b, &r);
    }
}

static void pick_slow(struct bench *b)
{
    int count = (int)lround(b->nconns * b->o.slow_share);
    if (count < 1)
        count = 1;
    int step = b->nconns / count;
    for (int k = 0; k < count; k++) {
        /* offset by k so the slow clients spread over every node */
        int idx = k * step + k % b->o.nservers;
        if (idx < b->nconns)
            b->conns[idx].slow = 1;
    }
}

static int slow_all_closed(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i].slow && b->conns[i].state != CS_CLOSED)
            return 0;
    return 1;
}

static void scenario_slow(struct bench *b)
{
    /* Big messages: the kernel lets a server's send buffer grow to tcp_wmem's maximum
     * (4 MiB by default) before the server's own queue sees anything, so a slow client
     * must be sent megabytes before any server can notice it. */
    phase_dflt_i(&b->o.conns, 500);
    phase_dflt_i(&b->o.channels, 1);
    phase_dflt_i(&b->o.size, 4096);
    phase_dflt_d(&b->o.duration_s, 25);
    phase_dflt_d(&b->o.warm_s, 8);
    phase_default_deliveries(b, 40000, 0);
    phase_setup(b, b->o.conns, b->o.channels);
    pick_slow(b);
    b->exclude_slow = 1;
    pub_open(b);
    phase_connect_measured(b);
    double rate = phase_rate_at(b, 0);
    struct row warm, slow;
    phase_run(b, "slow-consumers", "warm", rate, b->o.warm_s, &warm);
    phase_emit(b, &warm);
    double shed0 = metrics_sum(b, "wsgate_clients_shed_total{reason=\"slow_consumer\"}");
    int nslow = 0;
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i].slow && b->conns[i].state == CS_LIVE) {
            conn_pause(b, &b->conns[i]);
            nslow++;
        }
    bench_log(b, "%d slow clients stop reading", nslow);
    long tcp0 = tcp_mem_kib();
    phase_run(b, "slow-consumers", "slow", rate, b->o.duration_s, &slow);
    long tcp1 = tcp_mem_kib();
    if (tcp0 >= 0 && tcp1 >= 0)
        slow.tcp_mem_growth_kib = (double)(tcp1 - tcp0);
    /* let the slow clients read again: whatever the server closed shows up now */
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i].slow)
            conn_resume(b, &b->conns[i]);
    loop_run(b, bench_now_us() + 3000000, slow_all_closed);
    int shed = 0;
    for (int i = 0; i < b->nconns; i++)
        shed += b->conns[i].slow && b->conns[i].state == CS_CLOSED;
    slow.shed_client = shed;
    double shed1 = metrics_sum(b, "wsgate_clients_shed_total{reason=\"slow_consumer\"}");
    if (shed0 >= 0 && shed1 >= 0)
        slow.shed_metrics = shed1 - shed0;
    if (warm.p99_ms > 0)
        slow.p99_vs_warm = slow.p99_ms / warm.p99_ms;
    slow.rss_growth_kib = (double)(slow.srv_rss_kib - warm.srv_rss_kib);
    if (slow.rss_growth_kib < 0)
        slow.rss_growth_kib = 0;
    if (shed < nslow)
        row_warn(&slow, "%d of %d slow clients were not shed", nslow - shed, nslow);
    phase_emit(b, &slow);
    bench_log(b, "slow consumers: %d of %d shed (client view), healthy p99 %.2f ms vs warm %.2f ms, server RSS +%.0f KiB, "
              "kernel TCP memory %+.0f KiB", shed, nslow, slow.p99_ms, warm.p99_ms, slow.rss_growth_kib,
              slow.tcp_mem_growth_kib);
}

/* Brings back connections the server closed, so the next saturation step starts whole. */
static void reconnect_closed(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++) {
        struct conn *c = &b->conns[i];
        if (c->state != CS_CLOSED || c->failed)
            continue;
        uint32_t idx = c->idx, ch = c->chan;
        memset(c, 0, sizeof *c);
        c->ep_kind = EP_CONN;
        c->fd = -1;
        c->idx = idx;
        c->chan = ch;
        c->max_seq = b->chans[ch].seq;
        conn_start(b, c);
    }
    int64_t t0 = bench_now_us();
    loop_run(b, t0 + (int64_t)(b->o.connect_timeout_s * 1e6), phase_all_started);
}

static void scenario_saturation(struct bench *b)
{
    phase_dflt_i(&b->o.conns, 2000);
    phase_dflt_i(&b->o.channels, 1);
    phase_dflt_d(&b->o.duration_s, 4);
    phase_default_deliveries(b, 40000, 0);
    phase_setup(b, b->o.conns, b->o.channels);
    pub_open(b);
    phase_connect_measured(b);
    double t0 = now_s();
    double rate = phase_rate_at(b, 0), lo = 0, hi = 0;
    struct row best, fail;
    int have_best = 0, have_fail = 0;
    static char phases[32][24];
    for (int step = 0; step < b->o.sat_steps && step < 32; step++) {
        struct row r;
        snprintf(phases[step], sizeof phases[step], "step%d", step + 1);
        phase_run(b, "saturation", phases[step], rate, b->o.duration_s, &r);
        phase_emit(b, &r);
        int ok = r.loss_pct <= b->o.sat_loss_pct && r.p99_ms <= b->o.sat_p99_ms && r.closed == 0;
        /* A step where wsbench itself was saturated still counts: the result is then a
         * lower bound on the server's maximum, and the summary says so. */
        if (ok) {
            best = r;
            have_best = 1;
            lo = rate;
        } else {
            fail = r;
            have_fail = 1;
            hi = rate;
            if (!have_best)
                break;
            reconnect_closed(b);
            phase_settle(b, 1.0);
        }
        if (hi > 0 && hi / lo < 1.25)
            break;
        double next = hi > 0 ? sqrt(lo * hi) : rate * b->o.sat_factor;
        /* a step costs its duration plus up to the drain time */
        if (now_s() - t0 + b->o.duration_s + 2 > b->o.sat_max_s)
            break;
        rate = next;
    }
    if (!have_best) {
        bench_log(b, "saturation: even the first step failed");
        row_init(&best);
        best = fail;
    }
    best.phase = "max";
    best.warn[0] = 0;
    if (!have_best)
        row_warn(&best, "no step met loss <= %.1f%% and p99 <= %.0f ms", b->o.sat_loss_pct, b->o.sat_p99_ms);
    else if (best.tool_limited || (have_fail && fail.tool_limited))
        row_warn(&best, "limited by the load generator (wsbench at %.0f%% of a core%s): the server's maximum may be "
                 "higher", have_fail && fail.tool_limited ? fail.tool_cpu_pct : best.tool_cpu_pct,
                 have_fail ? " at the failing step" : "");
    else if (have_fail)
        row_warn(&best, "limited by the server: %.0f deliveries/s failed (loss %.2f%%, p99 %.1f ms, %llu closed)",
                 fail.expected_per_s, fail.loss_pct, fail.p99_ms, (unsigned long long)fail.closed);
    else
        row_warn(&best, "step or time budget exhausted before delivery fell behind");
    phase_emit(b, &best);
}

static void scenario_idle(struct bench *b)
{
    phase_dflt_i(&b->o.conns, 10000);
    phase_dflt_i(&b->o.channels, 1);
    phase_setup(b, b->o.conns, b->o.channels);
    phase_begin(b, "idle", 0);
    phase_connect_measured(b);
    struct row r;
    phase_end(b, "idle-memory", &r);
    phase_emit(b, &r);
}

static void scenario_storm(struct bench *b)
{
    phase_dflt_i(&b->o.conns, 5000);
    phase_dflt_i(&b->o.channels, 1);
    phase_setup(b, b->o.conns, b->o.channels);
    phase_begin(b, "storm", 0);
    phase_connect_measured(b);
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < b->nconns; i++) {
        const struct conn *c = &b->conns[i];
        if (c->t_start_us && c->t_start_us < first)
            first = c->t_start_us;
        if (c->state == CS_LIVE) {
            if (c->t_live_us > last)
                last = c->t_live_us;
            hist_record(&b->ph.lat, c->t_live_us - c->t_start_us);
        }
    }
    struct row r;
    phase_end(b, "connect-storm", &r);
    if (last > first)
        r.conn_per_s = b->live / ((double)(last - first) / 1e6);
    phase_emit(b, &r);
}

int scenario_run(struct bench *b)
{
    const char *s = b->o.scenario;
    if (b->o.size <= 0 && strcmp(s, "slow-consumers"))
        b->o.size = 256;
    /* nchan acknowledges nothing, so wait for its Redis subscriptions; idle memory
     * settles so lazily allocated buffers are counted */
    if (b->o.settle_s < 0)
        b->o.settle_s = !strcmp(s, "idle-memory") ? 2.0 : b->o.target == TARGET_NCHAN ? 1.0 : 0.3;
    if (!strcmp(s, "fanout"))
        scenario_fanout(b, "fanout", 2000, 0);
    else if (!strcmp(s, "many-channels"))
        scenario_fanout(b, "many-channels", 2000, 1);
    else if (!strcmp(s, "many-channels-sweep"))
        sweep_run(b);
    else if (!strcmp(s, "slow-consumers"))
        scenario_slow(b);
    else if (!strcmp(s, "saturation"))
        scenario_saturation(b);
    else if (!strcmp(s, "idle-memory"))
        scenario_idle(b);
    else if (!strcmp(s, "connect-storm"))
        scenario_storm(b);
    else
        return -1;
    phase_teardown(b);
    if (b->npubs)
        pub_close(b);
    return 0;
}