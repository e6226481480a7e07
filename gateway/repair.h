/* Node-side continuity of the channels with history (docs/PROTOCOL.md,
 * "History and recovery"): the bus hands every live message that came in an
 * envelope to gw_repair_message, which passes them on in offset order without
 * duplicates. When the offsets jump (messages lost while the node's Redis
 * subscription was down or being re-made) or the link comes back after a
 * loss, it reads the missing range from the channel's stream and passes it on
 * first; what arrives live meanwhile is held, up to a byte bound. What cannot
 * be read back is reported as a gap, never skipped silently.
 *
 * A node's continuity for a channel starts at the first message it sees
 * there. An epoch change is passed on as it is (the new epoch in the message
 * is the signal that history was reset); the new epoch's own earlier
 * messages are read back like any other gap.
 *
 * An offset is a duplicate only if it is the same message: the last
 * GW_REPAIR_RECENT passed on keep a 32-bit hash of their payload, and one
 * that comes again with other content, or at an offset Redis has shown it
 * handed out again (a read answering a current offset below the node's in the
 * same epoch: Redis came back with older data, counted as a rewind), is a
 * conflict: counted, logged once per channel, passed on without a position
 * (so no client drops it by its offset) and reported to the subscribers as a
 * gap notice for that offset. Either way the node asks Redis to retire the
 * epoch (ops->retire: on each rewind, guarded by the node's offset; on the
 * first conflict per epoch and link), so that the next publish starts a new
 * one. deploy/redis/wsgate.lua's epoch rule makes both
 * impossible while Redis keeps its replication ID rules; this is the check
 * that nothing is lost silently if it does not. Older offsets than the
 * recent ones cannot be compared and count as duplicates.
 *
 * Knows nothing of Redis or workers: the bus passes ops, so the unit tests
 * drive it with fakes. Bus thread only. */
#ifndef GW_REPAIR_H
#define GW_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "envelope.h"
#include "metrics.h"

struct gw_repair_ops {
    /* Pass one message on to the subscribers. payload is borrowed; at is
     * NULL for a conflicting message (its offset is not its place). */
    void (*deliver)(void *ctx, const char *name, size_t len, const struct gw_position *at, const char *payload,
                    size_t payload_len);
    /* Offsets from..to of epoch will never reach the subscribers (at those
     * offsets: a conflict passes the content on without a position). */
    void (*gap)(void *ctx, const char *name, size_t len, const char *epoch, uint64_t from, uint64_t to);
    /* Read name's stream after since; the answer, tagged gen, must come back
     * through gw_repair_read_done (possibly from inside this call when it
     * fails). Returns 0, or -errno when nothing was sent. */
    int (*read)(void *ctx, const char *name, size_t len, uint64_t since, uint32_t gen);
    /* Ask Redis to end epoch (NUL-terminated), which went back or handed an
     * offset out twice, while it still holds it (and, below not 0, an offset
     * under below). Fire and forget. */
    void (*retire)(void *ctx, const char *name, size_t len, const char *epoch, uint64_t below);
};

struct gw_repair {
    const struct gw_repair_ops *ops;
    void *ctx;
    size_t hold_max_bytes; /* per channel, while a read runs */
    uint64_t max_messages; /* most offsets one gap is read back for */
    struct gw_bus_stats *stats; /* history_* counters */
};

struct gw_repair_held; /* private to repair.c */

/* How many of the last offsets passed on keep a payload hash: 16 bytes each
 * per channel; enough for the live messages that arrive again right after a
 * read-back, which is where duplicates come from. */
#define GW_REPAIR_RECENT 16

/* Per channel, embedded in the bus's channel record. */
struct gw_repair_chan {
    struct gw_position at; /* last passed on; epoch_len 0: nothing seen yet */
    struct {
        uint64_t offset; /* 0: empty */
        uint32_t hash;
    } recent[GW_REPAIR_RECENT]; /* of at's epoch, at [offset % GW_REPAIR_RECENT] */
    uint64_t reused_from; /* at's epoch handed out offsets reused_from..at.offset again; 0: no */
    bool conflict_logged; /* once per channel */
    bool retire_asked; /* on a conflict, for at's epoch, on this link */
    bool reading; /* a read tagged gen is in flight */
    bool catchup; /* the link was lost: read after at once it is live again */
    uint32_t gen;
    struct gw_repair_held *held, *held_tail; /* owned, oldest first */
    size_t held_bytes;
};

void gw_repair_init(struct gw_repair *r, const struct gw_repair_ops *ops, void *ctx, size_t hold_max_bytes,
                    uint64_t max_messages, struct gw_bus_stats *stats);

void gw_repair_chan_init(struct gw_repair_chan *c);
/* Frees what c holds (nothing is passed on). */
void gw_repair_chan_deinit(struct gw_repair_chan *c);

/* A live message of name at position at (from its envelope). */
void gw_repair_message(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len,
                       const struct gw_position *at, const char *payload, size_t payload_len);

/* The answer to read(gen): page, or NULL when the read failed. Stale
 * answers (another gen) are ignored. */
void gw_repair_read_done(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len, uint32_t gen,
                         const struct gw_history_page *page);

/* The node's subscription is gone (link reset): a read in flight is void
 * and what was missed is read once gw_repair_link_live says so. */
void gw_repair_link_lost(struct gw_repair_chan *c);
void gw_repair_link_live(struct gw_repair *r, struct gw_repair_chan *c, const char *name, size_t len);

#endif
