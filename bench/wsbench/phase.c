/* The measurement machinery every scenario shares: client and channel tables, the
 * connect step, and one measured phase (begin, publish, drain, end, emit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "phase.h"
#include "report.h"

const char *phase_target_name(enum bench_target t)
{
    static const char *const names[] = { "wsgate", "nchan", "node", "ideal" };
    return names[t];
}

void phase_setup(struct bench *b, int nconns, int nchans)
{
    b->conns = calloc((size_t)nconns, sizeof *b->conns);
    b->chans = calloc((size_t)nchans, sizeof *b->chans);
    if (!b->conns || !b->chans)
        bench_die("out of memory");
    b->nconns = nconns;
    b->nchans = nchans;
    for (int i = 0; i < nchans; i++) {
        struct chan *ch = &b->chans[i];
        int n = snprintf(ch->name, sizeof ch->name, "%s%d", b->o.chan_prefix, i);
        if (n < 0 || (size_t)n >= sizeof ch->name)
            bench_die("channel prefix too long");
        ch->name_len = (uint8_t)n;
    }
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &b->conns[i];
        c->ep_kind = EP_CONN;
        c->fd = -1;
        c->idx = (uint32_t)i;
        c->chan = (uint32_t)(i % nchans);
    }
}

void phase_teardown(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++)
        conn_close(b, &b->conns[i]);
    free(b->conns);
    free(b->chans);
    b->conns = NULL;
    b->chans = NULL;
    b->nconns = b->nchans = 0;
}

int phase_all_started(struct bench *b)
{
    return b->next_to_start == b->nconns && b->in_progress == 0;
}

/* Connects every client not yet started; gives up on stragglers after the timeout. */
void phase_connect_all(struct bench *b)
{
    int64_t t0 = bench_now_us();
    loop_run(b, t0 + (int64_t)(b->o.connect_timeout_s * 1e6), phase_all_started);
    int stuck = 0;
    for (int i = 0; i < b->nconns; i++) {
        struct conn *c = &b->conns[i];
        if (c->state != CS_LIVE && c->state != CS_CLOSED) {
            conn_close(b, c);
            c->failed = 1;
            stuck++;
        }
    }
    bench_log(b, "%d of %d connections live in %.2f s (%llu errors, %d timed out)", b->live, b->nconns,
              (double)(bench_now_us() - t0) / 1e6, (unsigned long long)b->conn_errors, stuck);
}

void phase_settle(struct bench *b, double s)
{
    if (s > 0)
        loop_run(b, bench_now_us() + (int64_t)(s * 1e6), NULL);
}

static void refresh_servers(struct bench *b)
{
    procset_expand(&b->o.server_roots, &b->servers);
}

static struct proc_sample redis_sample(struct bench *b)
{
    return procset_sample(&b->o.redis_pids);
}

void phase_connect_measured(struct bench *b)
{
    refresh_servers(b);
    struct proc_sample s0 = procset_sample(&b->servers);
    phase_connect_all(b);
    phase_settle(b, b->o.settle_s);
    refresh_servers(b);
    struct proc_sample s1 = procset_sample(&b->servers);
    b->rss_per_conn = (b->servers.n && b->live) ? (double)(s1.rss_kib - s0.rss_kib) / b->live : -1;
}

uint64_t phase_expected_total(const struct bench *b)
{
    uint64_t e = 0;
    for (int i = 0; i < b->nchans; i++) {
        const struct chan *ch = &b->chans[i];
        if (ch->seq >= ch->base)
            e += (uint64_t)(ch->seq - ch->base + 1) * ch->measured;
    }
    return e;
}

void phase_begin(struct bench *b, const char *name, double rate)
{
    hist_reset(&b->ph.lat);
    hist_reset(&b->ph.loop_busy);
    b->ph.name = name;
    b->ph.rate = rate;
    b->ph.published = b->ph.expected = b->ph.delivered = 0;
    b->ph.sched_late = 0;
    b->ph.max_pub_backlog_bytes = 0;
    b->ph.max_pub_outstanding = 0;
    b->ph.t_pub_start = b->ph.t_pub_end = 0;
    for (int i = 0; i < b->nchans; i++) {
        b->chans[i].base = b->chans[i].seq + 1;
        b->chans[i].measured = 0;
    }
    for (int i = 0; i < b->nconns; i++) {
        struct conn *c = &b->conns[i];
        conn_phase_reset(c);
        c->excluded = c->state != CS_LIVE || (c->slow && b->exclude_slow);
        if (!c->excluded)
            b->chans[c->chan].measured++;
    }
    b->pub_count = 0;
    refresh_servers(b);
    b->ph.srv0 = procset_sample(&b->servers);
    b->ph.redis0 = redis_sample(b);
    getrusage(RUSAGE_SELF, &b->ph.ru0);
    machine_sample(&b->ph.mach0);
    b->ph.t_begin = bench_now_us();
}

void phase_publish(struct bench *b, double rate, double dur)
{
    b->ph.t_pub_start = bench_now_us();
    pub_start(b, rate);
    loop_run(b, b->ph.t_pub_start + (int64_t)(dur * 1e6), NULL);
    pub_stop(b);
    b->ph.t_pub_end = bench_now_us();
    b->ph.published = b->pub_count;
}

static int64_t drain_check_us, drain_progress_us;
static uint64_t drain_last;

static int drained(struct bench *b)
{
    int64_t now = bench_now_us();
    if (now - drain_check_us < 20000)
        return 0;
    drain_check_us = now;
    if (b->ph.delivered != drain_last || pub_backlog_bytes(b) || pub_outstanding(b)) {
        drain_last = b->ph.delivered;
        drain_progress_us = now;
    }
    if (pub_backlog_bytes(b) == 0 && pub_outstanding(b) == 0 && b->ph.delivered >= phase_expected_total(b))
        return 1;
    return now - drain_progress_us > 1000000;
}

/* Waits until every owed message arrived, nothing arrived for 1 s, or drain_max_s. */
void phase_drain(struct bench *b)
{
    drain_check_us = 0;
    drain_last = b->ph.delivered;
    drain_progress_us = bench_now_us();
    loop_run(b, bench_now_us() + (int64_t)(b->o.drain_max_s * 1e6), drained);
}

void phase_end(struct bench *b, const char *scenario, struct row *r)
{
    struct phase *ph = &b->ph;
    int64_t t_end = bench_now_us();
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    struct proc_sample srv1 = procset_sample(&b->servers), redis1 = redis_sample(b);
    struct machine_sample m1;
    machine_sample(&m1);

    row_init(r);
    r->target = b->o.target_name ? b->o.target_name : phase_target_name(b->o.target);
    r->scenario = scenario;
    r->phase = ph->name;
    r->label = b->o.label;
    r->round = b->o.round;
    r->conns = b->nconns;
    r->live = b->live;
    r->nodes = b->o.nservers;
    r->channels = b->nchans;
    r->size = b->o.size;
    r->rate = ph->rate;
    r->pub_s = (double)(ph->t_pub_end - ph->t_pub_start) / 1e6;
    r->published = ph->published;
    r->pub_rate = r->pub_s > 0 ? (double)ph->published / r->pub_s : 0;
    r->expected = phase_expected_total(b);
    r->delivered = ph->delivered;
    for (int i = 0; i < b->nconns; i++) {
        const struct conn *c = &b->conns[i];
        if (c->excluded)
            continue;
        r->dups += c->dups;
        r->reorders += c->reorders;
        r->stale += c->stale;
        r->closed += c->state == CS_CLOSED;
    }
    if (r->pub_s > 0) {
        r->expected_per_s = (double)r->expected / r->pub_s;
        r->delivered_per_s = (double)r->delivered / r->pub_s;
    }
    if (r->expected > 0 && r->expected > r->delivered)
        r->loss_pct = 100.0 * (double)(r->expected - r->delivered) / (double)r->expected;
    r->p50_ms = (double)hist_quantile(&ph->lat, 0.50) / 1000;
    r->p99_ms = (double)hist_quantile(&ph->lat, 0.99) / 1000;
    r->p999_ms = (double)hist_quantile(&ph->lat, 0.999) / 1000;
    r->max_ms = (double)ph->lat.max / 1000;
    r->srv_cpu_s = srv1.cpu_s - ph->srv0.cpu_s;
    r->redis_cpu_s = redis1.cpu_s - ph->redis0.cpu_s;
    if (r->delivered > 0) {
        r->srv_cpu_per_m = r->srv_cpu_s / ((double)r->delivered / 1e6);
        r->redis_cpu_per_m = r->redis_cpu_s / ((double)r->delivered / 1e6);
    }
    double wall = (double)(t_end - ph->t_begin) / 1e6;
    double tool_cpu = rusage_cpu_s(&ph->ru0, &ru1);
    r->tool_cpu_pct = wall > 0 ? 100 * tool_cpu / wall : 0;
    double hz = 100; /* USER_HZ: /proc/stat counts in 1/100 s on Linux */
    double proc_busy = (double)(m1.proc - ph->mach0.proc) / hz;
    double irq_busy = (double)(m1.irq - ph->mach0.irq) / hz;
    double machine_busy = proc_busy + irq_busy;
    double machine_total = (double)(m1.total - ph->mach0.total) / hz;
    if (wall > 0) {
        /* a process's stime already holds the softirq work done in its context, so
         * "other" is what the whole machine did beyond the processes we watch */
        r->other_cpu_pct = 100 * (machine_busy - r->srv_cpu_s - r->redis_cpu_s - tool_cpu) / wall;
        if (r->other_cpu_pct < 0)
            r->other_cpu_pct = 0;
        r->irq_cpu_pct = 100 * irq_busy / wall;
    }
    r->loop_p99_ms = (double)hist_quantile(&ph->loop_busy, 0.99) / 1000;
    r->srv_rss_kib = srv1.rss_kib;
    r->rss_per_conn_kib = b->rss_per_conn;

    if (b->o.server_roots.n == 0)
        row_warn(r, "no --server-pids: server CPU and RSS not measured");
    if (r->tool_cpu_pct > 90) {
        r->tool_limited = 1;
        row_warn(r, "wsbench used %.0f%% of one core: the load generator is likely the bottleneck", r->tool_cpu_pct);
    }
    if (ph->rate > 0 && r->loop_p99_ms > 20)
        row_warn(r, "wsbench loop iterations p99 %.1f ms (bursty input): latencies may include that much of the "
                 "generator's own delay", r->loop_p99_ms);
    if (ph->rate > 0 && r->pub_rate < 0.97 * ph->rate) {
        r->tool_limited = 1;
        row_warn(r, "publisher behind schedule: %.0f/s of %.0f/s", r->pub_rate, ph->rate);
    }
    if (ph->max_pub_backlog_bytes > 4u << 20)
        row_warn(r, "publish backlog reached %.1f MiB: %s did not absorb the rate",
                 (double)ph->max_pub_backlog_bytes / (1 << 20), b->o.target == TARGET_NCHAN ? "nchan" : "Redis");
    if (machine_total > 0 && machine_busy > 0.95 * machine_total)
        row_warn(r, "machine CPU saturated (%.0f%% busy): figures are bounded by the cores, not by one program",
                 100 * machine_busy / machine_total);
    if (r->other_cpu_pct > 20)
        row_warn(r, "other processes used %.0f%% of a core: noisy machine", r->other_cpu_pct);
    if (r->closed)
        row_warn(r, "%llu measured connections were closed by the server", (unsigned long long)r->closed);
    if (b->conn_errors)
        row_warn(r, "%llu connection errors", (unsigned long long)b->conn_errors);
}

void phase_emit(struct bench *b, const struct row *r)
{
    report_row(stdout, r);
    if (b->json)
        report_json(b->json, r);
}

void phase_run(struct bench *b, const char *scenario, const char *phase, double rate, double dur, struct row *r)
{
    phase_begin(b, phase, rate);
    phase_publish(b, rate, dur);
    phase_drain(b);
    phase_end(b, scenario, r);
}

/* Publish rate for a target delivery rate: each message reaches conns/channels clients. */
double phase_rate_at(const struct bench *b, int i)
{
    double v = b->o.rates[i < b->o.nrates ? i : b->o.nrates - 1];
    return b->o.rates_are_deliveries ? v * b->nchans / b->nconns : v;
}

void phase_dflt_i(int *v, int d)
{
    if (*v <= 0)
        *v = d;
}

void phase_dflt_d(double *v, double d)
{
    if (*v <= 0)
        *v = d;
}

void phase_default_deliveries(struct bench *b, double d0, double d1)
{
    if (b->o.nrates)
        return;
    b->o.rates_are_deliveries = 1;
    b->o.rates[b->o.nrates++] = d0;
    if (d1 > 0)
        b->o.rates[b->o.nrates++] = d1;
}