/* many-channels-sweep: one scenario, several connection counts. Clients are added
 * between steps rather than reconnected, so a sweep up to the descriptor limit stays
 * within a few minutes. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bench.h"
#include "phase.h"
#include "report.h"
#include "sweep.h"

#define SWEEP_NAME "many-channels-sweep"

/* The largest count wsbench can hold: it keeps every client socket itself (the servers
 * are separate processes), so the bound is its own limit less what it needs besides,
 * rounded down to a thousand so runs on equal machines compare row by row. */
static int max_count(struct bench *b)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t cap = 1000000;
    long lim = (long)(rl.rlim_cur < cap ? rl.rlim_cur : cap);
    int n = (int)((lim - BENCH_FD_RESERVE) / 1000 * 1000);
    bench_log(b, "sweep: descriptor limit %ld, largest count %d (%d kept for wsbench itself)", lim, n,
              BENCH_FD_RESERVE);
    return n;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void sweep_plan(struct bench *b)
{
    struct bench_opts *o = &b->o;
    static const int dflt[] = { 500, 2000, 8000, BENCH_SWEEP_MAX };
    if (!o->nsweep)
        for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
            o->sweep[o->nsweep++] = dflt[i];
    for (int i = 0; i < o->nsweep; i++)
        if (o->sweep[i] == BENCH_SWEEP_MAX)
            o->sweep[i] = max_count(b);
    qsort(o->sweep, (size_t)o->nsweep, sizeof o->sweep[0], cmp_int);
    int n = 0;
    for (int i = 0; i < o->nsweep; i++)
        if (o->sweep[i] > 0 && (n == 0 || o->sweep[i] != o->sweep[n - 1]))
            o->sweep[n++] = o->sweep[i];
    o->nsweep = n;
    if (!n)
        bench_die("--sweep: no usable connection count");
    o->conns = o->sweep[n - 1];
}

/* Phase length for the i-th rate: --durations, else --duration, else 10 s for the first
 * rate (at 1000 msg/s that is 10,000 messages, enough for a CPU figure) and 5 s after. */
static double duration_at(const struct bench *b, int i)
{
    const struct bench_opts *o = &b->o;
    if (o->ndurations)
        return o->durations[i < o->ndurations ? i : o->ndurations - 1];
    if (o->duration_s > 0)
        return o->duration_s;
    return i == 0 ? 10 : 5;
}

void sweep_run(struct bench *b)
{
    struct bench_opts *o = &b->o;
    if (!o->nrates) {
        o->rates[o->nrates++] = 1000;
        o->rates[o->nrates++] = 20000;
    }
    int top = o->sweep[o->nsweep - 1];
    phase_setup(b, top, top);
    pub_open(b);
    for (int s = 0; s < o->nsweep; s++) {
        /* The tables hold the largest count; each step exposes the next slice, and the
         * loop starts whatever lies beyond next_to_start. Client i is on channel i. */
        b->nconns = b->nchans = o->sweep[s];
        int live0 = b->live;
        phase_connect_measured(b);
        /* phase_connect_measured divides the growth by every live client; here only
         * the ones this step added grew it */
        int added = b->live - live0;
        if (b->rss_per_conn >= 0 && b->live > 0 && added > 0)
            b->rss_per_conn = b->rss_per_conn * b->live / added;
        else
            b->rss_per_conn = -1;
        for (int i = 0; i < o->nrates; i++) {
            /* one recipient per message: deliveries/s and messages/s are the same */
            double rate = phase_rate_at(b, i);
            char phase[48];
            struct row r;
            snprintf(phase, sizeof phase, "%d@%.0f/s", b->nconns, rate);
            phase_run(b, SWEEP_NAME, phase, rate, duration_at(b, i), &r);
            if (r.live < r.conns)
                row_warn(&r, "%d of %d clients live", r.live, r.conns);
            phase_emit(b, &r);
        }
    }
    b->nconns = b->nchans = top;
}
