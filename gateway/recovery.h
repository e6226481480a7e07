/* The client side of one recovery (docs/PROTOCOL.md, "History and recovery"),
 * from the subscribe that asked for it to its last replayed page: it asks the
 * bus for pages, at most one at a time and only while the client's queue has
 * room; turns each page into what the client sees (the subscribe's ack with
 * the channel's position and "recovered", the missed messages in offset
 * order, a gap notice where the stream no longer had one); holds the
 * channel's live frames meanwhile; and at the end hands on the held frames
 * the replay did not already send, which is where live delivery resumes.
 *
 * Knows nothing of sessions, the hub's structs, lws or Redis: it reaches its
 * client and the bus only through gw_client_ops. The hub creates one per
 * recovering subscription and owns it (hub.h). Worker thread. */
#ifndef GW_RECOVERY_H
#define GW_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "envelope.h"
#include "frame.h"
#include "wmail.h"

/* What a subscribe with "since" or "recover" asks beyond a plain one. */
struct gw_recovery_req {
    bool has_id;
    int64_t id;
    bool has_since;
    struct gw_position since;
};

struct gw_recovery;

/* A recovery for client (ops, client: kept) on channel name (borrowed: the
 * hub's channel outlives its subscriptions), tagged seq, holding live frames
 * up to hold_max_bytes. req is copied. Nothing is asked until
 * gw_recovery_start. Never fails. */
struct gw_recovery *gw_recovery_new(const struct gw_client_ops *ops, void *client, const char *name, size_t len,
                                    uint32_t seq, const struct gw_recovery_req *req, size_t hold_max_bytes);

/* Drops the held frames and frees r. When the subscribe was not answered yet
 * (no first page) and has an id, acks it first, so every request gets its
 * one reply. NULL is a no-op. */
void gw_recovery_cancel(struct gw_recovery *r);

uint32_t gw_recovery_seq(const struct gw_recovery *r);

/* The subscription is live: asks for the first page. Only the first call
 * does anything. */
void gw_recovery_start(struct gw_recovery *r);

/* A live frame of the channel during the replay: r takes a reference and
 * holds it. Past the bound it drops all it held and calls ops->overflow
 * once; nothing more is held or replayed after that. */
void gw_recovery_hold(struct gw_recovery *r, struct gw_frame *frame);

enum gw_recovery_step {
    GW_RECOVERY_IGNORED = 0, /* not this recovery's page (another seq), or it overflowed */
    GW_RECOVERY_MORE,        /* applied; the next page is asked (or waits for room) */
    GW_RECOVERY_DONE,        /* the last page: held frames handed on; free r now */
};

/* Applies page m (GW_WMAIL_RECOVERY; m keeps its frames, r sends what it
 * needs with its own references). Pages come one at a time, in the order
 * asked; a frame at or below the last offset replayed is skipped, so a page
 * repeated or overlapping the one before sends nothing twice. */
enum gw_recovery_step gw_recovery_page(struct gw_recovery *r, const struct gw_wmail *m);

/* The client has room again (it said no to ops->want_room): asks for the
 * page that waits for it, if any. */
void gw_recovery_room(struct gw_recovery *r);

/* The end of a replay, and the free: after GW_RECOVERY_DONE. */
void gw_recovery_free(struct gw_recovery *r);

#endif
