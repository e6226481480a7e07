/* The waiting client reads of the bus (history requests and recovery pages),
 * served in turns: one read per client per turn, so one client's many reads
 * cannot starve another client's (issue 15: a client sending history requests
 * at its rate limit held every other recovery on its node behind them, FIFO).
 * A client that left has its waiting reads taken out at once.
 *
 * Owns only its per-client records; the items are the caller's, linked in
 * through an embedded gw_readq_item. No Redis, no locks: one thread (the
 * bus thread) owns a queue. */
#ifndef GW_READQ_H
#define GW_READQ_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"

/* Embed in the caller's read; the queue uses both fields while it holds it. */
struct gw_readq_item {
    struct gw_readq_item *next;
    uint64_t client;
};

struct readq_client; /* readq.c */

struct gw_readq {
    struct gw_dict clients; /* client id (8 bytes) -> struct readq_client*, those with waiting items */
    struct readq_client *head, *tail; /* the same clients, in turn order */
    size_t count; /* items waiting */
};

void gw_readq_init(struct gw_readq *q);
/* Frees the per-client records; items still queued stay the caller's (take
 * them out first with gw_readq_pop). */
void gw_readq_deinit(struct gw_readq *q);

/* Queues it (kept until popped or taken back) behind client's other items;
 * a client new to the queue takes its turn after every client already in it.
 * Never fails (aborts on OOM). */
void gw_readq_push(struct gw_readq *q, struct gw_readq_item *it, uint64_t client);

/* The next item in turn (given back to the caller), or NULL when empty: the
 * oldest item of the client whose turn it is; that client then goes to the
 * back of the turn order. */
struct gw_readq_item *gw_readq_pop(struct gw_readq *q);

/* How many items of client wait. */
size_t gw_readq_client_count(const struct gw_readq *q, uint64_t client);

/* Takes every waiting item of client out of the queue and gives them back,
 * oldest first, linked by next (NULL when it had none). */
struct gw_readq_item *gw_readq_take_client(struct gw_readq *q, uint64_t client);

#endif
