/* The local hub of one worker thread: channel -> local subscribers and
 * subscriber -> channels. It decides when this worker needs the node's Redis
 * subscription (first local subscriber arrives, last one leaves) and holds
 * subscribe acks until that subscription is live.
 *
 * Knows nothing about lws or Redis: the owner passes callbacks, so the unit
 * tests drive it with fake members. Owned and used by one worker thread. */
#ifndef GW_HUB_H
#define GW_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "frame.h"

struct gw_hub_channel;

/* One (member, channel) pair. Lives in both the channel's array and the
 * member's array; idx is its position in the channel's array. */
struct gw_sub {
    struct gw_hub_member *member;
    struct gw_hub_channel *channel;
    size_t idx;
    bool ack_pending; /* subscribe not yet acknowledged: channel not live yet */
    int nids; /* ids of the pending subscribe requests (repeats included) */
    int64_t *ids; /* owned, NULL when nids == 0 */
};

/* Embedded in each subscriber (a session). owner is the caller's object. */
struct gw_hub_member {
    void *owner;
    struct gw_sub **subs; /* owned array of owned records */
    int nsubs, cap;
};

struct gw_hub_channel {
    const char *name; /* points into the dict entry key */
    size_t name_len;
    struct gw_sub **subs; /* owned array, records owned by members */
    size_t n, cap;
    bool live; /* node's Redis subscription confirmed */
};

struct gw_hub_ops {
    /* Channel's local count went 0 -> 1 / 1 -> 0: ask / release the node's
     * Redis subscription. name is only valid during the call. */
    void (*channel_wanted)(void *ctx, const char *name, size_t len);
    void (*channel_unwanted)(void *ctx, const char *name, size_t len);
    /* Queue frame for owner (take a reference if kept). */
    void (*deliver)(void *ctx, void *owner, struct gw_frame *frame);
    /* A subscribe request of owner with this id is complete: send its ack. */
    void (*ack)(void *ctx, void *owner, int64_t id);
};

struct gw_hub {
    struct gw_dict channels; /* name -> struct gw_hub_channel* */
    const struct gw_hub_ops *ops;
    void *ctx;
    size_t nsubs; /* total (member, channel) pairs */
};

void gw_hub_init(struct gw_hub *hub, const struct gw_hub_ops *ops, void *ctx);
/* All members must have left (gw_hub_leave_all) before. */
void gw_hub_deinit(struct gw_hub *hub);

void gw_hub_member_init(struct gw_hub_member *m, void *owner);
/* Removes the member from every channel (no acks sent) and frees its records. */
void gw_hub_leave_all(struct gw_hub *hub, struct gw_hub_member *m);

enum gw_hub_sub_result {
    GW_HUB_SUB_ACK_NOW = 0,   /* live already, or already subscribed: ack now */
    GW_HUB_SUB_ACK_LATER,     /* registered; ops->ack is called when live */
};

/* Subscribes m to name. Returns a gw_hub_sub_result (>= 0), or -EAGAIN when
 * the channel is not live and allow_new is false (nothing changed), or
 * -ENOSPC when m already holds max_subs channels. */
int gw_hub_subscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len,
                     bool has_id, int64_t id, int max_subs, bool allow_new);

/* Unsubscribes m from name (no-op if absent). A subscribe ack still pending
 * for it is sent first, so every request gets its one reply. */
void gw_hub_unsubscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len);

/* The node's Redis subscription for name is live: mark the channel live and
 * send every pending ack. Unknown channel: no-op. */
void gw_hub_channel_live(struct gw_hub *hub, const char *name, size_t len);

/* Hands frame to every local subscriber of name via ops->deliver. Returns the
 * number of recipients. Does not consume the caller's reference. */
size_t gw_hub_deliver(struct gw_hub *hub, const char *name, size_t len, struct gw_frame *frame);

size_t gw_hub_channel_count(const struct gw_hub *hub);

#endif
