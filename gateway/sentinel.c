/* Redis Sentinel for the link: a resolution (ask the Sentinels in turn, then
 * ROLE on the answer) and a watcher on one Sentinel (+switch-master pushes
 * and a periodic question), each with its own state enum. */
#define GW_LOG_MODULE "sentinel"

#include "sentinel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "log.h"
#include "rconn.h"
#include "rtls.h"

/* Where the resolution is; every move goes through set_res (logged). */
enum res_state {
    RES_IDLE = 0,   /* none running; master_host is the last confirmed master, if any */
    RES_ASKING,     /* ask: SENTINEL get-master-addr-by-name sent to sentinels[asking] */
    RES_CONFIRMING, /* confirm: ROLE sent to the candidate the Sentinel named */
};

/* Where the watcher is; every move goes through set_watch (logged). */
enum watch_state {
    WATCH_DOWN = 0,  /* no connection; retry_ev armed once a master was confirmed */
    WATCH_SUBSCRIBING, /* both connections opened, SUBSCRIBE +switch-master sent */
    WATCH_UP,        /* subscribed: pushes arrive, check_ev asks every GW_SENTINEL_CHECK_MS */
};

static const char *const res_names[] = { "idle", "asking", "confirming" };
static const char *const watch_names[] = { "down", "subscribing", "up" };

struct gw_sentinel {
    /* Read-only after gw_sentinel_new. */
    const struct gw_config *cfg;
    const struct gw_redis_addr *addr;
    struct event_base *base;
    struct gw_bus_stats *stats;
    const struct gw_sentinel_ops *ops;
    void *ctx;
    struct event *check_ev, *fail_ev, *retry_ev;

    struct ssl_ctx_st *tls_ctx; /* rediss+sentinel://: made again at each resolution; owned */
    /* The resolution. */
    enum res_state res;
    struct gw_rconn *ask, *confirm; /* owned; each set only in its state */
    int asking;                     /* index of the Sentinel asked */
    int tried;                      /* Sentinels asked in this resolution */
    char *cand_host;                /* owned: the address the Sentinel named */
    int cand_port;
    char *master_host; /* owned: the last master ROLE confirmed, NULL before */
    int master_port;
    const char *fail_why;
    /* The watcher. */
    enum watch_state watch;
    int watch_idx; /* the Sentinel watched: the last one that answered */
    struct gw_rconn *wsub, *wcmd; /* owned; both NULL exactly when DOWN */
};

static void set_res(struct gw_sentinel *s, enum res_state to, const char *why)
{
    if (s->res == to)
        return;
    LOG_DBG("sentinel resolution from=%s to=%s reason=\"%s\"", res_names[s->res], res_names[to], why);
    s->res = to;
}

static void set_watch(struct gw_sentinel *s, enum watch_state to, const char *why)
{
    if (s->watch == to)
        return;
    LOG_INFO("sentinel watcher from=%s to=%s sentinel=%s:%d reason=\"%s\"", watch_names[s->watch], watch_names[to],
             s->addr->sentinels[s->watch_idx].host, s->addr->sentinels[s->watch_idx].port, why);
    s->watch = to;
    gw_stat_set(&s->stats->redis_conn_ready[GW_REDIS_ROLE_SENTINEL], to == WATCH_UP);
}

static void on_conn_fail(void *ctx, struct gw_rconn *c, const char *why);
static void on_conn_ready(void *ctx, struct gw_rconn *c) {}
static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *push);
static const struct gw_rconn_ops conn_ops = { on_conn_ready, on_conn_fail, on_push };

/* A connection to Sentinel i (its own AUTH) or, with host set, to a Redis
 * server with the master's AUTH. Returns the connecting connection. */
static struct gw_rconn *open_conn(struct gw_sentinel *s, const char *name, int i, const char *host, int port)
{
    const struct gw_config *cfg = s->cfg;
    struct gw_rconn_opts o = {
        .name = name,
        .username = host ? s->addr->username : cfg->redis_sentinel_user,
        .password = host ? s->addr->password : cfg->redis_sentinel_password,
        .connect_timeout_ms = cfg->redis_connect_timeout_ms,
        .max_out_bytes = 1u << 20,
        .max_in_bytes = 1u << 20,
        .tls_ctx = s->tls_ctx,
        .tls_name = cfg->redis_tls_server_name,
    };
    struct gw_rconn *c = gw_rconn_new(s->base, &o, &conn_ops, s);
    if (!host) {
        host = s->addr->sentinels[i].host;
        port = s->addr->sentinels[i].port;
    }
    gw_rconn_connect(c, host, port, NULL);
    return c;
}

static int get_master_addr(struct gw_sentinel *s, struct gw_rconn *c, gw_rconn_reply_fn cb)
{
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name", s->addr->master_name };
    size_t lens[] = { 8, 23, strlen(s->addr->master_name) };
    return gw_rconn_command(c, 3, argv, lens, s->cfg->redis_heartbeat_timeout_ms, cb, NULL);
}

/* An answer [host, port] to get-master-addr-by-name, else false. */
static bool master_addr_reply(const redisReply *r, const char **host, int *port)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->len == 0)
        return false;
    long p = strtol(r->element[1]->str, NULL, 10);
    if (p < 1 || p > 65535)
        return false;
    *host = r->element[0]->str;
    *port = (int)p;
    return true;
}

/* ---- the resolution ---- */

/* Drops the running resolution's connections; their callbacks see that
 * they are no longer s->ask / s->confirm and do nothing. */
static void res_drop(struct gw_sentinel *s)
{
    struct gw_rconn *a = s->ask, *c = s->confirm;
    s->ask = s->confirm = NULL;
    set_res(s, RES_IDLE, "dropped");
    gw_rconn_free(a);
    gw_rconn_free(c);
}

static void res_fail(struct gw_sentinel *s, const char *why)
{
    res_drop(s);
    s->fail_why = why;
    event_active(s->fail_ev, 0, 0);
}

static void on_ask_reply(struct gw_rconn *c, const redisReply *r, void *privdata);

/* Asks the next Sentinel in turn, or fails once every one was asked. */
static void ask_next(struct gw_sentinel *s)
{
    if (s->tried == s->addr->nsentinels) {
        res_fail(s, "no Sentinel named a master that ROLE confirmed");
        return;
    }
    s->asking = (s->asking + (s->tried ? 1 : 0)) % s->addr->nsentinels;
    s->tried++;
    set_res(s, RES_ASKING, "asking a Sentinel");
    s->ask = open_conn(s, "sentinel", s->asking, NULL, 0);
    if (get_master_addr(s, s->ask, on_ask_reply) != 0)
        res_fail(s, "cannot queue SENTINEL get-master-addr-by-name");
}

static void on_role_reply(struct gw_rconn *c, const redisReply *r, void *privdata);

static void on_ask_reply(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct gw_sentinel *s = gw_rconn_owner(c);
    const struct gw_sentinel_addr *sa;
    const char *host;
    int port;

    if (c != s->ask)
        return;
    sa = &s->addr->sentinels[s->asking];
    s->ask = NULL;
    if (!master_addr_reply(r, &host, &port)) {
        LOG_WARN("sentinel gave no master sentinel=%s:%d master=%s detail=\"%s\"", sa->host, sa->port,
                 s->addr->master_name,
                 !r ? gw_rconn_errstr(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unknown master name");
        gw_rconn_free(c);
        ask_next(s);
        return;
    }
    free(s->cand_host);
    s->cand_host = gw_xstrdup(host);
    s->cand_port = port;
    gw_rconn_free(c);
    set_res(s, RES_CONFIRMING, "a Sentinel named the master");
    s->confirm = open_conn(s, "confirm", 0, s->cand_host, s->cand_port);
    const char *argv[] = { "ROLE" };
    size_t lens[] = { 4 };
    if (gw_rconn_command(s->confirm, 1, argv, lens, s->cfg->redis_heartbeat_timeout_ms, on_role_reply, NULL) != 0)
        res_fail(s, "cannot queue ROLE");
}

static void watch_start(struct gw_sentinel *s);

static void on_role_reply(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct gw_sentinel *s = gw_rconn_owner(c);

    if (c != s->confirm)
        return;
    s->confirm = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "master") != 0) {
        LOG_WARN("sentinel candidate is not a master host=%s port=%d role=\"%s\"", s->cand_host, s->cand_port,
                 !r ? gw_rconn_errstr(c)
                    : r->type == REDIS_REPLY_ERROR ? r->str
                    : r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->type == REDIS_REPLY_STRING
                        ? r->element[0]->str
                        : "?");
        gw_rconn_free(c);
        ask_next(s);
        return;
    }
    gw_rconn_free(c);
    if (s->master_host && (strcmp(s->master_host, s->cand_host) != 0 || s->master_port != s->cand_port)) {
        gw_stat_add(&s->stats->redis_master_switches, 1);
        LOG_WARN("redis master switched from=%s:%d to=%s:%d", s->master_host, s->master_port, s->cand_host,
                 s->cand_port);
    }
    free(s->master_host);
    s->master_host = s->cand_host;
    s->master_port = s->cand_port;
    s->cand_host = NULL;
    set_res(s, RES_IDLE, "ROLE confirmed the master");
    LOG_INFO("redis master confirmed name=%s host=%s port=%d sentinel=%s:%d", s->addr->master_name, s->master_host,
             s->master_port, s->addr->sentinels[s->asking].host, s->addr->sentinels[s->asking].port);
    if (s->watch == WATCH_DOWN && !evtimer_pending(s->retry_ev, NULL)) {
        s->watch_idx = s->asking;
        watch_start(s);
    }
    s->ops->on_master(s->ctx);
}

static void on_fail_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_sentinel *s = arg;
    s->ops->on_fail(s->ctx, s->fail_why);
}

void gw_sentinel_resolve(struct gw_sentinel *s)
{
    res_drop(s);
    s->tried = 0;
    if (s->addr->tls) {
        char err[320];
        SSL_CTX_free(s->tls_ctx);
        s->tls_ctx = NULL;
        if (gw_rtls_ctx_new(s->cfg, &s->tls_ctx, err, sizeof err) != 0) {
            LOG_ERR("sentinel TLS context error=\"%s\"", err);
            res_fail(s, "TLS context unusable");
            return;
        }
    }
    ask_next(s);
}

const char *gw_sentinel_master(const struct gw_sentinel *s, int *port)
{
    *port = s->master_port;
    return s->master_host;
}

/* ---- the watcher ---- */

/* The master moved: a resolution running starts over (its answer may be
 * the old master), else the owner hears of it. */
static void switch_seen(struct gw_sentinel *s, const char *why)
{
    if (s->res != RES_IDLE) {
        LOG_INFO("sentinel master moved during a resolution: asking again reason=\"%s\"", why);
        s->tried = 0;
        res_drop(s);
        ask_next(s);
        return;
    }
    if (s->master_host)
        s->ops->on_switch(s->ctx, why);
}

static void watch_stop(struct gw_sentinel *s, const char *why)
{
    struct gw_rconn *a = s->wsub, *b = s->wcmd;
    s->wsub = s->wcmd = NULL;
    set_watch(s, WATCH_DOWN, why);
    gw_rconn_free(a);
    gw_rconn_free(b);
}

/* The watcher failed: try the next Sentinel after a pause. */
static void watch_fail(struct gw_sentinel *s, const char *why)
{
    struct timeval tv = { 0, 500 * 1000 };
    watch_stop(s, why);
    s->watch_idx = (s->watch_idx + 1) % s->addr->nsentinels;
    if (evtimer_add(s->retry_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the Sentinel watcher's retry");
        abort(); /* a watcher that never comes back misses every failover */
    }
}

static void on_wsub_done(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct gw_sentinel *s = gw_rconn_owner(c);
    if (c != s->wsub)
        return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        LOG_WARN("sentinel SUBSCRIBE +switch-master failed detail=\"%s\"", r ? r->str : gw_rconn_errstr(c));
        watch_fail(s, "SUBSCRIBE +switch-master failed");
        return;
    }
    set_watch(s, WATCH_UP, "subscribed to +switch-master");
    /* A switch while nobody watched is found by the first check, now. */
    event_active(s->check_ev, 0, 0);
}

static void watch_start(struct gw_sentinel *s)
{
    const char *argv[] = { "SUBSCRIBE", "+switch-master" };
    size_t lens[] = { 9, 14 };

    set_watch(s, WATCH_SUBSCRIBING, "connecting");
    s->wsub = open_conn(s, "sentinel-sub", s->watch_idx, NULL, 0);
    s->wcmd = open_conn(s, "sentinel-cmd", s->watch_idx, NULL, 0);
    if (gw_rconn_command(s->wsub, 2, argv, lens, s->cfg->redis_heartbeat_timeout_ms, on_wsub_done, NULL) != 0)
        watch_fail(s, "cannot queue SUBSCRIBE +switch-master");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    watch_start(arg);
}

static void on_conn_fail(void *ctx, struct gw_rconn *c, const char *why)
{
    struct gw_sentinel *s = ctx;
    /* The resolution's connections fail through their reply callbacks. */
    if (c == s->wsub || c == s->wcmd) {
        LOG_WARN("sentinel watcher connection failed detail=\"%s\"", gw_rconn_errstr(c));
        watch_fail(s, why);
    }
}

/* +switch-master: "<master-name> <old-ip> <old-port> <new-ip> <new-port>". */
static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *push)
{
    struct gw_sentinel *s = ctx;
    const redisReply *ch = push->element[1], *msg = push->element[2];
    size_t nlen = strlen(s->addr->master_name);

    if (c != s->wsub || kind != GW_RCONN_MESSAGE || ch->type != REDIS_REPLY_STRING ||
        strcmp(ch->str, "+switch-master") != 0 || msg->type != REDIS_REPLY_STRING)
        return;
    if (msg->len <= nlen || memcmp(msg->str, s->addr->master_name, nlen) != 0 || msg->str[nlen] != ' ')
        return; /* another master this Sentinel watches */
    LOG_WARN("sentinel +switch-master detail=\"%s\"", msg->str);
    switch_seen(s, "+switch-master");
}

static void on_check_reply(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct gw_sentinel *s = gw_rconn_owner(c);
    const char *host;
    int port;

    if (c != s->wcmd)
        return;
    if (!r) {
        watch_fail(s, "periodic check unanswered");
        return;
    }
    if (!master_addr_reply(r, &host, &port) || !s->master_host)
        return; /* the Sentinel lost the master for a moment: the link judges itself */
    if (strcmp(host, s->master_host) != 0 || port != s->master_port) {
        LOG_WARN("sentinel names another master than the confirmed one confirmed=%s:%d named=%s:%d", s->master_host,
                 s->master_port, host, port);
        switch_seen(s, "the Sentinel names another master");
    }
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct gw_sentinel *s = arg;
    if (s->watch == WATCH_UP && gw_rconn_pending(s->wcmd) == 0 && get_master_addr(s, s->wcmd, on_check_reply) != 0)
        watch_fail(s, "cannot queue the periodic check");
}

/* ---- lifetime ---- */

struct gw_sentinel *gw_sentinel_new(const struct gw_config *cfg, struct event_base *base,
                                    struct gw_bus_stats *stats, const struct gw_sentinel_ops *ops, void *ctx)
{
    struct gw_sentinel *s = gw_xcalloc(1, sizeof(*s));
    struct timeval every = { GW_SENTINEL_CHECK_MS / 1000, (GW_SENTINEL_CHECK_MS % 1000) * 1000 };

    s->cfg = cfg;
    s->addr = &cfg->redis;
    s->base = base;
    s->stats = stats;
    s->ops = ops;
    s->ctx = ctx;
    s->check_ev = event_new(base, -1, EV_PERSIST, on_check, s);
    s->fail_ev = event_new(base, -1, 0, on_fail_event, s);
    s->retry_ev = evtimer_new(base, on_retry, s);
    if (!s->check_ev || !s->fail_ev || !s->retry_ev || event_add(s->check_ev, &every) != 0) {
        LOG_ERR("libevent could not create the Sentinel client's timers");
        abort();
    }
    return s;
}

void gw_sentinel_stop(struct gw_sentinel *s)
{
    res_drop(s);
    watch_stop(s, "stopping");
    if (s->check_ev)
        event_free(s->check_ev);
    if (s->fail_ev)
        event_free(s->fail_ev);
    if (s->retry_ev)
        event_free(s->retry_ev);
    s->check_ev = s->fail_ev = s->retry_ev = NULL;
}

void gw_sentinel_free(struct gw_sentinel *s)
{
    if (!s)
        return;
    gw_sentinel_stop(s);
    SSL_CTX_free(s->tls_ctx);
    free(s->cand_host);
    free(s->master_host);
    free(s);
}
