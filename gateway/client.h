/* What a subscriber does for the hub and for its recoveries: the one table
 * through which both reach a client (a session; a recording fake in the unit
 * tests). Every call takes the member's owner and runs on the worker thread
 * that holds it. An interface only: session.c implements it. */
#ifndef GW_CLIENT_H
#define GW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "frame.h"

struct gw_client_ops {
    /* Queue frame for client; it takes its own reference if it keeps one. */
    void (*deliver)(void *client, struct gw_frame *frame);
    /* A subscribe request of client with this id is complete: send its ack. */
    void (*ack)(void *client, int64_t id);
    /* True when client's queue has room for a recovery page; else false, and
     * client calls gw_hub_member_room() once it has room again. */
    bool (*want_room)(void *client);
    /* What was held for client during a recovery outgrew its bound: shed it. */
    void (*overflow)(void *client);
    /* Asks the bus for one page of client's recovery seq on channel name
     * (gw_bus_post_recover): target 0 asks for the first, since being the
     * client's "since" or NULL; a later page starts after since and ends at
     * target. name is only valid during the call. */
    void (*ask_page)(void *client, uint32_t seq, const char *name, size_t len, const struct gw_position *since,
                     uint64_t target);
    /* client's subscription to name became live (its ack is due now): once
     * per subscription, not again after a link loss. name is only valid
     * during the call. May be NULL. */
    void (*live)(void *client, const char *name, size_t len);
};

/* Queues f, a frame built for client alone (a reply, an ack, a notice), and
 * drops the builder's reference: the one way such a frame reaches a client. */
static inline void gw_client_send_own(const struct gw_client_ops *ops, void *client, struct gw_frame *f)
{
    ops->deliver(client, f);
    gw_frame_unref(f);
}

#endif
