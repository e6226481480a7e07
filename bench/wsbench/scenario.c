/* The scenarios. Each connects its clients, runs one or more measured phases and emits
 * one result row per phase. Defaults finish in under a minute on 2 cores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "report.h"
#include "scenario.h"

static const char *target_name(enum bench_target t)
{
    static const char *const names[] = { "wsgate", "nchan", "node", "ideal" };
    return names[t];
}

static double now_s(void)
{
    return (double)bench_now_us() / 1e6;
}

static void setup(struct bench *b, int nconns, int nchans)
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

static void teardown(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++)
        conn_close(b, &b->conns[i]);
    free(b->conns);
    free(b->chans);
    b->conns = NULL;
    b->chans = NULL;
    b->nconns = b->nchans = 0;
}

static int all_started(struct bench *b)
{
    return b->next_to_start == b->nconns && b->in_progress == 0;
}

/* Connects every client not yet started; gives up on stragglers after the timeout. */
static void connect_all(struct bench *b)
{
    int64_t t0 = bench_now_us();
    loop_run(b, t0 + (int64_t)(b->o.connect_timeout_s * 1e6), all_started);
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

static void settle(struct bench *b, double s)
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
    struct procset s = { 0, { 0 } };
    if (b->o.redis_pid > 0) {
        s.n = 1;
        s.pid[0] = b->o.redis_pid;
    }
    return procset_sample(&s);
}

/* Server RSS growth per live connection while connecting; negative when unknown. */
static double rss_per_conn = -1;

static void connect_measured(struct bench *b)
{
    refresh_servers(b);
    struct proc_sample s0 = procset_sample(&b->servers);
    connect_all(b);
    settle(b, b->o.settle_s);
    refresh_servers(b);
    struct proc_sample s1 = procset_sample(&b->servers);
    rss_per_conn = (b->servers.n && b->live) ? (double)(s1.rss_kib - s0.rss_kib) / b->live : -1;
}

static uint64_t expected_total(const struct bench *b)
{
    uint64_t e = 0;
    for (int i = 0; i < b->nchans; i++) {
        const struct chan *ch = &b->chans[i];
        if (ch->seq >= ch->base)
            e += (uint64_t)(ch->seq - ch->base + 1) * ch->measured;
    }
    return e;
}

static int exclude_slow;

static void phase_begin(struct bench *b, const char *name, double rate)
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
        c->excluded = c->state != CS_LIVE || (c->slow && exclude_slow);
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

static void phase_publish(struct bench *b, double rate, double dur)
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
    if (pub_backlog_bytes(b) == 0 && pub_outstanding(b) == 0 && b->ph.delivered >= expected_total(b))
        return 1;
    return now - drain_progress_us > 1000000;
}

/* Waits until every owed message arrived, nothing arrived for 1 s, or drain_max_s. */
static void phase_drain(struct bench *b)
{
    drain_check_us = 0;
    drain_last = b->ph.delivered;
    drain_progress_us = bench_now_us();
    loop_run(b, bench_now_us() + (int64_t)(b->o.drain_max_s * 1e6), drained);
}

static void phase_end(struct bench *b, const char *scenario, struct row *r)
{
    struct phase *ph = &b->ph;
    int64_t t_end = bench_now_us();
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    struct proc_sample srv1 = procset_sample(&b->servers), redis1 = redis_sample(b);
    struct machine_sample m1;
    machine_sample(&m1);

    row_init(r);
    r->target = target_name(b->o.target);
    r->scenario = scenario;
    r->phase = ph->name;
    r->label = b->o.label;
    r->conns = b->nconns;
    r->live = b->live;
    r->nodes = b->o.nservers;
    r->channels = b->nchans;
    r->size = b->o.size;
    r->rate = ph->rate;
    r->pub_s = (double)(ph->t_pub_end - ph->t_pub_start) / 1e6;
    r->published = ph->published;
    r->pub_rate = r->pub_s > 0 ? (double)ph->published / r->pub_s : 0;
    r->expected = expected_total(b);
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
    r->rss_per_conn_kib = rss_per_conn;

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

static void emit(struct bench *b, const struct row *r)
{
    report_row(stdout, r);
    if (b->json)
        report_json(b->json, r);
}

static void run_phase(struct bench *b, const char *scenario, const char *phase, double rate, double dur, struct row *r)
{
    phase_begin(b, phase, rate);
    phase_publish(b, rate, dur);
    phase_drain(b);
    phase_end(b, scenario, r);
}

/* Publish rate for a target delivery rate: each message reaches conns/channels clients. */
static double rate_at(const struct bench *b, int i)
{
    double v = b->o.rates[i < b->o.nrates ? i : b->o.nrates - 1];
    return b->o.rates_are_deliveries ? v * b->nchans / b->nconns : v;
}

static void dflt_i(int *v, int d)
{
    if (*v <= 0)
        *v = d;
}

static void dflt_d(double *v, double d)
{
    if (*v <= 0)
        *v = d;
}

static void default_deliveries(struct bench *b, double d0, double d1)
{
    if (b->o.nrates)
        return;
    b->o.rates_are_deliveries = 1;
    b->o.rates[b->o.nrates++] = d0;
    if (d1 > 0)
        b->o.rates[b->o.nrates++] = d1;
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
    dflt_i(&b->o.conns, def_conns);
    dflt_i(&b->o.channels, many ? b->o.conns : 1);
    dflt_d(&b->o.duration_s, 10);
    if (many)
        default_deliveries(b, 20000, 0);
    else
        default_deliveries(b, 40000, 160000);
    setup(b, b->o.conns, b->o.channels);
    pub_open(b);
    connect_measured(b);
    for (int i = 0; i < b->o.nrates; i++) {
        struct row r;
        char phase[32];
        double rate = rate_at(b, i);
        snprintf(phase, sizeof phase, "%.0fk/s", rate * b->nconns / b->nchans / 1000);
        run_phase(b, name, phase, rate, b->o.duration_s, &r);
        emit(b, &r);
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
    dflt_i(&b->o.conns, 500);
    dflt_i(&b->o.channels, 1);
    dflt_i(&b->o.size, 4096);
    dflt_d(&b->o.duration_s, 25);
    dflt_d(&b->o.warm_s, 8);
    default_deliveries(b, 40000, 0);
    setup(b, b->o.conns, b->o.channels);
    pick_slow(b);
    exclude_slow = 1;
    pub_open(b);
    connect_measured(b);
    double rate = rate_at(b, 0);
    struct row warm, slow;
    run_phase(b, "slow-consumers", "warm", rate, b->o.warm_s, &warm);
    emit(b, &warm);
    double shed0 = metrics_sum(b, "wsgate_clients_shed_total{reason=\"slow_consumer\"}");
    int nslow = 0;
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i].slow && b->conns[i].state == CS_LIVE) {
            conn_pause(b, &b->conns[i]);
            nslow++;
        }
    bench_log(b, "%d slow clients stop reading", nslow);
    long tcp0 = tcp_mem_kib();
    run_phase(b, "slow-consumers", "slow", rate, b->o.duration_s, &slow);
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
    emit(b, &slow);
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
    loop_run(b, t0 + (int64_t)(b->o.connect_timeout_s * 1e6), all_started);
}

static void scenario_saturation(struct bench *b)
{
    dflt_i(&b->o.conns, 2000);
    dflt_i(&b->o.channels, 1);
    dflt_d(&b->o.duration_s, 4);
    default_deliveries(b, 40000, 0);
    setup(b, b->o.conns, b->o.channels);
    pub_open(b);
    connect_measured(b);
    double t0 = now_s();
    double rate = rate_at(b, 0), lo = 0, hi = 0;
    struct row best, fail;
    int have_best = 0, have_fail = 0;
    static char phases[32][24];
    for (int step = 0; step < b->o.sat_steps && step < 32; step++) {
        struct row r;
        snprintf(phases[step], sizeof phases[step], "step%d", step + 1);
        run_phase(b, "saturation", phases[step], rate, b->o.duration_s, &r);
        emit(b, &r);
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
            settle(b, 1.0);
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
    emit(b, &best);
}

static void scenario_idle(struct bench *b)
{
    dflt_i(&b->o.conns, 10000);
    dflt_i(&b->o.channels, 1);
    setup(b, b->o.conns, b->o.channels);
    phase_begin(b, "idle", 0);
    connect_measured(b);
    struct row r;
    phase_end(b, "idle-memory", &r);
    emit(b, &r);
}

static void scenario_storm(struct bench *b)
{
    dflt_i(&b->o.conns, 5000);
    dflt_i(&b->o.channels, 1);
    setup(b, b->o.conns, b->o.channels);
    phase_begin(b, "storm", 0);
    connect_measured(b);
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
    emit(b, &r);
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
    teardown(b);
    if (b->npubs)
        pub_close(b);
    return 0;
}
