/* Per-client bounded FIFO of frame references. The ring is allocated on the
 * first push because most sessions never have more than one frame queued and
 * many never receive anything at all. */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"

void gw_outq_init(struct gw_outq *q, size_t max_msgs, size_t max_bytes)
{
    q->ring = NULL;
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
    q->head = 0;
}

int gw_outq_push(struct gw_outq *q, struct gw_frame *f)
{
    /* Written as subtraction so that a huge f->len cannot wrap the sum. */
    if (q->count >= q->max_msgs || f->len > q->max_bytes - q->bytes)
        return -ENOBUFS;
    if (!q->ring)
        q->ring = gw_xcalloc(q->max_msgs, sizeof *q->ring);
    q->ring[(q->head + q->count) % q->max_msgs] = gw_frame_ref(f);
    q->count++;
    q->bytes += f->len;
    return 0;
}

struct gw_frame *gw_outq_peek(const struct gw_outq *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

struct gw_frame *gw_outq_at(const struct gw_outq *q, size_t i)
{
    return i < q->count ? q->ring[(q->head + i) % q->max_msgs] : NULL;
}

struct gw_frame *gw_outq_pop(struct gw_outq *q)
{
    struct gw_frame *f;

    if (!q->count)
        return NULL;
    f = q->ring[q->head];
    q->ring[q->head] = NULL;
    q->head = (q->head + 1) % q->max_msgs;
    q->count--;
    q->bytes -= f->len;
    return f;
}
