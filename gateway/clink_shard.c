/* One master's side of the cluster link: its two connections, their life
 * (connecting, the library, the first heartbeat echo, live, down and
 * retried with backoff), the pushes of its sharded subscriber and its
 * series in /metrics. A master that fails takes down only its own keys
 * (gw_clink_ops); clink.c decides which masters exist (clink.h).
 *
 * Why a heartbeat per master: a sharded subscription lives on one master
 * only, so one echo proves nothing about the others. Each master's heartbeat
 * channel is named with a hash tag of a slot it owns; it is SPUBLISHed on
 * that master's command connection and must come back on its subscriber
 * connection within the heartbeat timeout. It is subscribed after every
 * other key on fresh connections, so its first echo also proves that
 * master's resubscription finished. */
#define GW_LOG_MODULE "clink"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clink_int.h"
#include "clock.h"
#include "log.h"
#include "slot.h"

#define UNHANDLED_MAX (64u * 1024 * 1024)

/* clink_int.h */
bool gw_clink_owned_by(void *pctx, const char *key, size_t klen)
{
    struct cshard *sh = pctx;
    return gw_clink_owner(sh->cl, key, klen) == sh;
}

static void set_master_stat(const struct cshard *sh, gw_stat *arr, uint64_t v)
{
    gw_stat *st = gw_clink_master_stat(sh, arr);
    if (st)
        gw_stat_set(st, v);
}

/* Every move of a master goes through here: logged, and shown in /metrics. */
static void shard_set(struct cshard *sh, enum cshard_state to, const char *why)
{
    if (sh->state != to)
        LOG_INFO("master addr=%s:%d id=%.12s from=%s to=%s reason=\"%s\"", sh->host, sh->port, sh->id,
                 gw_redis_master_state_names[sh->state], gw_redis_master_state_names[to], why);
    sh->state = to;
    set_master_stat(sh, sh->cl->stats->master_state, (uint64_t)to);
    set_master_stat(sh, sh->cl->stats->master_up, to == SH_LIVE);
}

static struct cshard *shard_of_conn(struct gw_clink *cl, const struct gw_rconn *c)
{
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->sub == c || cl->sh[i]->cmd == c)
            return cl->sh[i];
    return NULL;
}

/* ---- the heartbeat echo ---- */

static void on_echo(struct cshard *sh, const char *payload)
{
    struct gw_clink *cl = sh->cl;
    int64_t now = gw_now_us();

    sh->echo_due_us = now + (int64_t)cl->cfg->redis_heartbeat_timeout_ms * 1000;
    sh->echo_at_us = now;
    if (strtoull(payload, NULL, 10) == sh->hb_seq) {
        gw_stat_set(&cl->stats->heartbeat_rtt_us, (uint64_t)(now - sh->last_hb_sent_us));
        set_master_stat(sh, cl->stats->master_rtt_us, (uint64_t)(now - sh->last_hb_sent_us));
    }
    bool first = sh->state == SH_PROVING;
    if (first) {
        shard_set(sh, SH_LIVE, "its heartbeat echoed");
        sh->attempt = 0;
    }
    /* Ready while any master is proven: the freshest echo of a live one. */
    int64_t newest = 0;
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->state == SH_LIVE && cl->sh[i]->echo_at_us > newest)
            newest = cl->sh[i]->echo_at_us;
    atomic_store_explicit(&cl->echo_at_us, newest, memory_order_relaxed);
    if (!first)
        return;
    if (cl->state == CL_LIVE)
        cl->cops->on_keys_live(cl->ctx, gw_clink_owned_by, sh); /* back, or new: read what its keys missed */
    else
        cl->up->echoed(cl);
}

/* clink_int.h */
void gw_clink_shard_loaded(struct cshard *sh)
{
    if (sh->state != SH_LOADING)
        return;
    shard_set(sh, SH_PROVING, "the function library is there");
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
        if (gw_clink_owner(cl, key->str, key->len) != sh) {
            /* The map already gave its slot to another master, whose
             * subscription clink.c made: this one is the old owner's. */
            LOG_DBG("sunsubscribe from a former owner key=%s master=%s:%d", key->str, sh->host, sh->port);
            return;
        }
        /* Redis dropped it: the slot moved or its master was demoted. */
        gw_stat *st = gw_clink_master_stat(sh, cl->stats->master_redirects);
        if (st)
            gw_stat_add(st, 1);
        LOG_INFO("unsolicited sunsubscribe key=%s master=%s:%d", key->str, sh->host, sh->port);
        if (hb)
            gw_clink_refresh(cl, "the heartbeat channel's slot moved"); /* the next map picks another */
        else
            gw_clink_slot_lost(cl, gw_slot_of(key->str, key->len), "unsolicited sunsubscribe");
    }
}

static void on_ready(void *ctx, struct gw_rconn *c)
{
    struct gw_clink *cl = ctx;
    struct cshard *sh = shard_of_conn(cl, c);

    if (!sh || sh->state != SH_CONNECTING || gw_rconn_state(sh->sub) != GW_RCONN_READY ||
        gw_rconn_state(sh->cmd) != GW_RCONN_READY)
        return;
    shard_set(sh, SH_LOADING, "both connections ready");
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

/* clink_int.h */
struct gw_rconn_opts gw_clink_conn_opts(const struct gw_clink *cl, const char *name)
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

/* clink_int.h */
void gw_clink_shard_open(struct cshard *sh)
{
    struct gw_clink *cl = sh->cl;
    struct gw_rconn_opts so = gw_clink_conn_opts(cl, "ssub"), co = gw_clink_conn_opts(cl, "cmd");

    shard_set(sh, SH_CONNECTING, "opening its connections");
    sh->sub = gw_rconn_new(cl->base, &so, &conn_ops, cl);
    sh->cmd = gw_rconn_new(cl->base, &co, &conn_ops, cl);
    gw_rconn_connect(sh->sub, sh->host, sh->port, NULL);
    gw_rconn_connect(sh->cmd, sh->host, sh->port, NULL);
    if (cl->paused)
        gw_rconn_pause(sh->sub, true);
    LOG_INFO("master addr=%s:%d id=%.12s heartbeat=%s", sh->host, sh->port, sh->id, sh->hb);
}

static void on_hb_subscribed(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct cshard *sh = privdata;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        LOG_WARN("heartbeat SSUBSCRIBE refused master=%s:%d error=\"%s\"", sh->host, sh->port, reply->str);
        gw_clink_refresh(sh->cl, "heartbeat SSUBSCRIBE refused");
        gw_clink_shard_fail(sh, "heartbeat SSUBSCRIBE refused");
    }
}

/* clink_int.h */
void gw_clink_shard_subscribe_hb(struct cshard *sh)
{
    const char *argv[] = { "SSUBSCRIBE", sh->hb };
    size_t lens[] = { 10, strlen(sh->hb) };
    if (gw_rconn_command(sh->sub, 2, argv, lens, sh->cl->cmd_timeout_ms, on_hb_subscribed, sh) != 0)
        gw_clink_shard_fail(sh, "cannot queue a heartbeat SSUBSCRIBE");
}

/* ---- one master made, down, retried, freed ---- */

/* clink_int.h */
int64_t gw_clink_backoff_ms(const struct gw_clink *cl, int attempt)
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

/* clink_int.h */
void gw_clink_shard_failed(struct cshard *sh, const char *why)
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
    shard_set(sh, SH_RESETTING, why);
    event_active(cl->shard_ev, 0, 0);
}

/* clink_int.h */
void gw_clink_shard_down(struct cshard *sh)
{
    struct gw_clink *cl = sh->cl;

    free_conns(sh);
    shard_set(sh, SH_DOWN, "connections closed");
    /* The SUNSUBSCRIBEs it had not confirmed never will be. */
    for (struct gw_dict_entry *e = gw_dict_first(&cl->unsubs), *next; e; e = next) {
        next = gw_dict_next(&cl->unsubs, e);
        if (gw_clink_owned_by(sh, e->key, e->klen))
            gw_dict_delete(&cl->unsubs, e->key, e->klen);
    }
    gw_stat *st = gw_clink_master_stat(sh, cl->stats->master_reconnects);
    if (st)
        gw_stat_add(st, 1);
    cl->cops->on_keys_lost(cl->ctx, gw_clink_owned_by, sh);
    int64_t delay = gw_clink_backoff_ms(cl, sh->attempt++);
    gw_stat_add(&cl->stats->redis_reconnects, 1);
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    if (evtimer_add(sh->retry_ev, &tv) != 0)
        abort(); /* a master never retried is a silent outage */
}

static void on_shard_retry(evutil_socket_t fd, short what, void *arg)
{
    struct cshard *sh = arg;
    struct gw_clink *cl = sh->cl;

    if (cl->state != CL_LIVE || sh->state != SH_DOWN)
        return;
    LOG_INFO("master reconnect addr=%s:%d attempt=%d", sh->host, sh->port, sh->attempt);
    gw_clink_shard_open(sh);
    cl->cops->on_keys_open(cl->ctx, gw_clink_owned_by, sh);
    gw_clink_shard_subscribe_hb(sh);
}

/* clink_int.h */
bool gw_clink_shard_is(const struct cshard *sh, const struct gw_clink *cl, const struct gw_topo_node *node)
{
    int port = cl->cfg->redis.tls && node->tls_port ? node->tls_port : node->port;
    return sh->port == port && strcmp(sh->id, node->id) == 0 && strcmp(sh->host, node->host) == 0;
}

/* clink_int.h */
struct cshard *gw_clink_shard_new(struct gw_clink *cl, const struct gw_topo *map, const struct gw_topo_node *node)
{
    int port = cl->cfg->redis.tls && node->tls_port ? node->tls_port : node->port;
    if (!node->slots || !port)
        return NULL;
    struct cshard *sh = gw_xcalloc(1, sizeof *sh);
    sh->cl = cl;
    snprintf(sh->id, sizeof sh->id, "%s", node->id);
    snprintf(sh->host, sizeof sh->host, "%s", node->host);
    sh->port = port;
    sh->state = SH_DOWN;
    if (!gw_clink_hb_channel(cl, map, node->id, sh->hb, sizeof sh->hb)) {
        free(sh);
        return NULL;
    }
    sh->retry_ev = evtimer_new(cl->base, on_shard_retry, sh);
    if (!sh->retry_ev)
        abort();
    /* The lowest /metrics index no other master holds. */
    sh->midx = -1;
    for (int m = 0; m < GW_REDIS_MASTERS_MAX && sh->midx < 0; m++) {
        bool taken = false;
        for (size_t i = 0; i < cl->nsh && !taken; i++)
            taken = cl->sh[i]->midx == m;
        if (!taken)
            sh->midx = m;
    }
    if (sh->midx >= 0) {
        gw_stat_set(&cl->stats->master_port[sh->midx], (uint64_t)port);
        gw_stat_set(&cl->stats->master_reconnects[sh->midx], 0);
        gw_stat_set(&cl->stats->master_redirects[sh->midx], 0);
        gw_stat_set(&cl->stats->master_rtt_us[sh->midx], 0);
    }
    shard_set(sh, SH_DOWN, "new in the map");
    return sh;
}

/* clink_int.h */
void gw_clink_shard_free(struct cshard *sh)
{
    if (!sh)
        return;
    free_conns(sh);
    if (sh->retry_ev)
        event_free(sh->retry_ev);
    if (sh->midx >= 0) {
        gw_stat_set(&sh->cl->stats->master_port[sh->midx], 0);
        gw_stat_set(&sh->cl->stats->master_up[sh->midx], 0);
    }
    free(sh);
}
