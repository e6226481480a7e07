/* Per-client bounded FIFO of frame references. The ring starts small and
 * doubles up to max_msgs: most sessions never have more than a few frames
 * queued, and a ring sized for the limit up front (8 KiB at the default 1024)
 * would be most of an idle connection's memory. A ring that grew past
 * OUTQ_KEEP_SLOTS is released when the queue drains, so one burst does not
 * pin memory for the connection's whole life. */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"

#define OUTQ_FIRST_SLOTS 4
#define OUTQ_KEEP_SLOTS 64

void gw_outq_init(struct gw_outq *q, size_t max_msgs, size_t max_bytes)
{
    q->ring = NULL;
    q->cap = 0;
    q->head = 0;
    q->count = 0;
    q->bytes = 0;
    q->max_msgs = max_msgs;
    q->max_bytes = max_bytes;
}

void gw_outq_deinit(struct gw_outq *q)
{
    struct gw_frame *f;

    while ((f = gw_outq_pop(q)))
        gw_frame_unref(f);
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
    q->head = 0;
}

/* Doubles the ring (bounded by max_msgs), keeping FIFO order from index 0. */
static void outq_grow(struct gw_outq *q)
{
    size_t cap = q->cap ? q->cap * 2 : OUTQ_FIRST_SLOTS;
    if (cap > q->max_msgs)
        cap = q->max_msgs;
    struct gw_frame **ring = gw_xmalloc(cap * sizeof *ring);
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

int gw_outq_push(struct gw_outq *q, struct gw_frame *f)
{
    /* Written as subtraction so that a huge f->len cannot wrap the sum. */
    if (q->count >= q->max_msgs || f->len > q->max_bytes - q->bytes)
        return -ENOBUFS;
    if (q->count == q->cap)
        outq_grow(q);
    q->ring[(q->head + q->count) % q->cap] = gw_frame_ref(f);
    q->count++;
    q->bytes += f->len;
    return 0;
}

struct gw_frame *gw_outq_at(const struct gw_outq *q, size_t i)
{
    return i < q->count ? q->ring[(q->head + i) % q->cap] : NULL;
}

struct gw_frame *gw_outq_pop(struct gw_outq *q)
{
    struct gw_frame *f;

    if (!q->count)
        return NULL;
    f = q->ring[q->head];
    q->ring[q->head] = NULL;
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->bytes -= f->len;
    if (q->count == 0 && q->cap > OUTQ_KEEP_SLOTS) {
        free(q->ring);
        q->ring = NULL;
        q->cap = 0;
        q->head = 0;
    }
    return f;
}
