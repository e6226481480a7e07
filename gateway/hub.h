/* The local hub of one worker thread: channel -> local subscribers and
 * subscriber -> channels. It decides when this worker needs the node's Redis
 * subscription (first local subscriber arrives, last one leaves), holds
 * subscribe acks until that subscription is live, and keeps one recovery
 * (recovery.h) per subscription that asked for one, handing it the
 * channel's live frames and its pages until it ends.
 *
 * Knows nothing about lws or Redis: the owner passes callbacks (gw_hub_ops)
 * and members are reached through gw_client_ops, so the unit tests drive it
 * with fake members. Owned and used by one worker thread. */
#ifndef GW_HUB_H
#define GW_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "client.h"
#include "dict.h"
#include "frame.h"
#include "list.h"
#include "recovery.h"
#include "wmail.h"

struct gw_hub_channel; /* private to hub.c */
struct gw_sub;         /* one (member, channel) pair; private to hub.c */

/* Embedded in each subscriber (a session). owner is the caller's object,
 * the first argument of every gw_client_ops call. */
struct gw_hub_member {
    void *owner;
    struct gw_sub **subs; /* owned array of owned records */
    int nsubs, cap;
};

/* What the hub needs of its owner (the worker): the node's Redis interest. */
struct gw_hub_ops {
    /* Channel's local count went 0 -> 1 / 1 -> 0: ask / release the node's
     * Redis subscription. name is only valid during the call. gen tags this
     * incarnation: the live notice must carry it back. */
    void (*channel_wanted)(void *ctx, const char *name, size_t len, uint32_t gen);
    void (*channel_unwanted)(void *ctx, const char *name, size_t len);
};

struct gw_hub {
    struct gw_dict channels; /* name -> struct gw_hub_channel* */
    const struct gw_hub_ops *ops;
    void *ctx;
    const struct gw_client_ops *client; /* every member's, and its recoveries' */
    struct gw_dict recovering; /* seq (4 bytes) -> struct gw_sub* with a recovery */
    size_t nsubs; /* total (member, channel) pairs */
    size_t hold_max_bytes; /* per recovering subscription */
    uint32_t next_seq;
    uint32_t next_gen;
    struct gw_list counted; /* channels whose count changed since gw_hub_take_counts */
};

/* ops and ctx: the owner's; client: how the hub and the recoveries reach a
 * member. All three must outlive the hub. A recovering subscription holds
 * at most hold_max_bytes of live frames. */
void gw_hub_init(struct gw_hub *hub, const struct gw_hub_ops *ops, void *ctx, const struct gw_client_ops *client,
                 size_t hold_max_bytes);
/* All members must have left (gw_hub_leave_all) before. */
void gw_hub_deinit(struct gw_hub *hub);

void gw_hub_member_init(struct gw_hub_member *m, void *owner);
/* Removes the member from every channel (no acks sent) and frees its records. */
void gw_hub_leave_all(struct gw_hub *hub, struct gw_hub_member *m);

/* Repeats of one pending subscribe a member may have waiting (each needs
 * its own reply, so each is kept). */
#define GW_HUB_MAX_PENDING_IDS 64

enum gw_hub_sub_result {
    GW_HUB_SUB_ACK_NOW = 0,   /* live already, or already subscribed: ack now */
    GW_HUB_SUB_ACK_LATER,     /* registered; ops->ack is called when live */
};

/* Subscribes m to name. Returns a gw_hub_sub_result (>= 0), or -EAGAIN when
 * the channel is not live and allow_new is false (nothing changed), or
 * -ENOSPC when m already holds max_subs channels, or -E2BIG when it already
 * has GW_HUB_MAX_PENDING_IDS repeats of this subscribe waiting. With rec (copied) a new
 * subscription is recovered (recovery.h): once live, its recovery asks for
 * its first page instead of an ack (GW_HUB_SUB_ACK_LATER), and the live
 * frames are held for it until its last page (gw_hub_recovery_page); a
 * repeat of a held channel is a plain one. */
int gw_hub_subscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len,
                     bool has_id, int64_t id, int max_subs, bool allow_new, const struct gw_recovery_req *rec);

/* m's subscription to name, or NULL. */
struct gw_sub *gw_hub_find(const struct gw_hub_member *m, const char *name, size_t len);

/* sub's recovery while one runs, else NULL. */
struct gw_recovery *gw_hub_sub_recovery(const struct gw_sub *sub);

/* How many channels m is subscribed to. */
int gw_hub_member_count(const struct gw_hub_member *m);

/* The name of m's subscription i (0 <= i < gw_hub_member_count(m)) and its
 * length in *len; valid until m's subscriptions change. Unsubscribing moves
 * the last subscription to i. */
const char *gw_hub_member_channel(const struct gw_hub_member *m, int i, size_t *len);

/* One page of a recovery (GW_WMAIL_RECOVERY), found by its seq; a page of a
 * subscription that is gone, or of an older recovery of it, is ignored. The
 * last page ends the recovery (the held frames resume, repeated subscribes
 * get their acks). m stays the caller's. */
void gw_hub_recovery_page(struct gw_hub *hub, const struct gw_wmail *m);

/* m's client has room in its queue again: its recoveries waiting for room
 * ask for their next page. */
void gw_hub_member_room(struct gw_hub *hub, struct gw_hub_member *m);

/* Unsubscribes m from name (no-op if absent). A subscribe ack still pending
 * for it is sent first, so every request gets its one reply (a recovery not
 * yet answered gets a plain ack). */
void gw_hub_unsubscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len);

/* m's subscription to name (if any) receives presence events (on) or not. */
void gw_hub_want_presence(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len, bool on);

/* Delivers a presence event frame (join, leave, presence_limited) to the
 * live subscribers of name that want presence events; the caller keeps its
 * reference. Returns how many got it. */
size_t gw_hub_deliver_presence(struct gw_hub *hub, const char *name, size_t len, struct gw_frame *frame);

/* The node's Redis subscription for name is live: mark the channel live and
 * send every pending ack. Unknown channel, or a notice for an earlier
 * incarnation of it (another gen: its last subscriber left and a new one
 * came since): no-op, so no ack can rest on a subscription being removed. */
void gw_hub_channel_live(struct gw_hub *hub, const char *name, size_t len, uint32_t gen);

/* The node's Redis link is lost: no channel is live until its subscription
 * is confirmed again (a gw_hub_channel_live per channel follows). */
void gw_hub_link_down(struct gw_hub *hub);
/* The same for one channel (cluster mode: its master is lost). */
void gw_hub_channel_down(struct gw_hub *hub, const char *name, size_t len);

/* Hands frame to every local subscriber of name via client->deliver (one
 * indirect call per recipient), or to its recovery to hold. Returns the
 * number of recipients. Does not consume the caller's reference. */
size_t gw_hub_deliver(struct gw_hub *hub, const char *name, size_t len, struct gw_frame *frame);

size_t gw_hub_channel_count(const struct gw_hub *hub);

/* Hands fn (with arg) each channel whose local subscriber count changed
 * since the last call and is still above zero, with that count, and forgets
 * them: the feed of per-channel subscriber counts (GET /api/channels). A
 * channel's first subscriber and its last one leaving are not listed: the
 * owner learns those from channel_wanted (count 1) and channel_unwanted
 * (count 0), which come first. name is only valid during the call. Returns
 * how many were handed. */
typedef void (*gw_hub_count_fn)(void *arg, const char *name, size_t len, uint32_t subscribers);
size_t gw_hub_take_counts(struct gw_hub *hub, gw_hub_count_fn fn, void *arg);

/* A channel and its local subscribers, for the admin view. */
struct gw_hub_top {
    char name[GW_CHANNEL_MAX + 1];
    uint32_t subscribers;
};

/* Fills top with the (at most max > 0) channels with the most local
 * subscribers, busiest first; returns how many. */
int gw_hub_busiest(const struct gw_hub *hub, struct gw_hub_top *top, int max);

#endif
