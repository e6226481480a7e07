/* The cluster roster behind the admin view: every second, while the Redis
 * link is live, this node writes its own entry (a JSON object its owner
 * describes) with a short TTL and reads everyone's; the last read is kept
 * as {"nodes":[...]} for any thread to copy. A node that stops refreshing
 * its entry (killed, partitioned) drops out within GW_ROSTER_TTL_S.
 * Standalone (no link): the roster is this node alone.
 *
 * In Redis: SET <prefix>node:<id> EX GW_ROSTER_TTL_S and SADD <prefix>nodes,
 * then SMEMBERS and one MGET, an id whose entry expired removed from the set;
 * <prefix> is "wsgate:", or "{wsgate}:" in cluster mode (one slot, one master).
 *
 * Runs on the bus thread and its event_base; reaches its owner only through
 * the describe callback. */
#ifndef GW_ROSTER_H
#define GW_ROSTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct gw_clink;
struct gw_link;

#define GW_ROSTER_TTL_S 5

/* Returns this node's entry, malloc'd JSON object text (caller frees):
 * gw_roster_entry of what the owner knows of itself. */
typedef char *(*gw_roster_describe_fn)(void *ctx, size_t *len);

/* How many channels an entry lists, busiest first. */
#define GW_ROSTER_TOP_CHANNELS 8

/* A channel and its subscribers on one worker (the same name may come once
 * per worker). name is borrowed for the call. */
struct gw_roster_channel {
    const char *name;
    uint32_t subscribers;
};

/* This node's link to one Redis Cluster master (its shard's), for the
 * admin view. host is borrowed for the call. */
struct gw_roster_master {
    const char *host;
    int port;
    uint32_t slots;   /* the slots the node's map gives it */
    const char *link; /* the link's state: connecting, loading, proving, live, resetting, down */
    uint64_t rtt_us;  /* its last heartbeat round trip */
    uint64_t reconnects;
};

/* What a node says of itself in the roster; every pointer is borrowed for
 * the call. id and the channel names are checked at startup and per request
 * to hold no character JSON must escape; host is the operator's text. */
struct gw_roster_self {
    const char *id, *host, *version;
    int port;
    bool ready, draining;
    uint64_t connections, subscriptions, channels, messages_in, messages_out, shed;
    const struct gw_roster_channel *top; /* every worker's busiest, in any order */
    int ntop;
    const char *redis_mode; /* static text: standalone, single, sentinel, cluster */
    const struct gw_roster_master *masters; /* cluster mode: its link to each master */
    int nmasters;
};

/* This node's entry for the admin view: a malloc'd JSON object (caller
 * frees), its length in *len, with the time now and, of top, the
 * GW_ROSTER_TOP_CHANNELS channels with the most subscribers summed over the
 * workers, busiest first, and "redis": its mode and (cluster mode) its link
 * to each master. Any thread; never fails. */
char *gw_roster_entry(const struct gw_roster_self *self, size_t *len);

struct gw_roster {
    pthread_mutex_t lock; /* guards json/len */
    char *json;
    size_t len;
    struct gw_link *link; /* single-Redis mode, else NULL */
    struct gw_clink *clink; /* Redis Cluster mode, else NULL (both NULL: standalone) */
    const char *node_id; /* borrowed from the config */
    const char *set, *key_prefix; /* the Redis keys, static text chosen by the mode */
    gw_roster_describe_fn describe;
    void *ctx;
    struct event *tick_ev;
};

void gw_roster_init(struct gw_roster *r);
/* Starts the 1 s refresh on base (bus thread). link, clink (at most one set)
 * and node_id are borrowed and must outlive the roster's last Redis answer
 * (the links call back with NULL when they are freed). Aborts when libevent
 * cannot. */
void gw_roster_start(struct gw_roster *r, struct event_base *base, struct gw_link *link, struct gw_clink *clink,
                     const char *node_id, gw_roster_describe_fn describe, void *ctx);
/* Stops the refresh (bus thread, after its loop stopped). Idempotent. */
void gw_roster_stop(struct gw_roster *r);
void gw_roster_deinit(struct gw_roster *r);

/* A malloc'd copy of the last roster (caller frees); {"nodes":[]} before
 * the first read. Any thread. */
char *gw_roster_copy(struct gw_roster *r, size_t *len);

#endif
