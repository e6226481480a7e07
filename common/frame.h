/* Refcounted, immutable outbound bytes: one encoded server message shared by
 * every recipient on the node. Each frame has GW_FRAME_HEADROOM bytes in
 * front of the payload where the WebSocket header is written once
 * (gw_frame_seal_ws_text), so every recipient gets the same ready wire bytes.
 *
 * The refcount is plain: a frame belongs to one thread at a time. The bus
 * builds it and moves it through a mailbox (whose release/acquire pair
 * orders the hand-off) to exactly one worker; several workers get separate
 * copies, so no refcount cache line ever bounces between cores on the
 * per-recipient path. */
#ifndef GW_FRAME_H
#define GW_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Room for the longest RFC 6455 server frame header (10 bytes); also >= LWS_PRE. */
#define GW_FRAME_HEADROOM 16

struct gw_frame {
    unsigned refs; /* owner thread only */
    size_t len; /* payload bytes */
    size_t cap; /* payload capacity */
    unsigned hdr_len; /* WebSocket header bytes in front of the payload, 0 until sealed */
    /* A channel message with history: its offset (envelope.h); 0 for every
     * other frame. Lets a recovering subscriber drop what its replay sent. */
    uint64_t offset;
    unsigned char buf[]; /* GW_FRAME_HEADROOM bytes, then the payload */
};

/* Returns a new frame with refcount 1 and room for cap payload bytes, len 0.
 * Never fails (aborts on OOM). The caller owns the one reference. */
struct gw_frame *gw_frame_new(size_t cap);

/* Returns a new frame (refcount 1) holding a copy of len bytes of data. */
struct gw_frame *gw_frame_new_copy(const void *data, size_t len);

/* Returns a new frame (refcount 1) with the same payload and header as f. */
struct gw_frame *gw_frame_copy(const struct gw_frame *f);

static inline unsigned char *gw_frame_payload(struct gw_frame *f)
{
    return f->buf + GW_FRAME_HEADROOM;
}

/* Writes the WebSocket header of one unmasked, final text frame carrying the
 * payload into the end of the headroom. After this the wire bytes are
 * complete and the frame is never modified again. */
void gw_frame_seal_ws_text(struct gw_frame *f);

/* The bytes to put on the socket: header and payload, once sealed. */
static inline const unsigned char *gw_frame_wire(const struct gw_frame *f)
{
    return f->buf + GW_FRAME_HEADROOM - f->hdr_len;
}

static inline size_t gw_frame_wire_len(const struct gw_frame *f)
{
    return f->hdr_len + f->len;
}

/* Takes one more reference; returns f. */
struct gw_frame *gw_frame_ref(struct gw_frame *f);

/* Drops one reference; frees the frame when it was the last. NULL is a no-op. */
void gw_frame_unref(struct gw_frame *f);

/* Number of frames currently allocated in the process (for tests/metrics). */
long gw_frame_live_count(void);

#endif
