/* The bus thread: libevent loop, the inbox from the workers, the node-wide
 * channel table, delivery to the workers and client publishes. The Redis
 * connections, heartbeat and reconnect live in link.c, which reports back
 * through the link_ops below; the workers are reached only via ops->post. */
#define GW_LOG_MODULE "bus"

#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "alloc.h"
#include "bus_int.h"
#include "codec.h"
#include "log.h"

bool gw_bus_ready(const struct gw_bus *bus)
{
    if (bus->clink)
        return gw_clink_ready(bus->clink);
    if (bus->link)
        return gw_link_ready(bus->link);
    return atomic_load_explicit(&((struct gw_bus *)bus)->ready, memory_order_acquire);
}

const struct gw_bus_stats *gw_bus_stats(const struct gw_bus *bus)
{
    return &bus->stats;
}

static void set_standalone_ready(struct gw_bus *bus, bool ready)
{
    atomic_store_explicit(&bus->ready, ready, memory_order_release);
    gw_stat_set(&bus->stats.redis_connected, ready);
}

/* ---- posting to workers ---- */

static void post_publish_result(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                                const struct gw_position *at, bool ok)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_PUBLISH_RESULT, NULL, 0);
    m->session_id = session_id;
    m->has_id = has_id;
    m->id = id;
    m->ok = ok;
    if (at)
        m->at = *at;
    gw_stat_add(ok ? &bus->stats.publishes_ok : &bus->stats.publishes_failed, 1);
    bus->ops->post(bus->ctx, worker, m);
}

/* A message Redis delivered: an envelope goes through the channel's repair
 * (order, duplicates, gaps), a plain payload straight to the workers. */
static void on_live_message(struct gw_bus *bus, const char *name, size_t len, const char *payload, size_t plen)
{
    struct bus_chan *ch = gw_bus_chan(bus, name, len);
    struct gw_envelope env;
    int rc;

    if (!ch)
        return;
    gw_stat_add(&bus->stats.redis_messages_received, 1);
    struct gw_frame *event = gw_codec_presence_event(name, len, payload, plen);
    if (event) {
        gw_bus_fanout_as(bus, GW_WMAIL_PRESENCE_EVENT, name, len, event);
        return;
    }
    rc = gw_envelope_parse(payload, plen, &env);
    if (rc < 0) {
        gw_stat_add(&bus->stats.redis_messages_dropped_bad_envelope, 1);
        if (gw_bus_log_this(&bus->stats.redis_messages_dropped_bad_envelope))
            LOG_WARN("dropped message reason=bad_envelope channel=%.*s error=%s dropped_total=%" PRIu64, (int)len,
                     name, rc == -EPROTONOSUPPORT ? "unknown_version" : "malformed",
                     gw_stat_get(&bus->stats.redis_messages_dropped_bad_envelope));
        return;
    }
    if (rc == 0) {
        if (!gw_bus_too_large(bus, name, plen))
            gw_bus_deliver(bus, name, len, NULL, payload, plen);
        return;
    }
    if (gw_bus_too_large(bus, name, env.payload_len))
        return; /* its offset then shows as a gap on the clients */
    struct gw_position at;
    gw_position_set(&at, env.offset, env.epoch, env.epoch_len);
    gw_repair_message(&bus->repair, &ch->rep, name, len, &at, env.payload, env.payload_len);
}

/* ---- channel table ---- */

static void cmd_subscribe(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t gen)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e) {
        struct bus_chan *fresh = gw_xcalloc(1, sizeof(struct bus_chan) + sizeof(uint32_t) * (size_t)bus->nworkers);
        gw_repair_chan_init(&fresh->rep);
        e = gw_dict_add(&bus->chans, name, len, fresh, NULL);
        gw_stat_set(&bus->stats.channels, bus->chans.count);
    }
    struct bus_chan *ch = e->value;
    ch->want_mask |= 1ULL << worker;
    /* A new incarnation on that worker: tell it live again, with its gen. */
    ch->live_mask &= ~(1ULL << worker);
    ch->gen[worker] = gen;
    gw_bus_chan_reconcile(bus, e->key, len, ch);
    gw_bus_chans_count(bus, worker, name, len, 1);
}

static void cmd_unsubscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    gw_bus_chans_count(bus, worker, name, len, 0);
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e)
        return;
    struct bus_chan *ch = e->value;
    ch->want_mask &= ~(1ULL << worker);
    ch->live_mask &= ~(1ULL << worker);
    gw_bus_chan_reconcile(bus, e->key, len, ch);
}

/* ---- what the link reports (bus thread, inside connection/libevent callbacks) ---- */

/* Re-subscribes every wanted channel in batches; the link then subscribes
 * its heartbeat channel last. */
static void link_on_open(void *ctx)
{
    gw_bus_ctl_open(ctx);
    gw_bus_resubscribe(ctx, NULL, NULL);
}

static void link_on_message(void *ctx, const char *key, size_t klen, const char *payload, size_t len)
{
    struct gw_bus *bus = ctx;
    size_t nlen;
    const char *name = NULL;
    if (!gw_bus_ctl_message(bus, key, klen, payload, len))
        name = gw_bus_unprefixed(bus, key, klen, &nlen);
    if (name)
        on_live_message(bus, name, nlen, payload, len);
}

static void link_on_subscription(void *ctx, const char *key, size_t klen, bool subscribed)
{
    struct gw_bus *bus = ctx;
    size_t len;
    const char *name = gw_bus_unprefixed(bus, key, klen, &len);
    if (!name)
        return;
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e)
        return;
    struct bus_chan *ch = e->value;
    if (ch->outstanding > 0)
        ch->outstanding--;
    ch->redis_subscribed = subscribed;
    gw_bus_chan_reconcile(bus, e->key, len, ch);
}

/* A command's answer goes to the file that sent it, told by its token's
 * first int (bus_int.h): here, above them all, so none of them names
 * another for it. */
static void link_on_reply(void *ctx, void *token, const struct redisReply *reply)
{
    struct gw_bus *bus = ctx;
    int kind = *(const int *)token;

    if (kind == BUS_TOKEN_IDEM)
        gw_bus_idem_on_reply(bus, token, reply);
    else if (kind == BUS_TOKEN_CHANS_WRITE || kind == BUS_TOKEN_CHANS_READ)
        gw_bus_chans_on_reply(bus, token, reply);
    else if (!gw_bus_revoke_on_reply(bus, token, reply))
        gw_bus_ctl_on_reply(bus, token, reply);
}

static void link_on_published(void *ctx, void *token, const struct gw_position *at)
{
    struct gw_bus *bus = ctx;
    struct pub_wait *pw = token;
    bus->pub_in_flight--;
    bus->pub_bytes_in_flight -= pw->bytes;
    if (pw->idem) {
        gw_bus_idem_published(bus, pw, at);
        return;
    }
    post_publish_result(bus, pw->worker, pw->session_id, pw->has_id, pw->id, at, at != NULL);
    free(pw);
}

int gw_bus_masters(struct gw_bus *bus, struct gw_roster_master *out, int max)
{
    struct gw_clink_master m;
    int n = 0;

    /* A master's per-master figures are at its own index (m.stat), if any. */
    for (; bus->clink && n < max && gw_clink_master(bus->clink, (size_t)n, &m); n++)
        out[n] = (struct gw_roster_master){ m.host, m.port, m.slots, m.state,
                                            m.stat >= 0 ? gw_stat_get(&bus->stats.master_rtt_us[m.stat]) : 0,
                                            m.stat >= 0 ? gw_stat_get(&bus->stats.master_reconnects[m.stat]) : 0 };
    return n;
}

char *gw_bus_cluster(struct gw_bus *bus, size_t *len)
{
    return gw_roster_copy(&bus->roster, len);
}

/* Every subscription is in place again: read back what each channel with
 * history missed while the link was down. */
static void link_on_live(void *ctx)
{
    struct gw_bus *bus = ctx;
    gw_bus_ctl_live(bus);
    gw_bus_chans_relive(bus);
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans); e; e = gw_dict_next(&bus->chans, e)) {
        struct bus_chan *ch = e->value;
        if (ch->want_mask)
            gw_repair_link_live(&bus->repair, &ch->rep, e->key, e->klen);
    }
    gw_presence_live(&bus->presence);
}

/* Nothing is subscribed on the next link; forget what was in flight. */
static bool link_on_reset(void *ctx)
{
    struct gw_bus *bus = ctx;
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans), *next; e; e = next) {
        next = gw_dict_next(&bus->chans, e);
        struct bus_chan *ch = e->value;
        ch->outstanding = 0;
        ch->redis_subscribed = false;
        ch->live_mask = 0; /* every worker is told LINK_DOWN below */
        if (!ch->want_mask)
            gw_bus_chan_free(gw_dict_delete(&bus->chans, e->key, e->klen));
        else
            gw_repair_link_lost(&ch->rep);
    }
    gw_stat_set(&bus->stats.channels, bus->chans.count);
    /* An ack must again mean what the protocol says: nothing is live until
     * Redis confirms it on the next link. */
    for (int w = 0; w < bus->nworkers; w++)
        bus->ops->post(bus->ctx, w, gw_wmail_new(GW_WMAIL_LINK_DOWN, NULL, 0));
    return !atomic_load(&bus->stop);
}

/* ---- what the cluster link reports of one master or of moved slots (clink.h's
 * gw_clink_ops): here, above both the channel table (bus_chan.c) and the
 * control plane (bus_ctl.c), which it drives ---- */

/* clink's on_keys_open */
static void clink_on_keys_open(void *ctx, gw_bus_key_pred pred, void *pctx)
{
    gw_bus_ctl_keys_open(ctx, pred, pctx);
    gw_bus_resubscribe(ctx, pred, pctx);
}

/* clink's on_keys_lost: what link_on_reset does, for the channels of one
 * master or of the slots that moved only; their workers are told that each
 * is not live. */
static void clink_on_keys_lost(void *ctx, gw_bus_key_pred pred, void *pctx)
{
    struct gw_bus *bus = ctx;
    char key[256];

    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans), *next; e; e = next) {
        next = gw_dict_next(&bus->chans, e);
        struct bus_chan *ch = e->value;
        size_t klen = gw_bus_prefixed(bus, e->key, e->klen, key);
        if (!pred(pctx, key, klen))
            continue;
        ch->outstanding = 0;
        ch->redis_subscribed = false;
        uint64_t told = ch->live_mask;
        ch->live_mask = 0;
        if (!ch->want_mask) {
            gw_bus_chan_reconcile(bus, e->key, e->klen, ch); /* deletes it */
            continue;
        }
        gw_repair_link_lost(&ch->rep);
        for (int w = 0; w < bus->nworkers; w++)
            if (told & (1ULL << w))
                bus->ops->post(bus->ctx, w, gw_wmail_new(GW_WMAIL_LINK_DOWN, e->key, e->klen));
    }
}

/* clink's on_keys_live: link_on_live for one master's channels, or those of
 * the slots that moved to a master whose subscriptions are proven. */
static void clink_on_keys_live(void *ctx, gw_bus_key_pred pred, void *pctx)
{
    struct gw_bus *bus = ctx;
    char key[256];

    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans); e; e = gw_dict_next(&bus->chans, e)) {
        struct bus_chan *ch = e->value;
        size_t klen = gw_bus_prefixed(bus, e->key, e->klen, key);
        if (ch->want_mask && pred(pctx, key, klen))
            gw_repair_link_live(&bus->repair, &ch->rep, e->key, e->klen);
    }
    gw_bus_ctl_keys_live(bus, pred, pctx);
    gw_bus_chans_keys_live(bus, pred, pctx);
}

/* clink's on_master_new: presence registers its members again under a new
 * incarnation (what the whole link's reset did before a failover became a
 * diff of the map). */
static void clink_on_master_new(void *ctx)
{
    gw_presence_live(&((struct gw_bus *)ctx)->presence);
}

const struct gw_clink_ops gw_bus_clink_ops = {
    .on_keys_open = clink_on_keys_open,
    .on_keys_lost = clink_on_keys_lost,
    .on_keys_live = clink_on_keys_live,
    .on_master_new = clink_on_master_new,
};

static const struct gw_link_ops link_ops = {
    .on_open = link_on_open,
    .on_message = link_on_message,
    .on_subscription = link_on_subscription,
    .on_published = link_on_published,
    .on_counted = gw_bus_ctl_on_counted,
    .on_reply = link_on_reply,
    .on_read = gw_bus_on_read,
    .on_live = link_on_live,
    .on_reset = link_on_reset,
};

/* ---- publishing ---- */

static void cmd_publish(struct gw_bus *bus, struct bus_cmd *cmd)
{
    if (cmd->idem_key) {
        gw_bus_idem_publish(bus, cmd);
        return;
    }
    if (bus->standalone) {
        if (gw_bus_chan(bus, cmd->name, cmd->name_len))
            gw_bus_deliver(bus, cmd->name, cmd->name_len, NULL, cmd->payload, cmd->payload_len);
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, NULL, true);
        return;
    }
    if (bus->pub_in_flight >= MAX_PUBLISHES_IN_FLIGHT ||
        bus->pub_bytes_in_flight + cmd->payload_len > bus->cfg->max_inbox_bytes) {
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, NULL, false);
        return;
    }
    char key[256];
    size_t klen = gw_bus_prefixed(bus, cmd->name, cmd->name_len, key);
    struct pub_wait *pw = gw_xmalloc(sizeof(*pw));
    *pw = (struct pub_wait){ cmd->payload_len, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, NULL };
    /* --history-channels: only those channels' publishes are stored. */
    int rc = gw_config_keeps_history(bus->cfg, cmd->name)
                 ? bus_publish(bus, key, klen, cmd->payload, cmd->payload_len, pw)
                 : bus_publish_plain(bus, key, klen, cmd->payload, cmd->payload_len, pw);
    if (rc != 0) {
        free(pw);
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, NULL, false);
        return;
    }
    bus->pub_in_flight++;
    bus->pub_bytes_in_flight += cmd->payload_len;
}

/* ---- inbox ---- */

static void cmd_presence(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    char key[256];
    size_t klen = gw_bus_prefixed(bus, cmd->name, cmd->name_len, key);
    gw_presence_handle(&bus->presence, cmd->worker, cmd->session_id, cmd->name, cmd->name_len, key, klen, cmd->pres);
}

static void bus_drain_inbox(struct gw_bus *bus)
{
    struct gw_mail *m = gw_mailbox_take_all(&bus->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        struct bus_cmd *cmd = (struct bus_cmd *)m;
        switch (cmd->type) {
        case CMD_SUBSCRIBE: cmd_subscribe(bus, cmd->worker, cmd->name, cmd->name_len, cmd->gen); break;
        case CMD_UNSUBSCRIBE: cmd_unsubscribe(bus, cmd->worker, cmd->name, cmd->name_len); break;
        case CMD_PUBLISH: cmd_publish(bus, cmd); break;
        case CMD_RECOVER: gw_bus_cmd_recover(bus, cmd); break;
        case CMD_HISTORY: gw_bus_cmd_history(bus, cmd); break;
        case CMD_LEFT:
            gw_bus_cmd_left(bus, cmd);
            gw_presence_left(&bus->presence, cmd->session_id);
            break;
        case CMD_PRESENCE: cmd_presence(bus, cmd); break;
        case CMD_DISCONNECT: gw_bus_cmd_disconnect(bus, cmd); break;
        case CMD_DISCONNECTED: gw_bus_cmd_disconnected(bus, cmd); break;
        case CMD_REVOKE: gw_bus_cmd_revoke(bus, cmd); break;
        case CMD_CHANNELS: gw_bus_cmd_channels(bus, cmd); break;
        case CMD_COUNTS: gw_bus_cmd_counts(bus, cmd); break;
        }
        if (cmd->type == CMD_PUBLISH)
            atomic_fetch_sub_explicit(&bus->inbox_bytes, cmd->payload_len, memory_order_relaxed);
        free(cmd->payload);
        free(cmd->unsub);
        free(cmd->idem_key);
        gw_presence_req_free(cmd->pres);
        free(cmd->chq);
        free(cmd);
        m = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;
    bus_drain_inbox(bus);
    if (atomic_load(&bus->stop))
        event_base_loopbreak(bus->base);
}

/* ---- thread and lifetime ---- */

static void *bus_main(void *arg)
{
    struct gw_bus *bus = arg;

    if (bus->standalone) {
        set_standalone_ready(bus, true);
        LOG_INFO("standalone mode: no Redis, one node");
    } else if (bus->clink) {
        gw_clink_start(bus->clink);
    } else {
        gw_link_start(bus->link);
    }
    gw_roster_start(&bus->roster, bus->base, bus->link, bus->clink, bus->cfg->node_id, bus->ops->describe,
                    bus->ctx);
    gw_presence_start(&bus->presence, bus->base);
    gw_bus_chans_start(bus);
    bus_drain_inbox(bus);
    if (!atomic_load(&bus->stop))
        event_base_loop(bus->base, EVLOOP_NO_EXIT_ON_EMPTY);
    gw_roster_stop(&bus->roster);
    gw_presence_stop(&bus->presence);
    gw_bus_chans_stop(bus);

    if (bus->standalone)
        set_standalone_ready(bus, false);
    else if (bus->clink)
        gw_clink_stop(bus->clink); /* fails every pending publish and read */
    else
        gw_link_stop(bus->link); /* fails every pending publish and read */
    gw_bus_reads_stop(bus);
    gw_bus_ctl_stop(bus);
    bus_drain_inbox(bus); /* frees what came in after the loop stopped */
    LOG_INFO("bus stopped");
    return NULL;
}

static void evthread_setup(void)
{
    /* Lets other threads call event_active() on the bus loop. */
    if (evthread_use_pthreads() != 0)
        abort();
}

struct gw_bus *gw_bus_new(const struct gw_config *cfg, int nworkers, const struct gw_bus_ops *ops, void *ctx)
{
    static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
    pthread_once(&evthread_once, evthread_setup);

    struct gw_bus *bus = gw_xcalloc(1, sizeof(*bus));
    bus->cfg = cfg;
    bus->ops = ops;
    bus->ctx = ctx;
    bus->nworkers = nworkers;
    bus->standalone = cfg->redis_url == NULL;
    gw_mailbox_init(&bus->inbox);
    gw_roster_init(&bus->roster);
    gw_dict_init(&bus->chans);
    gw_readq_init(&bus->waiting);
    atomic_init(&bus->ready, false);
    atomic_init(&bus->stop, false);
    bus->prefix_len = strlen(cfg->channel_prefix);
    bus->ctl = gw_bus_ctl_new(bus, &gw_bus_revoke_hooks);
    gw_revoke_init(&bus->revoked);
    gw_dict_init(&bus->idem_local);
    bus->chans_idx = gw_bus_chans_new(bus);
    /* A channel holds at most one client queue's worth while it repairs. */
    gw_repair_init(&bus->repair, &gw_bus_repair_ops, bus, cfg->queue_max_bytes,
                   (uint64_t)cfg->recovery_max_messages, &bus->stats);
    bus->base = event_base_new();
    if (!bus->base) {
        LOG_ERR("event_base_new failed");
        abort();
    }
    bus->wake_ev = event_new(bus->base, -1, 0, on_wake, bus);
    if (!bus->wake_ev) {
        LOG_ERR("event_new failed");
        abort();
    }
    bus->bp_ev = event_new(bus->base, -1, EV_PERSIST, gw_bus_on_backpressure_timer, bus);
    if (!bus->bp_ev) {
        LOG_ERR("event_new failed");
        abort();
    }
    atomic_init(&bus->inbox_bytes, 0);
    /* A non-pending event with no fd only runs when activated: keep it
     * allocated and let event_active() schedule it from any thread. */
    if (!bus->standalone && cfg->redis.cluster)
        bus->clink = gw_clink_new(cfg, bus->base, &bus->stats, &link_ops, &gw_bus_clink_ops, bus);
    else if (!bus->standalone)
        bus->link = gw_link_new(cfg, bus->base, &bus->stats, &link_ops, bus);
    gw_presence_init(&bus->presence, cfg, bus->link, bus->clink, &bus->stats, ops->post, ctx);
    return bus;
}

int gw_bus_start(struct gw_bus *bus)
{
    int rc = pthread_create(&bus->thread, NULL, bus_main, bus);
    if (rc != 0)
        return -rc;
    bus->started = true;
    return 0;
}

void gw_bus_stop(struct gw_bus *bus)
{
    if (!bus->started)
        return;
    atomic_store(&bus->stop, true);
    event_active(bus->wake_ev, EV_READ, 0);
    pthread_join(bus->thread, NULL);
    bus->started = false;
}

void gw_bus_free(struct gw_bus *bus)
{
    if (!bus)
        return;
    gw_link_free(bus->link);
    gw_clink_free(bus->clink);
    gw_bus_ctl_free(bus);
    gw_revoke_deinit(&bus->revoked);
    gw_bus_idem_free(bus);
    gw_bus_chans_free(bus->chans_idx);
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans); e; e = gw_dict_next(&bus->chans, e))
        gw_bus_chan_free(e->value);
    gw_dict_deinit(&bus->chans);
    gw_readq_deinit(&bus->waiting);
    struct gw_mail *m = gw_mailbox_take_all(&bus->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        free(((struct bus_cmd *)m)->payload);
        free(((struct bus_cmd *)m)->unsub);
        free(((struct bus_cmd *)m)->idem_key);
        gw_presence_req_free(((struct bus_cmd *)m)->pres);
        free(((struct bus_cmd *)m)->chq);
        free(m);
        m = next;
    }
    gw_mailbox_deinit(&bus->inbox);
    gw_roster_deinit(&bus->roster);
    gw_presence_deinit(&bus->presence);
    event_free(bus->wake_ev);
    event_free(bus->bp_ev);
    event_base_free(bus->base);
    free(bus);
}
