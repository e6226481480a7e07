/* Refcounted outbound frames. The live counter lets tests and metrics prove
 * that every frame built was eventually released. */
#include "frame.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static atomic_long live_frames;

static size_t frame_alloc_size(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(struct gw_frame) - GW_FRAME_HEADROOM)
        abort(); /* no caller can legitimately ask for this */
    return sizeof(struct gw_frame) + GW_FRAME_HEADROOM + cap;
}

struct gw_frame *gw_frame_new(size_t cap)
{
    struct gw_frame *f = gw_xmalloc(frame_alloc_size(cap));

    f->refs = 1;
    f->len = 0;
    f->cap = cap;
    f->hdr_len = 0;
    f->offset = 0;
    atomic_fetch_add_explicit(&live_frames, 1, memory_order_relaxed);
    return f;
}

struct gw_frame *gw_frame_new_copy(const void *data, size_t len)
{
    struct gw_frame *f = gw_frame_new(len);

    if (len)
        memcpy(gw_frame_payload(f), data, len);
    f->len = len;
    return f;
}

struct gw_frame *gw_frame_copy(const struct gw_frame *f)
{
    struct gw_frame *copy = gw_frame_new_copy(f->buf + GW_FRAME_HEADROOM, f->len);

    memcpy(copy->buf + GW_FRAME_HEADROOM - f->hdr_len, gw_frame_wire(f), f->hdr_len);
    copy->hdr_len = f->hdr_len;
    copy->offset = f->offset;
    return copy;
}

/* The longest RFC 6455 server header (64-bit length) fits in the headroom. */
_Static_assert(GW_FRAME_HEADROOM >= 10, "frame headroom below a WebSocket header");

void gw_frame_seal_ws_text(struct gw_frame *f)
{
    unsigned char hdr[10];
    unsigned n;
    uint64_t len = f->len;

    hdr[0] = 0x81; /* FIN + text opcode; server frames are never masked */
    if (len < 126) {
        hdr[1] = (unsigned char)len;
        n = 2;
    } else if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        n = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(f->buf + GW_FRAME_HEADROOM - n, hdr, n);
    f->hdr_len = n;
}

struct gw_frame *gw_frame_ref(struct gw_frame *f)
{
    assert(f->refs > 0);
    f->refs++;
    return f;
}

void gw_frame_unref(struct gw_frame *f)
{
    if (!f)
        return;
    assert(f->refs > 0);
    if (--f->refs > 0)
        return;
    atomic_fetch_sub_explicit(&live_frames, 1, memory_order_relaxed);
#ifndef NDEBUG
    /* Poison so a use-after-free reads garbage refs/len instead of stale,
     * plausible data. */
    memset(f, 0xdd, frame_alloc_size(f->cap));
#endif
    free(f);
}

long gw_frame_live_count(void)
{
    return atomic_load_explicit(&live_frames, memory_order_relaxed);
}
