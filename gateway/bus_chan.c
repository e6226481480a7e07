/* The bus's channel helpers, shared by bus.c, bus_read.c and bus_ctl.c and
 * calling none of them: Redis key <-> client name, the wanted-channel lookup, the size
 * rule for payloads, the hand-off of one frame to every worker that wants
 * its channel, and the backpressure that hand-off can start. Bus thread. */
#define GW_LOG_MODULE "bus"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus_int.h"
#include "clock.h"
#include "log.h"
#include "wmail.h"

/* One line per power of two of a counter, not one per message. */
bool gw_bus_log_this(const gw_stat *counter)
{
    uint64_t n = gw_stat_get(counter);
    return (n & (n - 1)) == 0;
}

bool gw_bus_too_large(struct gw_bus *bus, const char *name, size_t payload_len)
{
    if (payload_len <= bus->cfg->max_message_bytes)
        return false;
    gw_stat_add(&bus->stats.redis_messages_dropped_too_large, 1);
    if (gw_bus_log_this(&bus->stats.redis_messages_dropped_too_large))
        LOG_WARN("dropped message reason=too_large channel=%s bytes=%zu limit=%zu dropped_total=%" PRIu64, name,
                 payload_len, bus->cfg->max_message_bytes, gw_stat_get(&bus->stats.redis_messages_dropped_too_large));
    return true;
}

struct bus_chan *gw_bus_chan(struct gw_bus *bus, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    struct bus_chan *ch = e ? e->value : NULL;
    return ch && ch->want_mask ? ch : NULL;
}

void gw_bus_fanout(struct gw_bus *bus, const char *name, size_t len, struct gw_frame *frame)
{
    gw_bus_fanout_as(bus, GW_WMAIL_DELIVER, name, len, frame);
}

void gw_bus_fanout_as(struct gw_bus *bus, enum gw_wmail_type type, const char *name, size_t len,
                      struct gw_frame *frame)
{
    struct bus_chan *ch = gw_bus_chan(bus, name, len);
    if (!ch) {
        gw_frame_unref(frame);
        return;
    }
    int last = 63 - __builtin_clzll(ch->want_mask);
    bool over = false;
    for (int w = 0; w <= last; w++) {
        if (!(ch->want_mask & (1ULL << w)))
            continue;
        struct gw_wmail *m = gw_wmail_new(type, name, len);
        /* Each worker gets its own buffer so refcounts stay plain and never
         * bounce between cores per recipient. The JSON is encoded once; other
         * workers get a memcpy, made before the encoded frame is posted
         * (after that it belongs to its worker). */
        m->frame = w == last ? frame : gw_frame_copy(frame);
        bus->ops->post(bus->ctx, w, m);
        over = over || bus->ops->inbox_bytes(bus->ctx, w) > bus->cfg->max_inbox_bytes;
    }
    if (over)
        gw_bus_backpressure_check(bus);
}

size_t gw_bus_prefixed(const struct gw_bus *bus, const char *name, size_t len, char *out)
{
    size_t plen = bus->prefix_len;
    memcpy(out, bus->cfg->channel_prefix, plen);
    memcpy(out + plen, name, len);
    out[plen + len] = '\0';
    return plen + len;
}

const char *gw_bus_unprefixed(const struct gw_bus *bus, const char *key, size_t klen, size_t *len)
{
    size_t plen = bus->prefix_len;
    if (klen < plen || memcmp(key, bus->cfg->channel_prefix, plen) != 0)
        return NULL;
    *len = klen - plen;
    return key + plen;
}

/* Encodes the message once and hands it to every worker that wants name. */
void gw_bus_deliver(struct gw_bus *bus, const char *name, size_t len, const struct gw_position *at,
                    const char *payload, size_t payload_len)
{
    struct gw_frame *frame = gw_codec_message_at(name, len, payload, payload_len, at);
    if (frame->len > bus->cfg->queue_max_bytes) {
        /* Escaping can grow a non-JSON payload up to 6x; a frame no queue can
         * hold would shed every subscriber, so drop it instead. */
        gw_frame_unref(frame);
        gw_bus_too_large(bus, name, SIZE_MAX);
        return;
    }
    gw_bus_fanout(bus, name, len, frame);
}

/* A worker is more than --max-inbox-bytes behind: stop reading Redis (what
 * it sends waits in Redis' output buffer for this node) until every worker
 * is back under half. Nothing is dropped here; if Redis cuts the node off
 * at its client-output-buffer-limit, the link resets and messages with
 * history are read back. */
void gw_bus_backpressure_check(struct gw_bus *bus)
{
    bool over = false, under_half = true;

    for (int w = 0; w < bus->nworkers; w++) {
        size_t b = bus->ops->inbox_bytes(bus->ctx, w);
        over = over || b > bus->cfg->max_inbox_bytes;
        under_half = under_half && b <= bus->cfg->max_inbox_bytes / 2;
    }
    if (!bus->paused && over) {
        struct timeval tv = { 0, 5000 };
        bus->paused = true;
        bus->paused_since_us = gw_now_us();
        gw_stat_add(&bus->stats.backpressure_pauses, 1);
        LOG_WARN("worker inbox over --max-inbox-bytes=%zu: pausing Redis reads", bus->cfg->max_inbox_bytes);
        bus_pause(bus, true);
        if (event_add(bus->bp_ev, &tv) != 0)
            abort(); /* a pause that never ends is a silent outage */
    } else if (bus->paused && under_half) {
        bus->paused = false;
        gw_stat_add(&bus->stats.backpressure_us, (uint64_t)(gw_now_us() - bus->paused_since_us));
        bus_pause(bus, false);
        event_del(bus->bp_ev);
    } else if (bus->paused) {
        bus_pause(bus, true); /* idempotent: stays paused */
    }
}

void gw_bus_on_backpressure_timer(evutil_socket_t fd, short what, void *arg)
{
    gw_bus_backpressure_check(arg);
}

/* ---- the link's subscriptions, all at once, or one master's or the moved
 * slots' (cluster mode) ---- */

void gw_bus_resubscribe(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx)
{
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
            lens[n] = gw_bus_prefixed(bus, e->key, e->klen, key);
            if (pred && !pred(pctx, key, lens[n])) {
                free(key);
                continue;
            }
            if (pred) {
                /* Its master came back, or its slot moved to another: nothing
                 * of this channel is subscribed there, whatever was sent
                 * before. */
                ch->outstanding = 0;
                ch->redis_subscribed = false;
            }
            keys[n] = key;
            sent[n] = ch;
            n++;
        }
        if (n == batch || (!e && n > 0)) {
            if (bus_subscribe_many(bus, n, keys, lens) == 0)
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
        LOG_INFO("resubscribing channels=%d batch=%d%s", total, batch, pred ? " (one master)" : "");
}

/* ---- the channel table's reconcile (bus_int.h) ---- */

static void post_live(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t gen)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_LIVE, name, len);
    m->gen = gen;
    bus->ops->post(bus->ctx, worker, m);
}

void gw_bus_chan_free(struct bus_chan *ch)
{
    if (!ch)
        return;
    gw_repair_chan_deinit(&ch->rep);
    free(ch);
}

static bool sub_send(struct gw_bus *bus, bool subscribe, const char *name, size_t len)
{
    char key[256];
    size_t klen = gw_bus_prefixed(bus, name, len, key);
    if (subscribe)
        return bus_subscribe(bus, key, klen) == 0;
    return bus_unsubscribe(bus, key, klen) == 0;
}

/* bus_int.h. Brings Redis and the workers in line with want_mask. Only one command per
 * channel is in flight at a time, so the answer that comes is always the
 * answer to the one command sent.
 * Returns true when the channel was deleted. */
bool gw_bus_chan_reconcile(struct gw_bus *bus, const char *name, size_t len, struct bus_chan *ch)
{
    if (bus->standalone)
        ch->redis_subscribed = ch->want_mask != 0;
    if (ch->outstanding > 0)
        return false;
    if (ch->want_mask && !ch->redis_subscribed) {
        if (bus_has_redis(bus) && sub_send(bus, true, name, len))
            ch->outstanding++;
        return false; /* no link: link_on_open() subscribes it */
    }
    if (!ch->want_mask && ch->redis_subscribed) {
        if (bus_has_redis(bus) && sub_send(bus, false, name, len)) {
            ch->outstanding++;
            return false;
        }
        ch->redis_subscribed = false;
    }
    if (ch->want_mask) {
        uint64_t tell = ch->want_mask & ~ch->live_mask;
        for (int w = 0; w < bus->nworkers; w++)
            if (tell & (1ULL << w))
                post_live(bus, w, name, len, ch->gen[w]);
        ch->live_mask |= tell;
        return false;
    }
    gw_bus_chan_free(gw_dict_delete(&bus->chans, name, len));
    gw_stat_set(&bus->stats.channels, bus->chans.count);
    return true;
}
