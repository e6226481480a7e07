/* The cluster roster behind the admin view: every second, while the Redis
 * link is live, this node writes its own entry (a JSON object its owner
 * describes) with a short TTL and reads everyone's; the last read is kept
 * as {"nodes":[...]} for any thread to copy. A node that stops refreshing
 * its entry (killed, partitioned) drops out within GW_ROSTER_TTL_S.
 * Standalone (no link): the roster is this node alone.
 *
 * Runs on the bus thread and its event_base; reaches its owner only through
 * the describe callback. */
#ifndef GW_ROSTER_H
#define GW_ROSTER_H

#include <pthread.h>
#include <stddef.h>

struct event;
struct event_base;
struct gw_link;

#define GW_ROSTER_TTL_S 5

/* Returns this node's entry, malloc'd JSON object text (caller frees). */
typedef char *(*gw_roster_describe_fn)(void *ctx, size_t *len);

struct gw_roster {
    pthread_mutex_t lock; /* guards json/len */
    char *json;
    size_t len;
    struct gw_link *link; /* NULL: standalone */
    gw_roster_describe_fn describe;
    void *ctx;
    struct event *tick_ev;
};

void gw_roster_init(struct gw_roster *r);
/* Starts the 1 s refresh on base (bus thread). Aborts when libevent cannot. */
void gw_roster_start(struct gw_roster *r, struct event_base *base, struct gw_link *link,
                     gw_roster_describe_fn describe, void *ctx);
/* Stops the refresh (bus thread, after its loop stopped). Idempotent. */
void gw_roster_stop(struct gw_roster *r);
void gw_roster_deinit(struct gw_roster *r);

/* link_ops.on_roster: keeps {"nodes":[json...]}. Bus thread. */
void gw_roster_store(struct gw_roster *r, int n, const char *const *json, const size_t *jlen);

/* A malloc'd copy of the last roster (caller frees); {"nodes":[]} before
 * the first read. Any thread. */
char *gw_roster_copy(struct gw_roster *r, size_t *len);

#endif
