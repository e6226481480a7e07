/* Refcounted, immutable outbound bytes: one encoded server message shared by
 * every recipient on the node. Each frame has GW_FRAME_HEADROOM writable bytes
 * in front of the payload so libwebsockets can put the WebSocket header there
 * without a copy.
 *
 * The refcount is plain: a frame belongs to one thread at a time. The bus
 * builds it and moves it through a mailbox (whose mutex orders the hand-off)
 * to exactly one worker; several workers get separate copies, because lws
 * writes the WebSocket header into the headroom. The payload is never
 * modified once the frame has been queued. */
#ifndef GW_FRAME_H
#define GW_FRAME_H

#include <stdatomic.h>
#include <stddef.h>

/* Must be >= LWS_PRE (16 on x86_64 with lws 4.1); checked at compile time in ws.c. */
#define GW_FRAME_HEADROOM 16

struct gw_frame {
    unsigned refs; /* owner thread only */
    size_t len; /* payload bytes */
    size_t cap; /* payload capacity */
    unsigned char buf[]; /* GW_FRAME_HEADROOM bytes, then the payload */
};

/* Returns a new frame with refcount 1 and room for cap payload bytes, len 0.
 * Never fails (aborts on OOM). The caller owns the one reference. */
struct gw_frame *gw_frame_new(size_t cap);

/* Returns a new frame (refcount 1) holding a copy of len bytes of data. */
struct gw_frame *gw_frame_new_copy(const void *data, size_t len);

static inline unsigned char *gw_frame_payload(struct gw_frame *f)
{
    return f->buf + GW_FRAME_HEADROOM;
}

/* Takes one more reference; returns f. */
struct gw_frame *gw_frame_ref(struct gw_frame *f);

/* Drops one reference; frees the frame when it was the last. NULL is a no-op. */
void gw_frame_unref(struct gw_frame *f);

/* Number of frames currently allocated in the process (for tests/metrics). */
long gw_frame_live_count(void);

#endif
