/* Node-side repair of the channels with history. The invariant: c->at is the
 * last message passed on, and nothing is passed on at a position unless it is
 * c->at + 1 in the same epoch, a read-back range that continues it, or the
 * first message after a reported gap; nothing at or below c->at is dropped
 * unless it is known to be the same message (or too old to tell). */
#define GW_LOG_MODULE "bus"

#include "repair.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

struct gw_repair_held {
    struct gw_repair_held *next;
    struct gw_position at;
    size_t len;
    char payload[];
};

void gw_repair_init(struct gw_repair *r, const struct gw_repair_ops *ops, void *ctx, size_t hold_max_bytes,
                    uint64_t max_messages, struct gw_bus_stats *stats)
{
    r->ops = ops;
    r->ctx = ctx;
    r->hold_max_bytes = hold_max_bytes;
    r->max_messages = max_messages;
    r->stats = stats;
}

void gw_repair_chan_init(struct gw_repair_chan *c)
{
    memset(c, 0, sizeof *c);
}

static struct gw_repair_held *take_held(struct gw_repair_chan *c)
{
    struct gw_repair_held *h = c->held;
    c->held = c->held_tail = NULL;
    c->held_bytes = 0;
    return h;
}

void gw_repair_chan_deinit(struct gw_repair_chan *c)
{
    for (struct gw_repair_held *h = take_held(c), *next; h; h = next) {
        next = h->next;
        free(h);
    }
}

/* FNV-1a, 32 bits: cheap, and a chance of 2^-32 that two different payloads
 * at one offset pass for the same message. */
static uint32_t payload_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* c->at moves to another epoch (or its start): nothing recent is known of it. */
static void forget_recent(struct gw_repair_chan *c)
{
    memset(c->recent, 0, sizeof c->recent);
    c->reused_from = 0;
    c->retire_asked = false;
}

/* c->at's epoch handed an offset out twice: ask Redis to end it, once per
 * epoch and link (a reusing Redis conflicts on every message). */
static void retire_on_conflict(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len)
{
    if (c->retire_asked)
        return;
    c->retire_asked = true;
    r->ops->retire(r->ctx, name, len, c->at.epoch, 0);
}

static void remember(struct gw_repair_chan *c, uint64_t offset, const char *payload, size_t plen)
{
    size_t i = offset % GW_REPAIR_RECENT;

    c->recent[i].offset = offset;
    c->recent[i].hash = payload_hash(payload, plen);
}

/* Offsets reused_from..c->at.offset of c->at's epoch were handed out again
 * by Redis: what arrives there now is not what the node passed on. */
static void mark_reused(struct gw_repair_chan *c, uint64_t from)
{
    if (from <= c->at.offset && (c->reused_from == 0 || from < c->reused_from))
        c->reused_from = from;
}

/* True when the message at (<= c->at.offset) is one the node already passed
 * on, or too old to tell; false when it is another message at a used offset. */
static bool same_as_passed_on(const struct gw_repair_chan *c, const struct gw_position *at, const char *payload,
                              size_t plen)
{
    size_t i = at->offset % GW_REPAIR_RECENT;

    if (c->reused_from && at->offset >= c->reused_from)
        return false;
    if (c->recent[i].offset != at->offset)
        return true; /* older than what is kept, or never passed on (a gap) */
    return c->recent[i].hash == payload_hash(payload, plen);
}

/* Another message at an offset already passed on: Redis handed it out twice.
 * The content goes on without a position (a client would drop it by its
 * offset), with a gap notice for that offset, so nothing is dropped silently. */
static void conflict(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                     const struct gw_position *at, const char *payload, size_t plen)
{
    gw_stat_add(&r->stats->history_conflicts, 1);
    if (!c->conflict_logged) {
        c->conflict_logged = true;
        /* Once per channel: a Redis that reuses offsets does it for every
         * message until the epoch changes. */
        LOG_WARN("history conflict channel=%.*s epoch=%s offset=%" PRIu64 " passed_on_up_to=%" PRIu64
                 " action=passed_on_without_position",
                 (int)len, name, at->epoch, at->offset, c->at.offset);
    }
    mark_reused(c, at->offset);
    retire_on_conflict(r, c, name, len);
    r->ops->gap(r->ctx, name, len, at->epoch, at->offset, at->offset);
    r->ops->deliver(r->ctx, name, len, NULL, payload, plen);
}

static void report_gap(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len, uint64_t to)
{
    uint64_t from = c->at.offset + 1;

    if (to < from)
        return;
    gw_stat_add(&r->stats->history_messages_lost, to - from + 1);
    LOG_WARN("history gap not repaired channel=%.*s epoch=%s from=%" PRIu64 " to=%" PRIu64, (int)len, name,
             c->at.epoch, from, to);
    r->ops->gap(r->ctx, name, len, c->at.epoch, from, to);
    c->at.offset = to;
}

static void pass_on(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                    const struct gw_position *at, const char *payload, size_t plen)
{
    r->ops->deliver(r->ctx, name, len, at, payload, plen);
    c->at.offset = at->offset;
    remember(c, at->offset, payload, plen);
}

static void start_read(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len);
static void accept(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                   const struct gw_position *at, const char *payload, size_t plen);

/* Passes the held messages on through the same rule as live ones; one of
 * them may start another read, and then the rest are held again, in order. */
static void release_held(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len)
{
    for (struct gw_repair_held *h = take_held(c), *next; h; h = next) {
        next = h->next;
        accept(r, c, name, len, &h->at, h->payload, h->len);
        free(h);
    }
}

/* The read cannot finish (failed, or too much held): report what is missing
 * up to the first held message and carry on from there. */
static void give_up(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len)
{
    c->reading = false;
    c->catchup = false;
    c->gen++;
    if (c->held && gw_position_in(&c->at, c->held->at.epoch, c->held->at.epoch_len))
        report_gap(r, c, name, len, c->held->at.offset - 1);
    release_held(r, c, name, len);
}

static void hold(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                 const struct gw_position *at, const char *payload, size_t plen)
{
    if (c->held_bytes + plen > r->hold_max_bytes) {
        LOG_WARN("history repair abandoned channel=%.*s reason=hold_full held_bytes=%zu", (int)len, name,
                 c->held_bytes);
        give_up(r, c, name, len);
        accept(r, c, name, len, at, payload, plen);
        return;
    }
    struct gw_repair_held *h = gw_xmalloc(sizeof(*h) + plen);
    h->next = NULL;
    h->at = *at;
    h->len = plen;
    memcpy(h->payload, payload, plen);
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held = h;
    c->held_tail = h;
    c->held_bytes += plen;
}

static void start_read(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len)
{
    c->reading = true;
    c->gen++;
    if (r->ops->read(r->ctx, name, len, c->at.offset, c->gen) != 0 && c->reading)
        give_up(r, c, name, len);
}

static void accept(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                   const struct gw_position *at, const char *payload, size_t plen)
{
    if (c->reading || c->catchup) {
        hold(r, c, name, len, at, payload, plen);
        return;
    }
    if (!gw_position_in(&c->at, at->epoch, at->epoch_len)) {
        /* The first message seen starts the node's continuity; a new epoch
         * restarts it at 0, so its own earlier messages are read back. */
        bool first = c->at.epoch_len == 0;
        c->at = *at;
        c->at.offset = first ? at->offset - 1 : 0;
        forget_recent(c);
    }
    if (at->offset <= c->at.offset) {
        if (same_as_passed_on(c, at, payload, plen))
            gw_stat_add(&r->stats->history_duplicates, 1);
        else
            conflict(r, c, name, len, at, payload, plen);
        return;
    }
    if (at->offset > c->at.offset + 1) {
        gw_stat_add(&r->stats->history_gaps, 1);
        LOG_INFO("history gap channel=%.*s epoch=%s from=%" PRIu64 " to=%" PRIu64 ": reading it back", (int)len,
                 name, c->at.epoch, c->at.offset + 1, at->offset - 1);
        hold(r, c, name, len, at, payload, plen);
        start_read(r, c, name, len);
        return;
    }
    pass_on(r, c, name, len, at, payload, plen);
}

void gw_repair_message(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                       const struct gw_position *at, const char *payload, size_t payload_len)
{
    accept(r, c, name, len, at, payload, payload_len);
}

void gw_repair_read_done(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len, uint32_t gen,
                         const struct gw_history_page *page)
{
    if (!c->reading || gen != c->gen)
        return;
    if (!page) {
        give_up(r, c, name, len);
        return;
    }
    if (!gw_position_in(&c->at, page->epoch, page->epoch_len)) {
        /* The missing offsets belonged to an epoch that is gone: nothing can
         * bring them back. A newer epoch is read from its start. */
        if (page->epoch_len && page->current) {
            c->reading = false;
            gw_position_set(&c->at, 0, page->epoch, page->epoch_len);
            forget_recent(c);
            start_read(r, c, name, len);
        } else {
            give_up(r, c, name, len);
        }
        return;
    }
    if (page->current < c->at.offset) {
        /* Redis came back with older data in the same epoch: the offsets
         * after its current one may be handed out again. */
        gw_stat_add(&r->stats->history_rewinds, 1);
        LOG_WARN("history rewind channel=%.*s epoch=%s redis_offset=%" PRIu64 " passed_on_up_to=%" PRIu64, (int)len,
                 name, c->at.epoch, page->current, c->at.offset);
        mark_reused(c, page->current + 1);
        /* Guarded by the node's offset: a read of a copy that only lags
         * cannot end the epoch on the master. When publishes since took
         * Redis back up to it, the guard refuses, and the first conflict
         * asks again without it. One per read, so not latched. */
        r->ops->retire(r->ctx, name, len, c->at.epoch, c->at.offset);
    }
    uint64_t stop = page->current; /* offsets past it arrive live */
    if (c->held && gw_position_in(&c->at, c->held->at.epoch, c->held->at.epoch_len) && c->held->at.offset - 1 < stop)
        stop = c->held->at.offset - 1;
    if (stop > c->at.offset + r->max_messages) {
        /* Read back the newest max_messages; only the older rest is lost. */
        LOG_WARN("history gap too large to read back whole channel=%.*s missing=%" PRIu64 " max=%" PRIu64, (int)len,
                 name, stop - c->at.offset, r->max_messages);
        report_gap(r, c, name, len, stop - r->max_messages);
    }
    for (size_t i = 0; i < page->n && c->at.offset < stop; i++) {
        const struct gw_history_entry *e = &page->entries[i];
        struct gw_position at = c->at;

        if (e->offset <= c->at.offset)
            continue;
        if (e->offset > c->at.offset + 1)
            report_gap(r, c, name, len, e->offset - 1); /* trimmed away meanwhile */
        at.offset = e->offset;
        pass_on(r, c, name, len, &at, e->payload, e->len);
        gw_stat_add(&r->stats->history_messages_repaired, 1);
    }
    if (c->at.offset < stop && page->n > 0) {
        start_read(r, c, name, len); /* the next page */
        return;
    }
    if (c->at.offset < stop)
        report_gap(r, c, name, len, stop); /* expired or trimmed */
    c->reading = false;
    release_held(r, c, name, len);
}

void gw_repair_link_lost(struct gw_repair_chan *c)
{
    c->retire_asked = false; /* a retire on the old link may not have run */
    if (c->reading) {
        c->reading = false;
        c->gen++;
    }
    c->catchup = c->at.epoch_len != 0 || c->held != NULL;
}

void gw_repair_link_live(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len)
{
    if (!c->catchup)
        return;
    c->catchup = false;
    if (c->at.epoch_len == 0) {
        release_held(r, c, name, len);
        return;
    }
    start_read(r, c, name, len);
}
