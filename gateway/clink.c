/* The Redis Cluster link as a whole: its state, the slot map (shards.c) and
 * what each new map changes, the first connection (every master proven
 * once) and the whole reset when that fails (clink.h says when).
 *
 * Why a diff and not a reset on a new map: a failover or a migrated slot
 * concerns one master's slots; resetting every connection paused every
 * channel of every shard (0.1 s and more) and re-read them all. A new map
 * now adds the masters it names that the link lacks, frees those it no
 * longer names, and moves the keys of the slots whose owner changed: they
 * are told lost (the bus's repair holds what comes live), SSUBSCRIBEd on the
 * new owner, and once that master answered an SSUBSCRIBE of its heartbeat
 * channel queued after them (a "fence": replies come in order, so every
 * subscription before it is in place) they are told live and the repair
 * reads back from the streams what they missed. Masters the diff does not
 * touch go on without a pause. */
#define GW_LOG_MODULE "clink"

#include "clink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (i >= cl->nsh)
        return false;
    const struct cshard *sh = cl->sh[i];
    const struct gw_topo_node *n = cl->shards ? gw_topo_find(gw_shards_map(cl->shards), sh->id) : NULL;
    *out = (struct gw_clink_master){ sh->host, sh->port, n ? n->slots : 0, gw_redis_master_state_names[sh->state],
                                     sh->midx };
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

/* The master of the link that stands for node, or NULL. */
static struct cshard *shard_for(struct gw_clink *cl, const struct gw_topo_node *node)
{
    for (size_t i = 0; node && i < cl->nsh; i++)
        if (gw_clink_shard_is(cl->sh[i], cl, node))
            return cl->sh[i];
    return NULL;
}

static struct cshard *clink_owner(struct gw_clink *cl, const char *key, size_t klen)
{
    return shard_for(cl, gw_topo_key_owner(gw_shards_map(cl->shards), key, klen));
}

static struct cshard *clink_shard_at(struct gw_clink *cl, const char *host, int port)
{
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->port == port && strcmp(cl->sh[i]->host, host) == 0)
            return cl->sh[i];
    return NULL;
}

/* Every master echoed once (CL_CONNECTING): the link is live. */
static void clink_echoed(struct gw_clink *cl)
{
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->state != SH_LIVE)
            return;
    if (cl->state != CL_CONNECTING)
        return;
    cl->attempt = 0;
    set_state(cl, CL_LIVE, "every master's heartbeat echoed");
    cl->ops->on_live(cl->ctx);
}

/* Tears down the masters in SH_RESETTING, outside connection callbacks. */
static void on_shard_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;

    for (size_t i = 0; i < cl->nsh && cl->state == CL_LIVE; i++)
        if (cl->sh[i]->state == SH_RESETTING)
            gw_clink_shard_down(cl->sh[i]);
}

static void publish_masters(struct gw_clink *cl)
{
    gw_stat_set(&cl->stats->redis_masters, cl->nsh);
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
        struct cshard *sh = gw_clink_shard_new(cl, map, gw_topo_node(map, i));
        if (sh)
            cl->sh[cl->nsh++] = sh;
    }
    set_state(cl, CL_CONNECTING, "connecting to every master");
    publish_masters(cl);
    if (cl->nsh == 0) {
        gw_clink_fail(cl, "no master with slots and an address in the map");
        return;
    }
    for (size_t i = 0; i < cl->nsh; i++)
        gw_clink_shard_open(cl->sh[i]);
    cl->ops->on_open(cl->ctx);
    for (size_t i = 0; i < cl->nsh && cl->state == CL_CONNECTING; i++)
        gw_clink_shard_subscribe_hb(cl->sh[i]);
}

/* ---- slots that move while the link is live ---- */

static bool bit(const uint8_t *set, unsigned s)
{
    return set[s >> 3] & (1u << (s & 7));
}

static void set_bit(uint8_t *set, unsigned s)
{
    set[s >> 3] |= (uint8_t)(1u << (s & 7));
}

/* A predicate (gw_bus_key_pred) over a slot set, and one owner when given. */
struct slotset {
    struct gw_clink *cl;
    const uint8_t *bits;
    const struct cshard *owner; /* NULL: any */
};

static bool in_slotset(void *pctx, const char *key, size_t klen)
{
    const struct slotset *ss = pctx;
    return bit(ss->bits, gw_slot_of(key, klen)) && (!ss->owner || clink_owner(ss->cl, key, klen) == ss->owner);
}

/* Tells the keys of the lost slots lost (one walk of the bus's channels for
 * all of them) and moves the slots to `moving`. The bus's SUNSUBSCRIBEs in
 * flight for those keys are void: their confirmation, if any comes, is the
 * old owner's, which on_push ignores. */
static void flush_lost(struct gw_clink *cl)
{
    if (!cl->lost_any)
        return;
    for (struct gw_dict_entry *e = gw_dict_first(&cl->unsubs), *next; e; e = next) {
        next = gw_dict_next(&cl->unsubs, e);
        if (bit(cl->lost, gw_slot_of(e->key, e->klen)))
            gw_dict_delete(&cl->unsubs, e->key, e->klen);
    }
    struct slotset ss = { cl, cl->lost, NULL };
    cl->cops->on_keys_lost(cl->ctx, in_slotset, &ss);
    for (size_t i = 0; i < sizeof cl->lost; i++)
        cl->moving[i] |= cl->lost[i];
    memset(cl->lost, 0, sizeof cl->lost);
    cl->lost_any = false;
    cl->moving_any = true;
}

static void on_move_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;
    if (cl->state == CL_LIVE)
        flush_lost(cl);
}

static void clink_slot_lost(struct gw_clink *cl, unsigned slot, const char *why)
{
    if (cl->state != CL_LIVE) {
        gw_clink_refresh(cl, why);
        gw_clink_fail(cl, why); /* not proven once yet: the whole link starts over */
        return;
    }
    if (!bit(cl->lost, slot))
        LOG_INFO("slot %u lost its subscriptions reason=\"%s\": moving its keys after the next map", slot, why);
    set_bit(cl->lost, slot);
    cl->lost_any = true;
    gw_clink_refresh(cl, why);
    event_active(cl->move_ev, 0, 0);
}

/* A fence: the SSUBSCRIBE of sh's heartbeat channel queued after the keys of
 * the slots moved to sh; its answer proves their subscriptions. */
struct fence {
    struct gw_clink *cl;
    struct cshard *sh;
    uint8_t bits[GW_SLOT_COUNT / 8];
};

static void on_fence(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct fence *f = privdata;
    struct gw_clink *cl = f->cl;

    if (!reply) {
        /* sh's connection is gone: sh's own failure tells its keys lost. */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        for (unsigned s = 0; s < GW_SLOT_COUNT; s++)
            if (bit(f->bits, s))
                gw_clink_slot_lost(cl, s, "the fence after moved keys was refused");
    } else if (cl->state == CL_LIVE && f->sh->state == SH_LIVE) {
        struct slotset ss = { cl, f->bits, f->sh };
        cl->cops->on_keys_live(cl->ctx, in_slotset, &ss);
    }
    free(f);
}

static void fence(struct cshard *sh, const uint8_t *moved)
{
    struct gw_clink *cl = sh->cl;
    const struct gw_topo *map = gw_shards_map(cl->shards);
    struct fence *f = gw_xcalloc(1, sizeof *f);
    bool any = false;

    f->cl = cl;
    f->sh = sh;
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++)
        if (bit(moved, s) && shard_for(cl, gw_topo_slot_owner(map, s)) == sh) {
            set_bit(f->bits, s);
            any = true;
        }
    const char *argv[] = { "SSUBSCRIBE", sh->hb };
    size_t lens[] = { 10, strlen(sh->hb) };
    if (!any) {
        free(f);
    } else if (gw_rconn_command(sh->sub, 2, argv, lens, cl->cmd_timeout_ms, on_fence, f) != 0) {
        free(f);
        gw_clink_shard_fail(sh, "cannot queue the fence after moved keys");
    }
}

/* Subscribes the keys of the moving slots on their owner in the current map.
 * Masters from index fresh on are new in this map: their own opening
 * subscribes all their keys, and a master that is down does so when it
 * comes back; a slot no master serves yet waits for another map. */
static void move_keys(struct gw_clink *cl, size_t fresh)
{
    const struct gw_topo *map = gw_shards_map(cl->shards);
    uint8_t go[GW_SLOT_COUNT / 8] = { 0 };
    unsigned n = 0, left = 0;

    if (!cl->moving_any)
        return;
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++) {
        if (!bit(cl->moving, s))
            continue;
        struct cshard *sh = shard_for(cl, gw_topo_slot_owner(map, s));
        if (!sh) {
            left++;
            continue;
        }
        cl->moving[s >> 3] &= (uint8_t) ~(1u << (s & 7));
        size_t i = 0;
        while (cl->sh[i] != sh)
            i++;
        if (i >= fresh || sh->state == SH_DOWN || sh->state == SH_RESETTING)
            continue;
        set_bit(go, s);
        n++;
    }
    /* A slot no master serves (not even a failed one) is rare: the periodic
     * refresh, or any other, brings the map that serves it. */
    cl->moving_any = left > 0;
    if (!n)
        return;
    LOG_INFO("moving the keys of %u slots to their new masters (%u wait for a master)", n, left);
    struct slotset ss = { cl, go, NULL };
    cl->cops->on_keys_open(cl->ctx, in_slotset, &ss);
    /* A master still proving its fresh connections proves these with its
     * first echo (on_keys_live for all its keys). */
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->state == SH_LIVE)
            fence(cl->sh[i], go);
}

/* Does map still name sh as a master that serves slots? */
static bool still_master(struct gw_clink *cl, const struct gw_topo *map, const struct cshard *sh)
{
    const struct gw_topo_node *node = gw_topo_find(map, sh->id);
    return node && node->slots && gw_clink_shard_is(sh, cl, node);
}

/* A new map while the link is live: the diff of clink.c's header. */
static void apply_map(struct gw_clink *cl, const struct gw_topo *map, const struct gw_topo_diff *d)
{
    /* The keys of every slot that changed owner are lost where they were. */
    for (int s = gw_topo_diff_next(d, 0); s >= 0; s = gw_topo_diff_next(d, (unsigned)s + 1))
        set_bit(cl->lost, (unsigned)s);
    cl->lost_any = cl->lost_any || d->count > 0;
    gw_stat_add(&cl->stats->redis_slot_moves, d->count);
    flush_lost(cl);

    /* Masters gone (failed over, emptied, readdressed): their connections go. */
    size_t kept = 0;
    for (size_t i = 0; i < cl->nsh; i++) {
        struct cshard *sh = cl->sh[i];
        if (still_master(cl, map, sh)) {
            cl->sh[kept++] = sh;
            continue;
        }
        LOG_INFO("master addr=%s:%d id=%.12s left the map: closing its connections", sh->host, sh->port, sh->id);
        gw_clink_shard_free(sh);
    }
    cl->nsh = kept;

    /* A kept master whose heartbeat slot moved away gets another channel. */
    for (size_t i = 0; i < cl->nsh; i++) {
        struct cshard *sh = cl->sh[i];
        if (clink_owner(cl, sh->hb, strlen(sh->hb)) == sh ||
            !gw_clink_hb_channel(cl, map, sh->id, sh->hb, sizeof sh->hb))
            continue;
        LOG_INFO("master addr=%s:%d heartbeat moves to %s", sh->host, sh->port, sh->hb);
        if (sh->sub)
            gw_clink_shard_subscribe_hb(sh);
    }

    /* Masters new to the link. */
    size_t fresh = cl->nsh, n = gw_topo_node_count(map);
    cl->sh = gw_xrealloc(cl->sh, (cl->nsh + n + 1) * sizeof *cl->sh);
    for (size_t i = 0; i < n; i++) {
        const struct gw_topo_node *node = gw_topo_node(map, i);
        if (shard_for(cl, node))
            continue;
        struct cshard *sh = gw_clink_shard_new(cl, map, node);
        if (sh)
            cl->sh[cl->nsh++] = sh;
    }
    publish_masters(cl);

    move_keys(cl, fresh);
    for (size_t i = fresh; i < cl->nsh; i++) {
        struct cshard *sh = cl->sh[i];
        LOG_INFO("master addr=%s:%d id=%.12s joined the map", sh->host, sh->port, sh->id);
        gw_clink_shard_open(sh);
        cl->cops->on_keys_open(cl->ctx, gw_clink_owned_by, sh);
        gw_clink_shard_subscribe_hb(sh);
    }
}

/* ---- reset and reconnect ---- */

/* Frees every master's connections: pending commands get their callbacks
 * with NULL; messages already received are counted, not lost silently. */
static void free_shards(struct gw_clink *cl)
{
    struct cshard **sh = cl->sh;
    size_t n = cl->nsh;

    cl->sh = NULL;
    cl->nsh = 0;
    for (size_t i = 0; i < n; i++)
        gw_clink_shard_free(sh[i]);
    free(sh);
    while (gw_dict_first(&cl->unsubs))
        gw_dict_delete(&cl->unsubs, gw_dict_first(&cl->unsubs)->key, gw_dict_first(&cl->unsubs)->klen);
    memset(cl->lost, 0, sizeof cl->lost);
    memset(cl->moving, 0, sizeof cl->moving);
    cl->lost_any = cl->moving_any = false;
}

static void on_reset_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;

    set_state(cl, CL_DOWN, "connections closed");
    free_shards(cl);
    publish_masters(cl);
    if (!cl->ops->on_reset(cl->ctx))
        return;
    int64_t delay = gw_clink_backoff_ms(cl, cl->attempt);
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

static void on_map(void *ctx, const struct gw_topo *old, const struct gw_topo *map, const struct gw_topo_diff *d)
{
    struct gw_clink *cl = ctx;

    if (cl->state == CL_DISCOVERING && gw_topo_covered(map) > 0)
        link_open(cl);
    else if (cl->state == CL_CONNECTING && d->count > 0)
        gw_clink_fail(cl, "a slot changed master before the link was proven once");
    else if (cl->state == CL_LIVE)
        apply_map(cl, map, d);
}

/* An answer that changed nothing: slots that lost their subscriptions
 * still go to the master it names (the master that dropped them may have
 * taken them back, or a later map moves them again). */
static void on_map_same(void *ctx, const struct gw_topo *map)
{
    struct gw_clink *cl = ctx;
    if (cl->state == CL_LIVE) {
        flush_lost(cl);
        move_keys(cl, cl->nsh);
    }
}

static void on_map_error(void *ctx, const char *why)
{
}

static const struct gw_shards_ops shards_ops = { on_map, on_map_error, on_map_same };

/* ---- lifetime ---- */

static const struct gw_clink_up clink_up = {
    .fail = clink_fail,
    .shard_fail = gw_clink_shard_failed,
    .owner = clink_owner,
    .shard_at = clink_shard_at,
    .fn_loaded = gw_clink_shard_loaded,
    .refresh = clink_refresh,
    .slot_lost = clink_slot_lost,
    .echoed = clink_echoed,
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
    cl->move_ev = event_new(cl->base, -1, 0, on_move_event, cl);
    if (!cl->tick_ev || !cl->retry_ev || !cl->reset_ev || !cl->shard_ev || !cl->move_ev ||
        event_add(cl->tick_ev, &tick) != 0) {
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
        .conn = gw_clink_conn_opts(cl, "shards"),
        .refresh_ms = 5000,
        .min_gap_ms = 100,
        .hurry_ms = GW_CLINK_HURRY_MS,
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
    if (cl->move_ev)
        event_free(cl->move_ev);
    cl->tick_ev = cl->retry_ev = cl->reset_ev = cl->shard_ev = cl->move_ev = NULL;
}

void gw_clink_free(struct gw_clink *cl)
{
    if (!cl)
        return;
    gw_dict_deinit(&cl->unsubs);
    SSL_CTX_free(cl->tls_ctx);
    free(cl);
}
