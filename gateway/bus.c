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
#include "codec.h"
#include "dict.h"
#include "link.h"
#include "log.h"
#include "mailbox.h"

/* A client publish waits at most this many at once on the publisher
 * connection; beyond that Redis is not keeping up and clients get
 * `unavailable` instead of growing hiredis' buffers without bound. */
#define MAX_PUBLISHES_IN_FLIGHT 65536

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

/* Token of one in-flight PUBLISH, handed back by link_on_published. */
struct pub_wait {
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
    size_t prefix_len; /* strlen(cfg->channel_prefix), once: every message needs it */
    struct gw_link *link; /* NULL in standalone mode */

    /* Any thread. */
    struct gw_mailbox inbox;
    atomic_bool ready; /* standalone mode only; otherwise gw_link_ready() */
    atomic_bool stop;
    struct gw_bus_stats stats; /* written by the bus thread only */

    /* Created in gw_bus_new; used by the bus thread, and by any thread only
     * through event_active() (libevent is set up for pthreads). */
    struct event_base *base;
    struct event *wake_ev;

    /* Bus thread only. */
    pthread_t thread;
    bool started;
    struct gw_dict chans; /* client channel name -> struct bus_chan* */
    int pub_in_flight;
};

bool gw_bus_ready(const struct gw_bus *bus)
{
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
    size_t plen = bus->prefix_len;
    memcpy(out, bus->cfg->channel_prefix, plen);
    memcpy(out + plen, name, len);
    out[plen + len] = '\0';
    return plen + len;
}

/* The client name inside a Redis key, or NULL when key lacks the prefix. */
static const char *unprefixed(const struct gw_bus *bus, const char *key, size_t klen, size_t *len)
{
    size_t plen = bus->prefix_len;
    if (klen < plen || memcmp(key, bus->cfg->channel_prefix, plen) != 0)
        return NULL;
    *len = klen - plen;
    return key + plen;
}

static bool sub_send(struct gw_bus *bus, bool subscribe, const char *name, size_t len)
{
    char key[256];
    size_t klen = prefixed(bus, name, len, key);
    if (subscribe)
        return gw_link_subscribe(bus->link, key, klen) == 0;
    return gw_link_unsubscribe(bus->link, key, klen) == 0;
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
        if (bus->link && sub_send(bus, true, name, len))
            ch->outstanding++;
        return false; /* no link: link_on_open() subscribes it */
    }
    if (!ch->want_mask && ch->redis_subscribed) {
        if (bus->link && sub_send(bus, false, name, len)) {
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

/* ---- what the link reports (bus thread, inside hiredis/libevent callbacks) ---- */

/* Re-subscribes every wanted channel in batches; the link then subscribes
 * its heartbeat channel last. */
static void link_on_open(void *ctx)
{
    struct gw_bus *bus = ctx;
    int batch = bus->cfg->resubscribe_batch;
    const char **keys = gw_xmalloc(sizeof(*keys) * (size_t)batch);
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)batch);
    struct bus_chan **sent = gw_xmalloc(sizeof(*sent) * (size_t)batch);
    int n = 0, total = 0;

    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans);; e = gw_dict_next(&bus->chans, e)) {
        if (e) {
            struct bus_chan *ch = e->value;
            if (!ch->want_mask)
                continue;
            char *key = gw_xmalloc(e->klen + bus->prefix_len + 1);
            lens[n] = prefixed(bus, e->key, e->klen, key);
            keys[n] = key;
            sent[n] = ch;
            n++;
        }
        if (n == batch || (!e && n > 0)) {
            if (gw_link_subscribe_many(bus->link, n, keys, lens) == 0)
                for (int i = 0; i < n; i++)
                    sent[i]->outstanding++;
            total += n;
            for (int i = 0; i < n; i++)
                free((char *)keys[i]);
            n = 0;
        }
        if (!e)
            break;
    }
    free(sent);
    free(lens);
    free(keys);
    if (total)
        LOG_INFO("resubscribing channels=%d batch=%d", total, batch);
}

static void link_on_message(void *ctx, const char *key, size_t klen, const char *payload, size_t len)
{
    struct gw_bus *bus = ctx;
    size_t nlen;
    const char *name = unprefixed(bus, key, klen, &nlen);
    if (name)
        deliver(bus, name, nlen, payload, len);
}

static void link_on_subscription(void *ctx, const char *key, size_t klen, bool subscribed)
{
    struct gw_bus *bus = ctx;
    size_t len;
    const char *name = unprefixed(bus, key, klen, &len);
    if (!name)
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

static void link_on_published(void *ctx, void *token, bool ok)
{
    struct gw_bus *bus = ctx;
    struct pub_wait *pw = token;
    bus->pub_in_flight--;
    post_publish_result(bus, pw->worker, pw->session_id, pw->has_id, pw->id, ok);
    free(pw);
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
        if (!ch->want_mask)
            free(gw_dict_delete(&bus->chans, e->key, e->klen));
    }
    gw_stat_set(&bus->stats.channels, bus->chans.count);
    return !atomic_load(&bus->stop);
}

static const struct gw_link_ops link_ops = {
    .on_open = link_on_open,
    .on_message = link_on_message,
    .on_subscription = link_on_subscription,
    .on_published = link_on_published,
    .on_reset = link_on_reset,
};

/* ---- publishing ---- */

static void cmd_publish(struct gw_bus *bus, struct bus_cmd *cmd)
{
    if (bus->standalone) {
        deliver(bus, cmd->name, cmd->name_len, cmd->payload, cmd->payload_len);
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, true);
        return;
    }
    if (bus->pub_in_flight >= MAX_PUBLISHES_IN_FLIGHT) {
        post_publish_result(bus, cmd->worker, cmd->session_id, cmd->has_id, cmd->id, false);
        return;
    }
    char key[256];
    size_t klen = prefixed(bus, cmd->name, cmd->name_len, key);
    struct pub_wait *pw = gw_xmalloc(sizeof(*pw));
    *pw = (struct pub_wait){ cmd->worker, cmd->session_id, cmd->has_id, cmd->id };
    if (gw_link_publish(bus->link, key, klen, cmd->payload, cmd->payload_len, pw) != 0) {
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
    } else {
        gw_link_start(bus->link);
    }
    bus_drain_inbox(bus);
    if (!atomic_load(&bus->stop))
        event_base_loop(bus->base, EVLOOP_NO_EXIT_ON_EMPTY);

    if (bus->standalone)
        set_standalone_ready(bus, false);
    else
        gw_link_stop(bus->link); /* fails every pending publish */
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
    gw_dict_init(&bus->chans);
    atomic_init(&bus->ready, false);
    atomic_init(&bus->stop, false);
    bus->prefix_len = strlen(cfg->channel_prefix);
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
    /* A non-pending event with no fd only runs when activated: keep it
     * allocated and let event_active() schedule it from any thread. */
    if (!bus->standalone)
        bus->link = gw_link_new(cfg, bus->base, &bus->stats, &link_ops, bus);
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
    free(bus);
}
