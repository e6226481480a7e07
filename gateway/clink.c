/* The Redis Cluster link: the slot map (shards.c), two connections per
 * master, the heartbeat per master that proves its sharded subscriptions end
 * to end, and reset + reconnect of the whole link (clink.h says when).
 *
 * Why a heartbeat per master: a sharded subscription lives on one master
 * only, so one echo proves nothing about the others. Each master's heartbeat
 * channel is named with a hash tag of a slot it owns; it is SPUBLISHed on
 * that master's command connection and must come back on its subscriber
 * connection within the heartbeat timeout. It is subscribed after every
 * other key on a fresh link, so its first echo also proves that master's
 * resubscription finished. */
#define GW_LOG_MODULE "clink"

#include "clink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "clink_int.h"
#include "clock.h"
#include "fnreply.h"
#include "log.h"
#include "rtls.h"
#include "shards.h"
#include "slot.h"

#define UNHANDLED_MAX (64u * 1024 * 1024)

static const char *const clink_state_names[] = { "down", "discovering", "connecting", "live", "resetting" };
/* The index in gw_redis_link_state_names (/metrics) of each state. */
static const uint64_t clink_metric_state[] = { 0, 1, 1, 4, 5 };

bool gw_clink_ready(const struct gw_clink *cl)
{
    struct gw_clink *c = (struct gw_clink *)cl;
    int64_t age = gw_now_us() - atomic_load_explicit(&c->echo_at_us, memory_order_relaxed);
    return atomic_load_explicit(&c->ready, memory_order_acquire) &&
           age <= (int64_t)c->cfg->redis_heartbeat_timeout_ms * 1000;
}

bool gw_clink_master(const struct gw_clink *cl, size_t i, struct gw_clink_master *out)
{
    static const char *const names[] = { "connecting", "loading", "proving", "live", "resetting", "down" };

    if (i >= cl->nsh)
        return false;
    const struct cshard *sh = &cl->sh[i];
    const struct gw_topo_node *n = cl->shards ? gw_topo_find(gw_shards_map(cl->shards), sh->id) : NULL;
    *out = (struct gw_clink_master){ sh->host, sh->port, n ? n->slots : 0, names[sh->state] };
    return true;
}

static void set_state(struct gw_clink *cl, enum clink_state to, const char *why)
{
    if (cl->state == to)
        return;
    LOG_INFO("redis cluster link from=%s to=%s masters=%zu reason=\"%s\"", clink_state_names[cl->state],
             clink_state_names[to], cl->nsh, why);
    cl->state = to;
    gw_stat_set(&cl->stats->redis_link_state, clink_metric_state[to]);
    atomic_store_explicit(&cl->ready, to == CL_LIVE, memory_order_release);
    gw_stat_set(&cl->stats->redis_connected, to == CL_LIVE);
    gw_stat_set(&cl->stats->redis_conn_ready[GW_REDIS_ROLE_SUB], to == CL_LIVE);
    gw_stat_set(&cl->stats->redis_conn_ready[GW_REDIS_ROLE_PUB], to == CL_LIVE);
}

static void clink_fail(struct gw_clink *cl, const char *why)
{
    if (cl->state == CL_DOWN || cl->state == CL_RESETTING || cl->state == CL_DISCOVERING)
        return;
    set_state(cl, CL_RESETTING, why);
    event_active(cl->reset_ev, 0, 0);
}

static void clink_refresh(struct gw_clink *cl, const char *why)
{
    gw_shards_refresh(cl->shards, why);
}

static struct cshard *shard_of_conn(struct gw_clink *cl, const struct gw_rconn *c)
{
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i].sub == c || cl->sh[i].cmd == c)
            return &cl->sh[i];
    return NULL;
}

static struct cshard *clink_owner(struct gw_clink *cl, const char *key, size_t klen)
{
    const struct gw_topo_node *n = gw_topo_key_owner(gw_shards_map(cl->shards), key, klen);
    for (size_t i = 0; n && i < cl->nsh; i++)
        if (strcmp(cl->sh[i].id, n->id) == 0)
            return &cl->sh[i];
    return NULL;
}

static struct cshard *clink_shard_at(struct gw_clink *cl, const char *host, int port)
{
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i].port == port && strcmp(cl->sh[i].host, host) == 0)
            return &cl->sh[i];
    return NULL;
}

/* ---- heartbeats ---- */

bool gw_clink_owned_by(void *pctx, const char *key, size_t klen)
{
    struct cshard *sh = pctx;
    return gw_clink_owner(sh->cl, key, klen) == sh;
}

/* sh's per-master series, when it has some (metrics.h). */
static gw_stat *master_stat(struct cshard *sh, gw_stat *arr)
{
    size_t i = (size_t)(sh - sh->cl->sh);
    return i < GW_REDIS_MASTERS_MAX ? &arr[i] : NULL;
}

static void set_master_stat(struct cshard *sh, gw_stat *arr, uint64_t v, bool add)
{
    gw_stat *st = master_stat(sh, arr);
    if (st && add)
        gw_stat_add(st, v);
    else if (st)
        gw_stat_set(st, v);
}

static void on_echo(struct cshard *sh, const char *payload)
{
    struct gw_clink *cl = sh->cl;
    int64_t now = gw_now_us();

    sh->echo_due_us = now + (int64_t)cl->cfg->redis_heartbeat_timeout_ms * 1000;
    sh->echo_at_us = now;
    if (strtoull(payload, NULL, 10) == sh->hb_seq) {
        gw_stat_set(&cl->stats->heartbeat_rtt_us, (uint64_t)(now - sh->last_hb_sent_us));
        set_master_stat(sh, cl->stats->master_rtt_us, (uint64_t)(now - sh->last_hb_sent_us), false);
    }
    bool back = false;
    if (sh->state == SH_PROVING) {
        sh->state = SH_LIVE;
        sh->attempt = 0;
        set_master_stat(sh, cl->stats->master_up, 1, false);
        back = cl->state == CL_LIVE;
        LOG_INFO("master live id=%.12s addr=%s:%d", sh->id, sh->host, sh->port);
    }
    /* Ready while any master is proven: the freshest echo of a live one. */
    bool all = true;
    int64_t newest = 0;
    for (size_t i = 0; i < cl->nsh; i++) {
        all = all && cl->sh[i].state == SH_LIVE;
        if (cl->sh[i].state == SH_LIVE && cl->sh[i].echo_at_us > newest)
            newest = cl->sh[i].echo_at_us;
    }
    atomic_store_explicit(&cl->echo_at_us, newest, memory_order_relaxed);
    if (all && cl->state == CL_CONNECTING) {
        cl->attempt = 0;
        set_state(cl, CL_LIVE, "every master's heartbeat echoed");
        cl->ops->on_live(cl->ctx);
    } else if (back) {
        cl->cops->on_keys_live(cl->ctx, gw_clink_owned_by, sh);
    }
}

static void clink_fn_loaded(struct cshard *sh)
{
    if (sh->state != SH_LOADING)
        return;
    sh->state = SH_PROVING;
    int64_t now = gw_now_us();
    sh->echo_due_us = now + (int64_t)sh->cl->cfg->redis_heartbeat_timeout_ms * 1000;
    gw_clink_send_heartbeat(sh, now);
}

/* ---- connections ---- */

static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *r)
{
    struct gw_clink *cl = ctx;
    struct cshard *sh = shard_of_conn(cl, c);
    const redisReply *key = r->element[1], *arg = r->element[2];

    if (!sh || c != sh->sub || key->type != REDIS_REPLY_STRING)
        return;
    bool hb = strcmp(key->str, sh->hb) == 0;
    if (kind == GW_RCONN_SMESSAGE && arg->type == REDIS_REPLY_STRING) {
        if (hb)
            on_echo(sh, arg->str);
        else
            cl->ops->on_message(cl->ctx, key->str, key->len, arg->str, arg->len);
    } else if (kind == GW_RCONN_SSUBSCRIBE && !hb) {
        cl->ops->on_subscription(cl->ctx, key->str, key->len, true);
    } else if (kind == GW_RCONN_SUNSUBSCRIBE) {
        if (!hb && gw_clink_unsub_expected(cl, key->str, key->len)) {
            cl->ops->on_subscription(cl->ctx, key->str, key->len, false);
            return;
        }
        /* Redis dropped it: the slot moved or its master was demoted. */
        LOG_INFO("unsolicited sunsubscribe key=%s master=%s:%d", key->str, sh->host, sh->port);
        gw_clink_refresh(cl, "unsolicited sunsubscribe");
        gw_clink_fail(cl, "unsolicited sunsubscribe: a slot moved");
    }
}

static void on_ready(void *ctx, struct gw_rconn *c)
{
    struct gw_clink *cl = ctx;
    struct cshard *sh = shard_of_conn(cl, c);

    if (!sh || sh->state != SH_CONNECTING || gw_rconn_state(sh->sub) != GW_RCONN_READY ||
        gw_rconn_state(sh->cmd) != GW_RCONN_READY)
        return;
    sh->state = SH_LOADING;
    gw_clink_load_functions(sh);
}

static void on_fail(void *ctx, struct gw_rconn *c, const char *why)
{
    struct gw_clink *cl = ctx;
    struct cshard *sh = shard_of_conn(cl, c);
    if (sh)
        LOG_WARN("master connection failed addr=%s:%d conn=%s error=\"%s\"", sh->host, sh->port,
                 c == sh->sub ? "sub" : "cmd", gw_rconn_errstr(c));
    gw_clink_refresh(cl, "lost a master connection");
    if (sh)
        gw_clink_shard_fail(sh, "a master connection failed");
}

static const struct gw_rconn_ops conn_ops = { on_ready, on_fail, on_push };

static struct gw_rconn_opts conn_opts(const struct gw_clink *cl, const char *name)
{
    const struct gw_config *cfg = cl->cfg;
    return (struct gw_rconn_opts){
        .name = name,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .connect_timeout_ms = cfg->redis_connect_timeout_ms,
        .max_out_bytes = 2 * cfg->max_inbox_bytes + (16u << 20),
        .max_in_bytes = 2 * cfg->max_message_bytes + (64u << 20),
        .tls_ctx = cl->tls_ctx,
        .tls_name = cfg->redis_tls_server_name,
    };
}

static void open_conns(struct cshard *sh)
{
    struct gw_clink *cl = sh->cl;
    struct gw_rconn_opts so = conn_opts(cl, "ssub"), co = conn_opts(cl, "cmd");

    sh->state = SH_CONNECTING;
    sh->sub = gw_rconn_new(cl->base, &so, &conn_ops, cl);
    sh->cmd = gw_rconn_new(cl->base, &co, &conn_ops, cl);
    gw_rconn_connect(sh->sub, sh->host, sh->port, NULL);
    gw_rconn_connect(sh->cmd, sh->host, sh->port, NULL);
    if (cl->paused)
        gw_rconn_pause(sh->sub, true);
    LOG_INFO("master addr=%s:%d id=%.12s heartbeat=%s", sh->host, sh->port, sh->id, sh->hb);
}

/* Last on a master's fresh connections: its first echo proves them all. */
static void subscribe_hb(struct cshard *sh)
{
    const char *argv[] = { "SSUBSCRIBE", sh->hb };
    size_t lens[] = { 10, strlen(sh->hb) };
    if (gw_rconn_command(sh->sub, 2, argv, lens, sh->cl->cmd_timeout_ms, gw_clink_on_sub_done, NULL) != 0)
        gw_clink_shard_fail(sh, "cannot queue a heartbeat SSUBSCRIBE");
}

/* ---- one master down ---- */

static int64_t backoff_ms(const struct gw_clink *cl, int attempt);

/* Frees one master's connections (pending commands get NULL, messages
 * already received are counted). */
static void free_conns(struct cshard *sh)
{
    if (sh->sub) {
        uint64_t d = gw_rconn_discard_messages(sh->sub, UNHANDLED_MAX);
        if (d) {
            gw_stat_add(&sh->cl->stats->redis_messages_dropped_link_reset, d);
            LOG_WARN("master reset dropped messages already received count=%" PRIu64, d);
        }
    }
    gw_rconn_free(sh->sub);
    gw_rconn_free(sh->cmd);
    sh->sub = sh->cmd = NULL;
}

static void clink_shard_fail(struct cshard *sh, const char *why)
{
    struct gw_clink *cl = sh->cl;

    if (cl->state != CL_LIVE) {
        gw_clink_fail(cl, why); /* not proven once yet: the whole link starts over */
        return;
    }
    if (sh->state == SH_RESETTING || sh->state == SH_DOWN)
        return;
    LOG_WARN("master down addr=%s:%d id=%.12s reason=\"%s\": only its channels are affected", sh->host, sh->port,
             sh->id, why);
    sh->state = SH_RESETTING;
    event_active(cl->shard_ev, 0, 0);
}

/* Tears down the masters in SH_RESETTING, outside connection callbacks. */
static void on_shard_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;

    for (size_t i = 0; i < cl->nsh && cl->state == CL_LIVE; i++) {
        struct cshard *sh = &cl->sh[i];
        if (sh->state != SH_RESETTING)
            continue;
        free_conns(sh);
        sh->state = SH_DOWN;
        set_master_stat(sh, cl->stats->master_up, 0, false);
        set_master_stat(sh, cl->stats->master_reconnects, 1, true);
        cl->cops->on_keys_lost(cl->ctx, gw_clink_owned_by, sh);
        int64_t delay = backoff_ms(cl, sh->attempt++);
        gw_stat_add(&cl->stats->redis_reconnects, 1);
        struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
        if (evtimer_add(sh->retry_ev, &tv) != 0)
            abort(); /* a master never retried is a silent outage */
    }
}

static void on_shard_retry(evutil_socket_t fd, short what, void *arg)
{
    struct cshard *sh = arg;
    struct gw_clink *cl = sh->cl;

    if (cl->state != CL_LIVE || sh->state != SH_DOWN)
        return;
    LOG_INFO("master reconnect addr=%s:%d attempt=%d", sh->host, sh->port, sh->attempt);
    open_conns(sh);
    cl->cops->on_keys_open(cl->ctx, gw_clink_owned_by, sh);
    subscribe_hb(sh);
}

/* Opens both connections of every master that serves slots on the current
 * map and queues every subscription (on_open), each master's heartbeat
 * channel last. */
static void link_open(struct gw_clink *cl)
{
    const struct gw_topo *map = gw_shards_map(cl->shards);
    size_t n = gw_topo_node_count(map);

    cl->sh = gw_xcalloc(n ? n : 1, sizeof *cl->sh);
    cl->nsh = 0;
    for (size_t i = 0; i < n; i++) {
        const struct gw_topo_node *node = gw_topo_node(map, i);
        int port = cl->cfg->redis.tls && node->tls_port ? node->tls_port : node->port;
        if (!node->slots || !port)
            continue;
        struct cshard *sh = &cl->sh[cl->nsh];
        sh->cl = cl;
        snprintf(sh->id, sizeof sh->id, "%s", node->id);
        snprintf(sh->host, sizeof sh->host, "%s", node->host);
        sh->port = port;
        if (!gw_clink_hb_channel(cl, map, node->id, sh->hb, sizeof sh->hb))
            continue;
        cl->nsh++;
    }
    set_state(cl, CL_CONNECTING, "connecting to every master");
    gw_stat_set(&cl->stats->redis_masters, cl->nsh);
    for (size_t i = 0; i < cl->nsh && i < GW_REDIS_MASTERS_MAX; i++) {
        gw_stat_set(&cl->stats->master_port[i], (uint64_t)cl->sh[i].port);
        gw_stat_set(&cl->stats->master_up[i], 0);
    }
    if (cl->nsh == 0) {
        gw_clink_fail(cl, "no master with slots and an address in the map");
        return;
    }
    for (size_t i = 0; i < cl->nsh; i++) {
        cl->sh[i].retry_ev = evtimer_new(cl->base, on_shard_retry, &cl->sh[i]);
        if (!cl->sh[i].retry_ev)
            abort();
        open_conns(&cl->sh[i]);
    }
    cl->ops->on_open(cl->ctx);
    for (size_t i = 0; i < cl->nsh && cl->state == CL_CONNECTING; i++)
        subscribe_hb(&cl->sh[i]);
}

/* ---- reset and reconnect ---- */

static int64_t backoff_ms(const struct gw_clink *cl, int attempt)
{
    const struct gw_config *cfg = cl->cfg;
    int shift = attempt < 16 ? attempt : 16;
    int64_t base = (int64_t)cfg->redis_backoff_min_ms << shift;
    if (base > cfg->redis_backoff_max_ms)
        base = cfg->redis_backoff_max_ms;
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint32_t)gw_now_us();
    return base / 2 + (int64_t)(r % (uint32_t)(base / 2 + 1)); /* equal jitter, as link.c */
}

/* Frees every master's connections: pending commands get their callbacks
 * with NULL; messages already received are counted, not lost silently. */
static void free_shards(struct gw_clink *cl)
{
    struct cshard *sh = cl->sh;
    size_t n = cl->nsh;

    cl->sh = NULL;
    cl->nsh = 0;
    for (size_t i = 0; i < n; i++) {
        if (i < GW_REDIS_MASTERS_MAX)
            gw_stat_set(&cl->stats->master_up[i], 0);
        free_conns(&sh[i]);
        if (sh[i].retry_ev)
            event_free(sh[i].retry_ev);
    }
    free(sh);
    while (gw_dict_first(&cl->unsubs))
        gw_dict_delete(&cl->unsubs, gw_dict_first(&cl->unsubs)->key, gw_dict_first(&cl->unsubs)->klen);
}

static void on_reset_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;

    set_state(cl, CL_DOWN, "connections closed");
    free_shards(cl);
    if (!cl->ops->on_reset(cl->ctx))
        return;
    int64_t delay = backoff_ms(cl, cl->attempt);
    cl->attempt++;
    gw_stat_add(&cl->stats->redis_reconnects, 1);
    LOG_INFO("redis cluster reconnect attempt=%d delay_ms=%" PRId64, cl->attempt, delay);
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    if (evtimer_add(cl->retry_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the reconnect timer");
        abort();
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;

    if (gw_topo_covered(gw_shards_map(cl->shards)) == 0) {
        set_state(cl, CL_DISCOVERING, "no slot map yet");
        gw_clink_refresh(cl, "reconnect");
        return;
    }
    link_open(cl);
}

/* A new map: the connections follow it (a whole reset, which the bus's
 * repair makes lossless for channels with history). */
static void on_map(void *ctx, const struct gw_topo *old, const struct gw_topo *map, const struct gw_topo_diff *d)
{
    struct gw_clink *cl = ctx;

    if (cl->state == CL_DISCOVERING && gw_topo_covered(map) > 0)
        link_open(cl);
    else if ((cl->state == CL_CONNECTING || cl->state == CL_LIVE) && d->count > 0)
        gw_clink_fail(cl, "a slot changed master");
    /* A change of health only (a master marked failed, not yet replaced)
     * moves no slot: that master's own failure handling covers it. */
}

static void on_map_error(void *ctx, const char *why)
{
}

static const struct gw_shards_ops shards_ops = { on_map, on_map_error };

/* ---- lifetime ---- */

static const struct gw_clink_up clink_up = {
    .fail = clink_fail,
    .shard_fail = clink_shard_fail,
    .owner = clink_owner,
    .shard_at = clink_shard_at,
    .fn_loaded = clink_fn_loaded,
    .refresh = clink_refresh,
};

struct gw_clink *gw_clink_new(const struct gw_config *cfg, struct event_base *base, struct gw_bus_stats *stats,
                              const struct gw_link_ops *ops, const struct gw_clink_ops *cops, void *ctx)
{
    struct gw_clink *cl = gw_xcalloc(1, sizeof *cl);
    cl->cfg = cfg;
    cl->base = base;
    cl->stats = stats;
    cl->ops = ops;
    cl->up = &clink_up;
    cl->cops = cops;
    cl->ctx = ctx;
    cl->fn_version = gw_link_fn_version();
    cl->cmd_timeout_ms = cfg->redis_heartbeat_timeout_ms;
    snprintf(cl->history_size, sizeof cl->history_size, "%d", cfg->history_size);
    snprintf(cl->history_ttl, sizeof cl->history_ttl, "%d", cfg->history_ttl_s);
    gw_dict_init(&cl->unsubs);
    atomic_init(&cl->ready, false);
    atomic_init(&cl->echo_at_us, 0);
    return cl;
}

void gw_clink_start(struct gw_clink *cl)
{
    const struct gw_config *cfg = cl->cfg;
    struct timeval tick = { 0, 50 * 1000 };
    char err[320];

    cl->tick_ev = event_new(cl->base, -1, EV_PERSIST, gw_clink_on_tick, cl);
    cl->retry_ev = evtimer_new(cl->base, on_retry, cl);
    cl->reset_ev = event_new(cl->base, -1, 0, on_reset_event, cl);
    cl->shard_ev = event_new(cl->base, -1, 0, on_shard_event, cl);
    if (!cl->tick_ev || !cl->retry_ev || !cl->reset_ev || !cl->shard_ev || event_add(cl->tick_ev, &tick) != 0) {
        LOG_ERR("libevent could not create the cluster link's timers");
        abort();
    }
    /* One context for the link's life (the discoverer keeps it too). */
    if (cfg->redis.tls && gw_rtls_ctx_new(cfg, &cl->tls_ctx, err, sizeof err) != 0) {
        LOG_ERR("redis TLS context error=\"%s\": the cluster link stays down", err);
        return;
    }
    struct gw_shards_addr *seeds = gw_xcalloc(cfg->redis.n_seeds, sizeof *seeds);
    for (size_t i = 0; i < cfg->redis.n_seeds; i++)
        seeds[i] = (struct gw_shards_addr){ cfg->redis.seeds[i].host, cfg->redis.seeds[i].port };
    struct gw_shards_opts o = {
        .seeds = seeds,
        .n_seeds = cfg->redis.n_seeds,
        .conn = conn_opts(cl, "shards"),
        .refresh_ms = 5000,
        .min_gap_ms = 100,
        .query_timeout_ms = cfg->redis_heartbeat_timeout_ms,
    };
    cl->shards = gw_shards_new(cl->base, &o, &shards_ops, cl);
    free(seeds);
    LOG_WARN("cluster mode: backends must SPUBLISH (or FCALL wsgate_publish ... shard): a plain PUBLISH reaches "
             "no sharded subscriber");
    set_state(cl, CL_DISCOVERING, "starting");
    gw_shards_start(cl->shards);
}

void gw_clink_stop(struct gw_clink *cl)
{
    set_state(cl, CL_DOWN, "stopping");
    free_shards(cl);
    gw_clink_cmds_stop(cl);
    gw_shards_free(cl->shards);
    cl->shards = NULL;
    if (cl->tick_ev)
        event_free(cl->tick_ev);
    if (cl->retry_ev)
        event_free(cl->retry_ev);
    if (cl->reset_ev)
        event_free(cl->reset_ev);
    if (cl->shard_ev)
        event_free(cl->shard_ev);
    cl->tick_ev = cl->retry_ev = cl->reset_ev = cl->shard_ev = NULL;
}

void gw_clink_free(struct gw_clink *cl)
{
    if (!cl)
        return;
    gw_dict_deinit(&cl->unsubs);
    SSL_CTX_free(cl->tls_ctx);
    free(cl);
}
