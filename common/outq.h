/* Bounded FIFO of frame references for one client, limited both in messages
 * and in bytes. Owned by one thread (the session's worker). A push that would
 * exceed either limit fails and leaves the queue unchanged: the caller decides
 * to shed the client. */
#ifndef GW_OUTQ_H
#define GW_OUTQ_H

#include <stdbool.h>
#include <stddef.h>

#include "frame.h"

struct gw_outq {
    struct gw_frame **ring; /* cap slots, grows by doubling up to max_msgs */
    size_t cap;
    size_t head, count;
    size_t bytes; /* sum of payload lengths queued */
    size_t max_msgs, max_bytes;
};

void gw_outq_init(struct gw_outq *q, size_t max_msgs, size_t max_bytes);
/* Unrefs every queued frame and frees the ring. */
void gw_outq_deinit(struct gw_outq *q);

/* Takes a new reference on f on success. Returns 0, or -ENOBUFS when the
 * queue is full by count or by bytes (f untouched). */
int gw_outq_push(struct gw_outq *q, struct gw_frame *f);

/* Returns the i-th oldest frame (0 = oldest) without removing it, or NULL
 * when i >= count. No reference moves. */
struct gw_frame *gw_outq_at(const struct gw_outq *q, size_t i);

/* Removes the oldest frame and returns it; the caller owns that reference.
 * NULL when empty. */
struct gw_frame *gw_outq_pop(struct gw_outq *q);

static inline bool gw_outq_empty(const struct gw_outq *q) { return q->count == 0; }

#endif
