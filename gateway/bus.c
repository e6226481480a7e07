/* The bus thread: libevent loop, two hiredis connections, the node-wide
 * channel table and the heartbeat that proves the subscription is alive.
 *
 * hiredis 0.14 has no async timeouts and answers no PING on a subscribed
 * connection, so liveness is proven end to end: every heartbeat interval the
 * publisher connection PUBLISHes to a channel only this node subscribes to,
 * and the subscriber connection must see it come back within the heartbeat
 * timeout. The heartbeat channel is subscribed after every other channel on a
 * fresh link, so its first echo also proves the re-subscription finished. */
#define GW_LOG_MODULE "bus"

#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clock.h"
#include "codec.h"
#include "dict.h"
#include "log.h"
#include "mailbox.h"

/* A client publish waits at most this many at once on the publisher
 * connection; beyond that Redis is not keeping up and clients get
 * `unavailable` instead of growing hiredis' buffers without bound. */
#define MAX_PUBLISHES_IN_FLIGHT 65536

enum link_state {
    LINK_DOWN = 0,   /* no connection; a retry timer may be armed */
    LINK_CONNECTING, /* connections opened, heartbeat echo not seen yet */
    LINK_LIVE,       /* heartbeat echo fresh: ready */
};

static const char *link_state_name(enum link_state s)
{
    switch (s) {
    case LINK_DOWN: return "down";
    case LINK_CONNECTING: return "connecting";
    case LINK_LIVE: return "live";
    }
    return "?";
}

/* One channel some worker wants. Reconciled against Redis by chan_reconcile(). */
struct bus_chan {
    uint64_t want_mask; /* workers with local subscribers */
    uint64_t live_mask; /* workers told the subscription is live */
    int outstanding;    /* SUBSCRIBE/UNSUBSCRIBE sent, reply not yet seen */
    bool redis_subscribed; /* as of the last reply on this link */
};

enum bus_cmd_type { CMD_SUBSCRIBE = 1, CMD_UNSUBSCRIBE, CMD_PUBLISH };

struct bus_cmd {
    struct gw_mail link; /* first */
    enum bus_cmd_type type;
    int worker;
    uint64_t session_id;
    bool has_id;
    int64_t id;
    char *payload; /* PUBLISH: owned */
    size_t payload_len;
    size_t name_len;
    char name[];
};

/* privdata of one in-flight PUBLISH. */
struct pub_wait {
    struct gw_bus *bus;
    int worker;
    uint64_t session_id;
    bool has_id;
    int64_t id;
};

struct gw_bus {
    /* Read-only after gw_bus_new. */
    const struct gw_config *cfg;
    const struct gw_bus_ops *ops;
    void *ctx;
    int nworkers;
    bool standalone;
    char *hb_channel; /* "__wsgate:hb:<node_id>", outside the client prefix space */

    /* Any thread. */
    struct gw_mailbox inbox;
    atomic_bool ready;
    atomic_bool stop;
    struct gw_bus_stats stats; /* written by the bus thread only */

    /* Created in gw_bus_new; used by the bus thread, and by any thread only
     * through event_active() (libevent is set up for pthreads). */
    struct event_base *base;
    struct event *wake_ev;

    /* Bus thread only. */
    pthread_t thread;
    bool started;
    struct event *tick_ev, *retry_ev, *reset_ev;
    struct gw_dict chans; /* client channel name -> struct bus_chan* */
    redisAsyncContext *sub, *pub;
    bool sub_up, pub_up;
    enum link_state state;
    int attempt;
    int64_t link_started_us;
    int64_t last_echo_us;
    int64_t last_hb_sent_us;
    uint64_t hb_seq;
    const char *reset_reason; /* static; non-NULL while a reset is scheduled */
    int pub_in_flight;
};

static void link_reset(struct gw_bus *bus, const char *reason);

bool gw_bus_ready(const struct gw_bus *bus)
{
    return atomic_load_explicit(&((struct gw_bus *)bus)->ready, memory_order_acquire);
}

const struct gw_bus_stats *gw_bus_stats(const struct gw_bus *bus)
{
    return &bus->stats;
}

static void set_ready(struct gw_bus *bus, bool ready)
{
    atomic_store_explicit(&bus->ready, ready, memory_order_release);
    gw_stat_set(&bus->stats.redis_connected, ready);
}

static void set_state(struct gw_bus *bus, enum link_state to, const char *why)
{
    if (bus->state == to)
        return;
    LOG_INFO("redis link from=%s to=%s reason=\"%s\"", link_state_name(bus->state), link_state_name(to), why);
    bus->state = to;
    set_ready(bus, to == LINK_LIVE);
}

/* ---- posting to workers ---- */

static void post_live(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    bus->ops->post(bus->ctx, worker, gw_wmail_new(GW_WMAIL_LIVE, name, len));
}

static void post_publish_result(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                                bool ok)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_PUBLISH_RESULT, NULL, 0);
    m->session_id = session_id;
    m->has_id = has_id;
    m->id = id;
    m->ok = ok;
    gw_stat_add(ok ? &bus->stats.publishes_ok : &bus->stats.publishes_failed, 1);
    bus->ops->post(bus->ctx, worker, m);
}

static void drop_too_large(struct gw_bus *bus, const char *name, size_t payload_len)
{
    gw_stat_add(&bus->stats.redis_messages_dropped_too_large, 1);
    /* One line per power of two drops, not one per message. */
    uint64_t n = gw_stat_get(&bus->stats.redis_messages_dropped_too_large);
    if ((n & (n - 1)) == 0)
        LOG_WARN("dropped message reason=too_large channel=%s bytes=%zu limit=%zu dropped_total=%" PRIu64, name,
                 payload_len, bus->cfg->max_message_bytes, n);
}

/* Encodes the message once and hands it to every worker that wants name. */
static void deliver(struct gw_bus *bus, const char *name, size_t len, const char *payload, size_t payload_len)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e)
        return;
    struct bus_chan *ch = e->value;
    if (!ch->want_mask)
        return;
    gw_stat_add(&bus->stats.redis_messages_received, 1);
    if (payload_len > bus->cfg->max_message_bytes) {
        drop_too_large(bus, name, payload_len);
        return;
    }
    struct gw_frame *frame = gw_codec_message(name, len, payload, payload_len);
    if (frame->len > bus->cfg->queue_max_bytes) {
        /* Escaping can grow a non-JSON payload up to 6x; a frame no queue can
         * hold would shed every subscriber, so drop it instead. */
        gw_frame_unref(frame);
        drop_too_large(bus, name, payload_len);
        return;
    }
    int last = 63 - __builtin_clzll(ch->want_mask);
    for (int w = 0; w <= last; w++) {
        if (!(ch->want_mask & (1ULL << w)))
            continue;
        struct gw_wmail *m = gw_wmail_new(GW_WMAIL_DELIVER, name, len);
        /* Each worker gets its own buffer so refcounts stay plain and never
         * bounce between cores per recipient. The JSON is encoded once; other
         * workers get a memcpy, made before the encoded frame is posted
         * (after that it belongs to its worker). */
        m->frame = w == last ? frame : gw_frame_copy(frame);
        bus->ops->post(bus->ctx, w, m);
    }
}

/* ---- channel table ---- */

static size_t prefixed(const struct gw_bus *bus, const char *name, size_t len, char *out)
{
    size_t plen = strlen(bus->cfg->channel_prefix);
    memcpy(out, bus->cfg->channel_prefix, plen);
    memcpy(out + plen, name, len);
    out[plen + len] = '\0';
    return plen + len;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

static bool sub_send(struct gw_bus *bus, const char *verb, const char *name, size_t len)
{
    char key[256];
    size_t klen = prefixed(bus, name, len, key);
    const char *argv[2] = { verb, key };
    size_t lens[2] = { strlen(verb), klen };
    return redisAsyncCommandArgv(bus->sub, on_sub_reply, bus, 2, argv, lens) == REDIS_OK;
}

/* Brings Redis and the workers in line with want_mask. Only one command per
 * channel is in flight at a time: hiredis 0.14 drops the callback of a
 * SUBSCRIBE sent while an UNSUBSCRIBE of the same channel is pending.
 * Returns true when the channel was deleted. */
static bool chan_reconcile(struct gw_bus *bus, const char *name, size_t len, struct bus_chan *ch)
{
    if (bus->standalone)
        ch->redis_subscribed = ch->want_mask != 0;
    if (ch->outstanding > 0)
        return false;
    if (ch->want_mask && !ch->redis_subscribed) {
        if (bus->sub && sub_send(bus, "SUBSCRIBE", name, len))
            ch->outstanding++;
        return false; /* no link: link_open() subscribes it */
    }
    if (!ch->want_mask && ch->redis_subscribed) {
        if (bus->sub && sub_send(bus, "UNSUBSCRIBE", name, len)) {
            ch->outstanding++;
            return false;
        }
        ch->redis_subscribed = false;
    }
    if (ch->want_mask) {
        uint64_t tell = ch->want_mask & ~ch->live_mask;
        for (int w = 0; w < bus->nworkers; w++)
            if (tell & (1ULL << w))
                post_live(bus, w, name, len);
        ch->live_mask |= tell;
        return false;
    }
    free(gw_dict_delete(&bus->chans, name, len));
    gw_stat_set(&bus->stats.channels, bus->chans.count);
    return true;
}

static void cmd_subscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e) {
        e = gw_dict_add(&bus->chans, name, len, gw_xcalloc(1, sizeof(struct bus_chan)), NULL);
        gw_stat_set(&bus->stats.channels, bus->chans.count);
    }
    struct bus_chan *ch = e->value;
    ch->want_mask |= 1ULL << worker;
    chan_reconcile(bus, e->key, len, ch);
}

static void cmd_unsubscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e)
        return;
    struct bus_chan *ch = e->value;
    ch->want_mask &= ~(1ULL << worker);
    ch->live_mask &= ~(1ULL << worker);
    chan_reconcile(bus, e->key, len, ch);
}

/* ---- publishing ---- */

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct pub_wait *pw = privdata;
    redisReply *reply = r;
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;

    if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("publish failed error=\"%s\"", reply->str);
    pw->bus->pub_in_flight--;
    post_publish_result(pw->bus, pw->worker, pw->session_id, pw->has_id, pw->id, ok);
    free(pw);
}

static void cmd_publish(struct gw_bus *bus, struct bus_cmd *cmd)
{
    if (bus->standalone) {
        deliver(bus, cmd->name, cmd->name_len, cmd->payload, cmd->payload_len);
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, true);
        return;
    }
    if (bus->state != LINK_LIVE || !bus->pub || bus->pub_in_flight >= MAX_PUBLISHES_IN_FLIGHT) {
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, false);
        return;
    }
    char key[256];
    size_t klen = prefixed(bus, cmd->name, cmd->name_len, key);
    struct pub_wait *pw = gw_xmalloc(sizeof(*pw));
    *pw = (struct pub_wait){ bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id };
    if (redisAsyncCommand(bus->pub, on_publish_reply, pw, "PUBLISH %b %b", key, klen, cmd->payload,
                          cmd->payload_len) != REDIS_OK) {
        free(pw);
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, false);
        return;
    }
    bus->pub_in_flight++;
}

/* ---- inbox ---- */

static void bus_drain_inbox(struct gw_bus *bus)
{
    struct gw_mail *m = gw_mailbox_take_all(&bus->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        struct bus_cmd *cmd = (struct bus_cmd *)m;
        switch (cmd->type) {
        case CMD_SUBSCRIBE: cmd_subscribe(bus, cmd->worker, cmd->name, cmd->name_len); break;
        case CMD_UNSUBSCRIBE: cmd_unsubscribe(bus, cmd->worker, cmd->name, cmd->name_len); break;
        case CMD_PUBLISH: cmd_publish(bus, cmd); break;
        }
        free(cmd->payload);
        free(cmd);
        m = next;
    }
}

static void bus_post(struct gw_bus *bus, struct bus_cmd *cmd)
{
    if (gw_mailbox_post(&bus->inbox, &cmd->link))
        event_active(bus->wake_ev, EV_READ, 0);
}

static struct bus_cmd *cmd_new(enum bus_cmd_type type, int worker, const char *name, size_t len)
{
    struct bus_cmd *cmd = gw_xcalloc(1, sizeof(*cmd) + len + 1);
    cmd->type = type;
    cmd->worker = worker;
    memcpy(cmd->name, name, len);
    cmd->name_len = len;
    return cmd;
}

void gw_bus_post_subscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    bus_post(bus, cmd_new(CMD_SUBSCRIBE, worker, name, len));
}

void gw_bus_post_unsubscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    bus_post(bus, cmd_new(CMD_UNSUBSCRIBE, worker, name, len));
}

void gw_bus_post_publish(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                         const char *name, size_t len, char *payload, size_t payload_len)
{
    struct bus_cmd *cmd = cmd_new(CMD_PUBLISH, worker, name, len);
    cmd->session_id = session_id;
    cmd->has_id = has_id;
    cmd->id = id;
    cmd->payload = payload;
    cmd->payload_len = payload_len;
    bus_post(bus, cmd);
}

/* ---- the subscriber connection ---- */

static void on_heartbeat_echo(struct gw_bus *bus, const char *payload, size_t len)
{
    uint64_t seq = strtoull(payload, NULL, 10);
    int64_t now = gw_now_us();
    (void)len;
    bus->last_echo_us = now;
    if (seq == bus->hb_seq)
        gw_stat_set(&bus->stats.heartbeat_rtt_us, (uint64_t)(now - bus->last_hb_sent_us));
    if (bus->state == LINK_CONNECTING) {
        bus->attempt = 0;
        set_state(bus, LINK_LIVE, "heartbeat echo received");
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct gw_bus *bus = privdata;
    redisReply *reply = r;

    /* NULL: the context is being torn down; link_reset() cleans up. */
    if (!reply || ac != bus->sub)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_ERR("subscriber error=\"%s\"", reply->str);
        link_reset(bus, "subscriber error reply");
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const char *key = reply->element[1]->str;
    size_t klen = reply->element[1]->len;

    if (strcmp(key, bus->hb_channel) == 0) {
        if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING)
            on_heartbeat_echo(bus, reply->element[2]->str, reply->element[2]->len);
        return;
    }
    size_t plen = strlen(bus->cfg->channel_prefix);
    if (klen < plen || memcmp(key, bus->cfg->channel_prefix, plen) != 0)
        return;
    const char *name = key + plen;
    size_t len = klen - plen;

    if (strcmp(kind, "message") == 0) {
        if (reply->element[2]->type == REDIS_REPLY_STRING)
            deliver(bus, name, len, reply->element[2]->str, reply->element[2]->len);
        return;
    }
    bool subscribed = strcmp(kind, "subscribe") == 0;
    if (!subscribed && strcmp(kind, "unsubscribe") != 0)
        return;
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    if (!e)
        return;
    struct bus_chan *ch = e->value;
    if (ch->outstanding > 0)
        ch->outstanding--;
    ch->redis_subscribed = subscribed;
    chan_reconcile(bus, e->key, len, ch);
}

/* Replies to AUTH / SELECT on either connection. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct gw_bus *bus = ac->data;
    redisReply *reply = r;
    if (!reply || (ac != bus->sub && ac != bus->pub))
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_ERR("redis %s failed error=\"%s\"", (const char *)privdata, reply->str);
        link_reset(bus, "AUTH/SELECT rejected");
    }
}

static char auth_tag[] = "AUTH", select_tag[] = "SELECT";

/* Queues AUTH and SELECT; hiredis writes them first once connected. */
static void queue_setup(struct gw_bus *bus, redisAsyncContext *ac)
{
    const struct gw_redis_addr *a = &bus->cfg->redis;
    if (a->password && a->username)
        redisAsyncCommand(ac, on_setup_reply, auth_tag, "AUTH %s %s", a->username, a->password);
    else if (a->password)
        redisAsyncCommand(ac, on_setup_reply, auth_tag, "AUTH %s", a->password);
    /* Pub/sub ignores the db, but a wrong db number should fail loudly. */
    if (a->db)
        redisAsyncCommand(ac, on_setup_reply, select_tag, "SELECT %d", a->db);
}

/* Re-subscribes every wanted channel in batches, then the heartbeat channel. */
static void resubscribe_all(struct gw_bus *bus)
{
    int batch = bus->cfg->resubscribe_batch;
    const char **argv = gw_xmalloc(sizeof(*argv) * (size_t)(batch + 1));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)(batch + 1));
    char **keys = gw_xmalloc(sizeof(*keys) * (size_t)batch);
    int n = 0, total = 0;

    argv[0] = "SUBSCRIBE";
    lens[0] = 9;
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans);; e = gw_dict_next(&bus->chans, e)) {
        if (e) {
            struct bus_chan *ch = e->value;
            if (!ch->want_mask)
                continue;
            keys[n] = gw_xmalloc(e->klen + strlen(bus->cfg->channel_prefix) + 1);
            lens[n + 1] = prefixed(bus, e->key, e->klen, keys[n]);
            argv[n + 1] = keys[n];
            ch->outstanding++;
            n++;
        }
        if (n == batch || (!e && n > 0)) {
            redisAsyncCommandArgv(bus->sub, on_sub_reply, bus, n + 1, argv, lens);
            total += n;
            for (int i = 0; i < n; i++)
                free(keys[i]);
            n = 0;
        }
        if (!e)
            break;
    }
    free(keys);
    free(lens);
    free(argv);
    redisAsyncCommand(bus->sub, on_sub_reply, bus, "SUBSCRIBE %s", bus->hb_channel);
    if (total)
        LOG_INFO("resubscribing channels=%d batch=%d", total, batch);
}

/* ---- connection life cycle ---- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct gw_bus *bus = ac->data;
    bool is_sub = ac == bus->sub;
    if (ac != bus->sub && ac != bus->pub)
        return;
    if (status != REDIS_OK) {
        LOG_WARN("redis connect failed conn=%s error=\"%s\"", is_sub ? "sub" : "pub", ac->errstr);
        /* hiredis frees the context after this callback. */
        if (is_sub)
            bus->sub = NULL;
        else
            bus->pub = NULL;
        link_reset(bus, "connect failed");
        return;
    }
    if (is_sub)
        bus->sub_up = true;
    else
        bus->pub_up = true;
    LOG_DBG("redis connected conn=%s", is_sub ? "sub" : "pub");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gw_bus *bus = ac->data;
    if (ac != bus->sub && ac != bus->pub)
        return; /* our own teardown */
    LOG_WARN("redis disconnected conn=%s error=\"%s\"", ac == bus->sub ? "sub" : "pub",
             status == REDIS_OK ? "closed" : ac->errstr);
    if (ac == bus->sub)
        bus->sub = NULL;
    else
        bus->pub = NULL;
    link_reset(bus, "connection lost");
}

static redisAsyncContext *open_conn(struct gw_bus *bus)
{
    const struct gw_redis_addr *a = &bus->cfg->redis;
    redisAsyncContext *ac = a->unix_path ? redisAsyncConnectUnix(a->unix_path) : redisAsyncConnect(a->host, a->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        LOG_WARN("redis connect failed error=\"%s\"", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bus;
    if (redisLibeventAttach(ac, bus->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void link_open(struct gw_bus *bus)
{
    bus->sub = open_conn(bus);
    bus->pub = bus->sub ? open_conn(bus) : NULL;
    bus->sub_up = bus->pub_up = false;
    bus->link_started_us = gw_now_us();
    bus->last_echo_us = 0;
    if (!bus->sub || !bus->pub) {
        link_reset(bus, "connect failed");
        return;
    }
    set_state(bus, LINK_CONNECTING, "connecting");
    queue_setup(bus, bus->sub);
    queue_setup(bus, bus->pub);
    resubscribe_all(bus);
}

static int64_t backoff_ms(struct gw_bus *bus)
{
    const struct gw_config *cfg = bus->cfg;
    int shift = bus->attempt < 16 ? bus->attempt : 16;
    int64_t base = (int64_t)cfg->redis_backoff_min_ms << shift;
    if (base > cfg->redis_backoff_max_ms)
        base = cfg->redis_backoff_max_ms;
    uint32_t r;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)gw_now_us();
    /* Equal jitter: half fixed, half random, so nodes spread out after a
     * shared outage yet never retry faster than half the step. */
    return base / 2 + (int64_t)(r % (uint32_t)(base / 2 + 1));
}

/* Event callback that performs a scheduled reset outside hiredis callbacks. */
static void on_reset_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;
    const char *reason = bus->reset_reason;
    bus->reset_reason = NULL;

    set_state(bus, LINK_DOWN, reason);
    /* Clear the fields first so on_disconnect/on_sub_reply ignore the teardown. */
    redisAsyncContext *sub = bus->sub, *pub = bus->pub;
    bus->sub = bus->pub = NULL;
    if (sub)
        redisAsyncFree(sub);
    if (pub)
        redisAsyncFree(pub); /* fails every pending publish (NULL replies) */

    /* Nothing is subscribed on the next link; forget what was in flight. */
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans), *next; e; e = next) {
        next = gw_dict_next(&bus->chans, e);
        struct bus_chan *ch = e->value;
        ch->outstanding = 0;
        ch->redis_subscribed = false;
        if (!ch->want_mask)
            free(gw_dict_delete(&bus->chans, e->key, e->klen));
    }
    gw_stat_set(&bus->stats.channels, bus->chans.count);

    if (atomic_load(&bus->stop))
        return;
    int64_t delay = backoff_ms(bus);
    bus->attempt++;
    gw_stat_add(&bus->stats.redis_reconnects, 1);
    LOG_INFO("redis reconnect attempt=%d delay_ms=%" PRId64, bus->attempt, delay);
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    evtimer_add(bus->retry_ev, &tv);
}

/* Schedules a teardown + reconnect; safe from inside hiredis callbacks. */
static void link_reset(struct gw_bus *bus, const char *reason)
{
    set_ready(bus, false);
    if (bus->reset_reason)
        return;
    bus->reset_reason = reason;
    event_active(bus->reset_ev, 0, 0);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    link_open(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;
    const struct gw_config *cfg = bus->cfg;
    int64_t now = gw_now_us();

    if (bus->state == LINK_DOWN || bus->reset_reason)
        return;
    if (bus->state == LINK_CONNECTING && !(bus->sub_up && bus->pub_up) &&
        now - bus->link_started_us > (int64_t)cfg->redis_connect_timeout_ms * 1000) {
        link_reset(bus, "connect timeout");
        return;
    }
    int64_t since = bus->last_echo_us ? bus->last_echo_us : bus->link_started_us;
    if (now - since > (int64_t)cfg->redis_heartbeat_timeout_ms * 1000) {
        LOG_WARN("redis heartbeat missing for_ms=%" PRId64 " timeout_ms=%d", (now - since) / 1000,
                 cfg->redis_heartbeat_timeout_ms);
        link_reset(bus, "heartbeat timeout");
        return;
    }
    if (bus->pub_up && now - bus->last_hb_sent_us >= (int64_t)cfg->redis_heartbeat_interval_ms * 1000) {
        char payload[32];
        int n = snprintf(payload, sizeof(payload), "%" PRIu64, ++bus->hb_seq);
        bus->last_hb_sent_us = now;
        redisAsyncCommand(bus->pub, NULL, NULL, "PUBLISH %s %b", bus->hb_channel, payload, (size_t)n);
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
    struct timeval tick = { 0, 50 * 1000 };

    bus->tick_ev = event_new(bus->base, -1, EV_PERSIST, on_tick, bus);
    bus->retry_ev = evtimer_new(bus->base, on_retry, bus);
    bus->reset_ev = event_new(bus->base, -1, 0, on_reset_event, bus);
    if (bus->standalone) {
        set_ready(bus, true);
        LOG_INFO("standalone mode: no Redis, one node");
    } else {
        event_add(bus->tick_ev, &tick);
        link_open(bus);
    }
    bus_drain_inbox(bus);
    if (!atomic_load(&bus->stop))
        event_base_loop(bus->base, EVLOOP_NO_EXIT_ON_EMPTY);

    set_ready(bus, false);
    redisAsyncContext *sub = bus->sub, *pub = bus->pub;
    bus->sub = bus->pub = NULL;
    if (sub)
        redisAsyncFree(sub);
    if (pub)
        redisAsyncFree(pub);
    bus_drain_inbox(bus); /* frees what came in after the loop stopped */
    event_free(bus->tick_ev);
    event_free(bus->retry_ev);
    event_free(bus->reset_ev);
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
    size_t hblen = strlen(cfg->node_id) + 32;
    bus->hb_channel = gw_xmalloc(hblen);
    snprintf(bus->hb_channel, hblen, "__wsgate:hb:%s", cfg->node_id);
    gw_mailbox_init(&bus->inbox);
    gw_dict_init(&bus->chans);
    atomic_init(&bus->ready, false);
    atomic_init(&bus->stop, false);
    bus->base = event_base_new();
    if (!bus->base) {
        LOG_ERR("event_base_new failed");
        abort();
    }
    bus->wake_ev = event_new(bus->base, -1, 0, on_wake, bus);
    /* A non-pending event with no fd only runs when activated: keep it
     * allocated and let event_active() schedule it from any thread. */
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
    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans); e; e = gw_dict_next(&bus->chans, e))
        free(e->value);
    gw_dict_deinit(&bus->chans);
    struct gw_mail *m = gw_mailbox_take_all(&bus->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        free(((struct bus_cmd *)m)->payload);
        free(m);
        m = next;
    }
    gw_mailbox_deinit(&bus->inbox);
    event_free(bus->wake_ev);
    event_base_free(bus->base);
    free(bus->hb_channel);
    free(bus);
}
