/* Redis Cluster discovery: CLUSTER SHARDS (CLUSTER SLOTS before Redis 7)
 * asked of the known masters, then of the seeds, one short-lived connection
 * per query, refreshes coalesced and spaced (shards.h). */
#include "shards.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clock.h"

#define GW_LOG_MODULE "shards"
#include "log.h"

/* A failed query is retried after this at most (or refresh_ms when shorter). */
#define RETRY_MS 1000

struct gw_shards {
    struct event_base *base;
    const struct gw_shards_ops *ops;
    void *ctx;
    struct gw_shards_addr *seeds; /* hosts owned */
    size_t n_seeds;
    struct gw_rconn_opts conn; /* strings owned (password wiped on free) */
    int refresh_ms, min_gap_ms, query_timeout_ms, hurry_ms;
    bool hurry;     /* gw_shards_hurry: the period is hurry_ms */
    bool last_fail; /* the last query failed: the next is a retry (RETRY_MS at most) */
    /* The address whose answer was taken last: asked first next time, so
     * that a dead master the map still names costs one failed connect, not
     * one per query. */
    char good_host[GW_TOPO_HOST_MAX + 1];
    int good_port;

    enum gw_shards_state state;
    struct event *timer;
    struct gw_topo *map;  /* the current map; owned */
    struct gw_topo *next; /* where an answer is parsed; owned */
    bool have_map;        /* a first answer came (the map may still be empty before) */

    /* The query in flight: the addresses to try, in order, and the one tried. */
    struct gw_shards_addr *cand; /* hosts owned */
    size_t n_cand, i_cand;
    struct gw_rconn *q; /* the connection of candidate i_cand, or NULL */
    int64_t last_start_us;
    char why[200]; /* the last candidate's failure */

    uint64_t version, queries, failures, changes;
};

const char *gw_shards_state_name(enum gw_shards_state s)
{
    switch (s) {
    case GW_SHARDS_NEW: return "new";
    case GW_SHARDS_IDLE: return "idle";
    case GW_SHARDS_SPACED: return "spaced";
    case GW_SHARDS_QUERYING: return "querying";
    case GW_SHARDS_QUERYING_AGAIN: return "querying-again";
    case GW_SHARDS_STOPPED: return "stopped";
    }
    return "?";
}

static void move_to(struct gw_shards *s, enum gw_shards_state to, const char *reason)
{
    if (s->state != to)
        LOG_DBG("state %s -> %s (%s)", gw_shards_state_name(s->state), gw_shards_state_name(to),
                reason);
    s->state = to;
}

static void arm(struct gw_shards *s, int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

    evtimer_del(s->timer);
    if (evtimer_add(s->timer, &tv) != 0)
        LOG_ERR("cannot arm the refresh timer");
}

static void free_cands(struct gw_shards *s)
{
    for (size_t i = 0; i < s->n_cand; i++)
        free((char *)s->cand[i].host);
    free(s->cand);
    s->cand = NULL;
    s->n_cand = s->i_cand = 0;
}

static void add_cand(struct gw_shards *s, const char *host, int port)
{
    for (size_t i = 0; i < s->n_cand; i++)
        if (s->cand[i].port == port && strcmp(s->cand[i].host, host) == 0)
            return;
    s->cand = gw_xrealloc(s->cand, (s->n_cand + 1) * sizeof *s->cand);
    s->cand[s->n_cand].host = gw_xstrdup(host);
    s->cand[s->n_cand].port = port;
    s->n_cand++;
}

static void try_candidate(struct gw_shards *s);
static void begin_query(struct gw_shards *s, const char *reason);

static int period_ms(const struct gw_shards *s)
{
    return s->hurry ? s->hurry_ms : s->refresh_ms;
}

/* From the last query's start to the next: the period, or the retry after a failure. */
static int next_ms(const struct gw_shards *s)
{
    return s->last_fail && RETRY_MS < period_ms(s) ? RETRY_MS : period_ms(s);
}

/* The query ended (ok: a map was taken). A refresh asked during it starts
 * the next one, spaced; otherwise the periodic timer (or the retry) runs. */
static void end_query(struct gw_shards *s, bool ok)
{
    bool again = s->state == GW_SHARDS_QUERYING_AGAIN;

    free_cands(s);
    s->last_fail = !ok;
    move_to(s, GW_SHARDS_IDLE, ok ? "answered" : "failed");
    arm(s, next_ms(s));
    if (again)
        gw_shards_refresh(s, "asked during the last query");
}

static bool same_nodes(const struct gw_topo *a, const struct gw_topo *b)
{
    if (gw_topo_node_count(a) != gw_topo_node_count(b))
        return false;
    for (size_t i = 0; i < gw_topo_node_count(a); i++) {
        const struct gw_topo_node *x = gw_topo_node(a, i), *y = gw_topo_find(b, x->id);
        if (!y || strcmp(x->host, y->host) || x->port != y->port || x->tls_port != y->tls_port ||
            x->health != y->health)
            return false;
    }
    return true;
}

/* The answer of candidate i_cand parsed into s->next: take it. */
static void take_map(struct gw_shards *s)
{
    struct gw_topo_diff d;
    struct gw_topo *old = s->map;
    bool first = !s->have_map;

    gw_topo_diff(first ? NULL : old, s->next, &d);
    bool changed = first || d.count > 0 || !same_nodes(old, s->next);
    s->map = s->next;
    s->next = old;
    s->have_map = true;
    if (changed) {
        s->changes++;
        LOG_INFO("map %llu from %s:%d: %u slots served by %zu masters, %u slots changed owner",
                 (unsigned long long)s->version, s->cand[s->i_cand].host, s->cand[s->i_cand].port,
                 gw_topo_covered(s->map), gw_topo_node_count(s->map), d.count);
        s->ops->on_map(s->ctx, first ? NULL : old, s->map, &d);
    } else if (s->ops->on_same) {
        s->ops->on_same(s->ctx, s->map);
    }
}

static void next_candidate(struct gw_shards *s, const char *fmt, const char *detail)
{
    snprintf(s->why, sizeof s->why, fmt, s->cand[s->i_cand].host, s->cand[s->i_cand].port, detail);
    LOG_DBG("%s", s->why);
    if (s->q) {
        gw_rconn_free(s->q); /* inside its callback: only marked closed */
        s->q = NULL;
    }
    s->i_cand++;
    try_candidate(s);
}

static void on_answer(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct gw_shards *s = gw_rconn_owner(c);
    bool slots = privdata != NULL; /* the CLUSTER SLOTS fallback */
    int rc;

    if (s->state != GW_SHARDS_QUERYING && s->state != GW_SHARDS_QUERYING_AGAIN)
        return; /* freed while waiting: gw_shards_free is calling us back */
    if (!r) {
        next_candidate(s, "%s:%d: no answer: %s", gw_rconn_errstr(c));
        return;
    }
    if (!slots && r->type == REDIS_REPLY_ERROR && r->str && strstr(r->str, "nknown subcommand")) {
        /* Before Redis 7: ask CLUSTER SLOTS on the same connection. */
        static const char *const argv[] = { "CLUSTER", "SLOTS" };
        static const size_t lens[] = { 7, 5 };
        if (gw_rconn_command(c, 2, argv, lens, s->query_timeout_ms, on_answer, (void *)1) == 0)
            return;
    }
    s->version++;
    rc = slots ? gw_topo_from_slots(s->next, r, s->cand[s->i_cand].host, s->version)
               : gw_topo_from_shards(s->next, r, s->version);
    if (rc == 0 && gw_topo_covered(s->next) == 0)
        rc = -ENOENT; /* a node that serves nothing yet (not joined) knows no map */
    if (rc < 0) {
        next_candidate(s, "%s:%d: %s", rc == -ENOENT ? "no slot served" : gw_topo_errstr(s->next));
        return;
    }
    snprintf(s->good_host, sizeof s->good_host, "%s", s->cand[s->i_cand].host);
    s->good_port = s->cand[s->i_cand].port;
    take_map(s);
    gw_rconn_free(c);
    s->q = NULL;
    end_query(s, true);
}

static void on_ready(void *ctx, struct gw_rconn *c)
{
}

/* Every pending reply was already called with NULL, which moved on. */
static void on_fail(void *ctx, struct gw_rconn *c, const char *why)
{
}

static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *push)
{
}

static const struct gw_rconn_ops query_ops = { on_ready, on_fail, on_push };

static void try_candidate(struct gw_shards *s)
{
    static const char *const argv[] = { "CLUSTER", "SHARDS" };
    static const size_t lens[] = { 7, 6 };

    if (s->i_cand >= s->n_cand) {
        s->failures++;
        LOG_WARN("no cluster map: every address failed, last %s", s->why);
        s->ops->on_error(s->ctx, s->why);
        end_query(s, false);
        return;
    }
    struct gw_shards_addr *a = &s->cand[s->i_cand];
    struct gw_rconn_opts o = s->conn;
    o.name = "shards";
    s->q = gw_rconn_new(s->base, &o, &query_ops, s);
    if (gw_rconn_connect(s->q, a->host, a->port, NULL) != 0 ||
        gw_rconn_command(s->q, 2, argv, lens, s->query_timeout_ms, on_answer, NULL) != 0) {
        gw_rconn_free(s->q); /* its callbacks: none pending */
        s->q = NULL;
        snprintf(s->why, sizeof s->why, "%s:%d: cannot send", a->host, a->port);
        s->i_cand++;
        try_candidate(s);
    }
}

static void begin_query(struct gw_shards *s, const char *reason)
{
    /* The last address that answered, then the masters we know (not failed
     * ones): a seed may be long gone. */
    if (s->good_port)
        add_cand(s, s->good_host, s->good_port);
    for (size_t i = 0; s->have_map && i < gw_topo_node_count(s->map); i++) {
        const struct gw_topo_node *n = gw_topo_node(s->map, i);
        if (n->health != GW_TOPO_HEALTH_FAILED && n->port)
            add_cand(s, n->host, n->port);
    }
    for (size_t i = 0; i < s->n_seeds; i++)
        add_cand(s, s->seeds[i].host, s->seeds[i].port);
    s->queries++;
    s->last_start_us = gw_now_us();
    evtimer_del(s->timer);
    move_to(s, GW_SHARDS_QUERYING, reason);
    try_candidate(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_shards *s = arg;

    if (s->state == GW_SHARDS_SPACED)
        begin_query(s, "spacing over");
    else if (s->state == GW_SHARDS_IDLE) /* periodic, or the retry after a failure */
        gw_shards_refresh(s, s->have_map ? "periodic" : "retry"); /* spaced like any other */
}

void gw_shards_refresh(struct gw_shards *s, const char *reason)
{
    int64_t since_ms;

    switch (s->state) {
    case GW_SHARDS_IDLE:
        since_ms = (gw_now_us() - s->last_start_us) / 1000;
        LOG_DBG("refresh asked: %s", reason);
        if (since_ms >= s->min_gap_ms) {
            begin_query(s, reason);
        } else {
            move_to(s, GW_SHARDS_SPACED, reason);
            arm(s, s->min_gap_ms - since_ms);
        }
        break;
    case GW_SHARDS_QUERYING:
        move_to(s, GW_SHARDS_QUERYING_AGAIN, reason);
        break;
    case GW_SHARDS_NEW:
    case GW_SHARDS_SPACED:
    case GW_SHARDS_QUERYING_AGAIN:
    case GW_SHARDS_STOPPED:
        break; /* not started, or a query is already due */
    }
}

void gw_shards_hurry(struct gw_shards *s, bool on)
{
    if (s->hurry == on || s->state == GW_SHARDS_NEW || s->state == GW_SHARDS_STOPPED)
        return;
    s->hurry = on;
    LOG_INFO("refresh every %d ms (%s)", period_ms(s), on ? "hurried: a slot waits for a live master" : "normal");
    if (s->state != GW_SHARDS_IDLE)
        return; /* a query is in flight or due: end_query arms the new period */
    int64_t left = next_ms(s) - (gw_now_us() - s->last_start_us) / 1000;
    if (left <= 0)
        gw_shards_refresh(s, on ? "hurried" : "periodic");
    else
        arm(s, left);
}

bool gw_shards_hurried(const struct gw_shards *s)
{
    return s->hurry;
}

static char *dup_or_null(const char *s)
{
    return s ? gw_xstrdup(s) : NULL;
}

struct gw_shards *gw_shards_new(struct event_base *base, const struct gw_shards_opts *opts,
                                const struct gw_shards_ops *ops, void *ctx)
{
    if (!opts->n_seeds || opts->refresh_ms <= 0 || opts->query_timeout_ms <= 0 || opts->min_gap_ms < 0 ||
        opts->hurry_ms <= 0)
        return NULL;
    struct gw_shards *s = gw_xcalloc(1, sizeof *s);
    s->base = base;
    s->ops = ops;
    s->ctx = ctx;
    s->seeds = gw_xcalloc(opts->n_seeds, sizeof *s->seeds);
    for (size_t i = 0; i < opts->n_seeds; i++) {
        s->seeds[i].host = gw_xstrdup(opts->seeds[i].host);
        s->seeds[i].port = opts->seeds[i].port;
    }
    s->n_seeds = opts->n_seeds;
    s->conn = opts->conn;
    s->conn.name = NULL;
    s->conn.username = dup_or_null(opts->conn.username);
    s->conn.password = dup_or_null(opts->conn.password);
    s->conn.tls_name = dup_or_null(opts->conn.tls_name);
    s->refresh_ms = opts->refresh_ms;
    s->min_gap_ms = opts->min_gap_ms;
    s->query_timeout_ms = opts->query_timeout_ms;
    s->hurry_ms = opts->hurry_ms;
    s->state = GW_SHARDS_NEW;
    s->timer = evtimer_new(base, on_timer, s);
    if (!s->timer) {
        LOG_ERR("evtimer_new failed");
        abort();
    }
    s->map = gw_topo_new();
    s->next = gw_topo_new();
    return s;
}

int gw_shards_start(struct gw_shards *s)
{
    if (s->state != GW_SHARDS_NEW)
        return -EINVAL;
    begin_query(s, "start");
    return 0;
}

const struct gw_topo *gw_shards_map(const struct gw_shards *s)
{
    return s->map;
}

enum gw_shards_state gw_shards_state(const struct gw_shards *s)
{
    return s->state;
}

uint64_t gw_shards_queries(const struct gw_shards *s)
{
    return s->queries;
}

uint64_t gw_shards_failures(const struct gw_shards *s)
{
    return s->failures;
}

uint64_t gw_shards_changes(const struct gw_shards *s)
{
    return s->changes;
}

void gw_shards_free(struct gw_shards *s)
{
    if (!s)
        return;
    move_to(s, GW_SHARDS_STOPPED, "freed");
    if (s->q)
        gw_rconn_free(s->q); /* calls on_answer with NULL, which sees STOPPED */
    event_free(s->timer);
    free_cands(s);
    for (size_t i = 0; i < s->n_seeds; i++)
        free((char *)s->seeds[i].host);
    free(s->seeds);
    if (s->conn.password) {
        memset((char *)s->conn.password, 0, strlen(s->conn.password));
        free((char *)s->conn.password);
    }
    free((char *)s->conn.username);
    free((char *)s->conn.tls_name);
    gw_topo_free(s->map);
    gw_topo_free(s->next);
    free(s);
}
