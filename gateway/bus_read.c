/* The bus's reads of channel history (wsgate_history through the link):
 * the node's own repairs (repair.h asks, any number), client recoveries and
 * history requests. Client reads are paced: at most READS_IN_FLIGHT on the
 * link, the rest wait, served one per client per turn (readq.h), and past
 * --max-recoveries a client gets recovered:false (or unavailable) at once
 * instead of queueing without bound. So a mass reconnect after a node loss
 * costs Redis a steady stream of small reads, not a burst, and one client's
 * reads cannot hold back another's. A client that leaves takes its waiting
 * reads with it.
 *
 * A recovery is read one page per request: the client's worker asks for the
 * next page only once the client's queue has room for it (recovery.c), so a
 * replay is paced by the client reading it and never sheds it. Each page
 * request stands alone: the bus keeps nothing between pages. */
#define GW_LOG_MODULE "bus"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus_int.h"
#include "log.h"

/* Reads of clients on the link at once. The heartbeat PUBLISH that proves the
 * link shares the publisher connection and so waits behind these (Redis
 * answers one connection in order, and runs one command at a time whatever
 * the connection): with each read bounded to about its byte budget
 * (wsgate.lua walks the stream in steps; at most 512 KiB + 8 x the largest
 * payload at the defaults, ~2.4 ms of Redis measured for 1 MiB of 64 KB
 * entries) 8 reads keep it within tens of milliseconds of the heartbeat's
 * 3 s timeout. 32 let one client's history requests take the link down
 * (issue 15). A connection of their own would not take the reads' cost off
 * Redis, which is what delays the echo. */
#define READS_IN_FLIGHT 8
/* Waiting reads one client may have beyond one per subscription. */
#define CLIENT_EXTRA_READS 8
/* One page of a read: at most this many entries and about this many bytes
 * (the first entry always comes), so a read never holds much in the reader, and
 * at most a quarter of a client's queue, which a page must fit beside what
 * the client already has. */
#define PAGE_ENTRIES 100
#define PAGE_BYTES (256 * 1024)

enum read_kind { READ_REPAIR = 1, READ_RECOVER, READ_HISTORY };

struct bus_read {
    struct gw_readq_item q; /* first: while waiting, bus->waiting holds it */
    enum read_kind kind;
    uint32_t gen; /* REPAIR: repair.h's tag */
    int worker;
    uint64_t session_id;
    bool has_id;
    int64_t id;
    uint32_t seq; /* RECOVER */
    bool has_since;
    struct gw_position since;
    int limit; /* HISTORY */
    bool started; /* RECOVER: a later page: the first went out already */
    uint64_t target; /* RECOVER: the offset the replay runs to */
    uint64_t last; /* RECOVER: the last offset replayed */
    size_t name_len;
    char name[];
};

static struct bus_read *read_new(enum read_kind kind, const char *name, size_t len)
{
    struct bus_read *rd = gw_xcalloc(1, sizeof(*rd) + len + 1);
    rd->kind = kind;
    memcpy(rd->name, name, len);
    rd->name_len = len;
    return rd;
}

/* Whether a client's position belongs to the stream page read: the same
 * epoch, or {0, ""}, taken before the channel had any history. */
static bool since_known(const struct gw_position *since, const struct gw_history_page *page)
{
    return gw_position_in(since, page->epoch, page->epoch_len) || (since->epoch_len == 0 && since->offset == 0);
}

static struct gw_position page_position(const struct gw_history_page *page)
{
    struct gw_position at;
    gw_position_set(&at, page->current, page->epoch, page->epoch_len);
    return at;
}

/* Sends rd's next page request; false when the link refused it. */
static bool read_send(struct gw_bus *bus, struct bus_read *rd, bool latest, uint64_t since, int limit, size_t bytes)
{
    char key[256];
    size_t klen;

    if (!bus_has_redis(bus))
        return false;
    klen = gw_bus_prefixed(bus, rd->name, rd->name_len, key);
    return bus_read(bus, key, klen, latest, since, limit, bytes, rd) == 0;
}

/* ---- the node's own repairs ---- */

static int repair_read(void *ctx, const char *name, size_t len, uint64_t since, uint32_t gen)
{
    struct gw_bus *bus = ctx;
    struct bus_read *rd = read_new(READ_REPAIR, name, len);

    rd->gen = gen;
    if (!read_send(bus, rd, false, since, PAGE_ENTRIES, PAGE_BYTES)) {
        free(rd);
        return -ENOTCONN;
    }
    return 0;
}

static void repair_answer(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page)
{
    struct bus_chan *ch = gw_bus_chan(bus, rd->name, rd->name_len);
    if (ch)
        gw_repair_read_done(&bus->repair, &ch->rep, rd->name, rd->name_len, rd->gen, page);
    free(rd);
}

/* ---- client reads ---- */

static void pump(struct gw_bus *bus);

/* One recovery page to the client's worker; frames (owned) may be NULL. */
static void post_page(struct gw_bus *bus, const struct bus_read *rd, bool first, bool last, int recovered,
                      const struct gw_position *at, struct gw_frame **frames, size_t n)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_RECOVERY, rd->name, rd->name_len);

    m->session_id = rd->session_id;
    m->seq = rd->seq;
    m->first = first;
    m->last = last;
    m->recovered = recovered;
    if (at)
        m->at = *at;
    m->frames = frames;
    m->nframes = n;
    bus->ops->post(bus->ctx, rd->worker, m);
}

/* A recovery that ends on its first page without a replay. at NULL: the
 * stream could not be read; the ack then echoes what the client sent. */
static void recover_refuse(struct gw_bus *bus, struct bus_read *rd, const struct gw_position *at,
                           enum gw_recovery_result result)
{
    struct gw_position none = { 0 };

    if (!at)
        at = rd->has_since ? &rd->since : &none;
    gw_stat_add(&bus->stats.recoveries[result], 1);
    post_page(bus, rd, true, true, rd->has_since ? 0 : -1, at, NULL, 0);
}

static void history_reply(struct gw_bus *bus, const struct bus_read *rd, struct gw_frame *frame)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_HISTORY_RESULT, rd->name, rd->name_len);

    m->session_id = rd->session_id;
    m->has_id = rd->has_id;
    m->id = rd->id;
    m->frame = frame;
    bus->ops->post(bus->ctx, rd->worker, m);
}

/* The message frames of page's entries up to rd->target, in order. */
static struct gw_frame **page_frames(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page,
                                     size_t *n)
{
    struct gw_frame **frames = gw_xmalloc(sizeof(*frames) * (page->n + 1));
    struct gw_position at = page_position(page);

    *n = 0;
    for (size_t i = 0; i < page->n && page->entries[i].offset <= rd->target; i++) {
        const struct gw_history_entry *e = &page->entries[i];
        rd->last = e->offset;
        if (gw_bus_too_large(bus, rd->name, e->len))
            continue; /* as on the live path; the client sees the gap */
        at.offset = e->offset;
        frames[(*n)++] = gw_codec_message_at(rd->name, rd->name_len, e->payload, e->len, &at);
    }
    return frames;
}

/* Judges the first page of a recovery and sends what it replays. */
static void recover_first(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page)
{
    struct gw_position at = page_position(page);
    const struct gw_position *s = &rd->since;
    bool known = since_known(s, page);

    rd->started = true;
    if (!rd->has_since) {
        recover_refuse(bus, rd, &at, GW_RECOVERY_POSITION);
        return;
    }
    if (!known || !page->reachable || page->current < s->offset ||
        page->current - s->offset > (uint64_t)bus->cfg->recovery_max_messages) {
        recover_refuse(bus, rd, &at, GW_RECOVERY_MISSED);
        return;
    }
    gw_stat_add(&bus->stats.recoveries[GW_RECOVERY_RECOVERED], 1);
    rd->target = page->current;
    rd->last = s->offset;
    size_t n;
    struct gw_frame **frames = page_frames(bus, rd, page, &n);
    bool more = page->n > 0 && rd->last < rd->target;
    post_page(bus, rd, true, !more, 1, &at, frames, n);
}

/* A later page; the epoch must still be the one the replay started in. */
static void recover_next(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page)
{
    size_t n = 0;
    struct gw_frame **frames = NULL;
    bool more = false;

    rd->last = rd->since.offset;
    if (gw_position_in(&rd->since, page->epoch, page->epoch_len)) {
        frames = page_frames(bus, rd, page, &n);
        more = page->n > 0 && rd->last < rd->target;
    }
    post_page(bus, rd, false, !more, 1, NULL, frames, n);
}

static void recover_answer(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page)
{
    if (!page) {
        if (rd->started)
            post_page(bus, rd, false, true, 1, NULL, NULL, 0); /* recovery.c reports where it stopped */
        else
            recover_refuse(bus, rd, NULL, GW_RECOVERY_OVERLOAD);
    } else if (rd->started) {
        recover_next(bus, rd, page);
    } else {
        recover_first(bus, rd, page);
    }
    bus->reads_in_flight--;
    free(rd);
    pump(bus);
}

static void history_answer(struct gw_bus *bus, struct bus_read *rd, const struct gw_history_page *page)
{
    struct gw_frame *frame = NULL;

    if (page) {
        struct gw_position at = page_position(page);
        bool known = !rd->has_since || since_known(&rd->since, page);
        size_t n = known ? page->n : 0;

        frame = gw_codec_history(rd->has_id, rd->id, rd->name, rd->name_len, &at,
                                 !rd->has_since || (known && page->reachable), page->entries, n);
    }
    history_reply(bus, rd, frame);
    bus->reads_in_flight--;
    free(rd);
    pump(bus);
}

static int page_entries(const struct gw_bus *bus)
{
    size_t q = bus->cfg->queue_max_messages / 4;
    return q < 1 ? 1 : q < PAGE_ENTRIES ? (int)q : PAGE_ENTRIES;
}

static size_t page_bytes(const struct gw_bus *bus)
{
    size_t q = bus->cfg->queue_max_bytes / 4;
    return q < PAGE_BYTES ? q : PAGE_BYTES;
}

static bool client_send(struct gw_bus *bus, struct bus_read *rd)
{
    if (rd->kind == READ_HISTORY)
        return read_send(bus, rd, !rd->has_since, rd->since.offset, rd->limit,
                         gw_config_history_reply_bytes(bus->cfg));
    return read_send(bus, rd, false, rd->since.offset, page_entries(bus), page_bytes(bus));
}

static void client_fail(struct gw_bus *bus, struct bus_read *rd, enum gw_recovery_result result)
{
    if (rd->kind == READ_HISTORY)
        history_reply(bus, rd, NULL);
    else
        recover_refuse(bus, rd, NULL, result);
    free(rd);
}

static void pump(struct gw_bus *bus)
{
    while (bus->reads_in_flight < READS_IN_FLIGHT && bus->waiting.count) {
        struct bus_read *rd = (struct bus_read *)gw_readq_pop(&bus->waiting);
        if (!client_send(bus, rd)) {
            client_fail(bus, rd, GW_RECOVERY_OVERLOAD);
            continue;
        }
        bus->reads_in_flight++;
    }
}

static void client_read(struct gw_bus *bus, struct bus_read *rd)
{
    if (bus->standalone) {
        /* No Redis, no history: every channel is at {0, ""}. */
        struct gw_history_page empty = { "", 0, 0, true, NULL, 0 };
        bus->reads_in_flight++;
        if (rd->kind == READ_HISTORY)
            history_answer(bus, rd, &empty);
        else
            recover_answer(bus, rd, &empty);
        return;
    }
    /* One client may not hold the node's whole --max-recoveries: a recovery
     * per subscription (each waits for its page before asking the next) and a
     * few history requests is all a client needs at once. */
    if ((size_t)bus->reads_in_flight + bus->waiting.count >= (size_t)bus->cfg->max_recoveries ||
        gw_readq_client_count(&bus->waiting, rd->session_id) >= (size_t)bus->cfg->max_subscriptions + CLIENT_EXTRA_READS) {
        client_fail(bus, rd, GW_RECOVERY_OVERLOAD);
        return;
    }
    gw_readq_push(&bus->waiting, &rd->q, rd->session_id);
    pump(bus);
}

void gw_bus_cmd_recover(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct bus_read *rd = read_new(READ_RECOVER, cmd->name, cmd->name_len);

    rd->worker = cmd->worker;
    rd->session_id = cmd->session_id;
    rd->seq = cmd->seq;
    rd->has_since = cmd->has_since;
    rd->since = cmd->since;
    rd->started = cmd->target != 0;
    rd->target = cmd->target;
    client_read(bus, rd);
}

void gw_bus_cmd_history(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct bus_read *rd = read_new(READ_HISTORY, cmd->name, cmd->name_len);

    gw_stat_add(&bus->stats.history_requests, 1);
    rd->worker = cmd->worker;
    rd->session_id = cmd->session_id;
    rd->has_id = cmd->has_id;
    rd->id = cmd->id;
    rd->has_since = cmd->has_since;
    rd->since = cmd->since;
    rd->limit = cmd->limit;
    client_read(bus, rd);
}

void gw_bus_on_read(void *ctx, void *token, const struct gw_history_page *page)
{
    struct gw_bus *bus = ctx;
    struct bus_read *rd = token;

    switch (rd->kind) {
    case READ_REPAIR: repair_answer(bus, rd, page); break;
    case READ_RECOVER: recover_answer(bus, rd, page); break;
    case READ_HISTORY: history_answer(bus, rd, page); break;
    }
}

void gw_bus_cmd_left(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct gw_readq_item *it = gw_readq_take_client(&bus->waiting, cmd->session_id);
    uint64_t n = 0;

    while (it) {
        struct gw_readq_item *next = it->next;
        free(it); /* the struct bus_read it opens */
        n++;
        it = next;
    }
    if (n) {
        gw_stat_add(&bus->stats.reads_dropped_left, n);
        LOG_DBG("client left with reads waiting session=%llu dropped=%llu", (unsigned long long)cmd->session_id,
                (unsigned long long)n);
    }
}

void gw_bus_reads_stop(struct gw_bus *bus)
{
    struct gw_readq_item *it;

    while ((it = gw_readq_pop(&bus->waiting)))
        client_fail(bus, (struct bus_read *)it, GW_RECOVERY_OVERLOAD);
}

/* repair.h's deliver and gap: messages with history, in order. */
static void repair_deliver(void *ctx, const char *name, size_t len, const struct gw_position *at,
                           const char *payload, size_t payload_len)
{
    gw_bus_deliver(ctx, name, len, at, payload, payload_len);
}

static void repair_gap(void *ctx, const char *name, size_t len, const char *epoch, uint64_t from, uint64_t to)
{
    gw_bus_fanout(ctx, name, len, gw_codec_gap(name, len, epoch, strlen(epoch), from, to));
}

static void repair_retire(void *ctx, const char *name, size_t len, const char *epoch, uint64_t below)
{
    struct gw_bus *bus = ctx;
    char key[256];
    size_t klen;

    if (!bus_has_redis(bus))
        return;
    klen = gw_bus_prefixed(bus, name, len, key);
    if (bus_retire_epoch(bus, key, klen, epoch, strlen(epoch), below) != 0)
        LOG_WARN("epoch retire not sent channel=%.*s epoch=%s", (int)len, name, epoch);
}

const struct gw_repair_ops gw_bus_repair_ops = {
    .deliver = repair_deliver,
    .gap = repair_gap,
    .read = repair_read,
    .retire = repair_retire,
};
