/* One recovery of one client's subscription: the pages asked for, the replay
 * and the live frames held until it ends. */
#include "recovery.h"

#include <stdlib.h>

#include "alloc.h"
#include "codec.h"

enum gw_recovery_state {
    GW_RECOVERY_WAITING_LIVE = 0, /* the subscription is not live yet: nothing asked */
    GW_RECOVERY_ASKED,            /* a page is asked for and not applied yet */
    GW_RECOVERY_WAITING_ROOM,     /* the next page waits for room in the client's queue */
    GW_RECOVERY_OVERFLOWED,       /* the held frames passed the bound: the client is shed */
};

struct gw_recovery {
    const struct gw_client_ops *ops;
    void *client;
    const char *name; /* borrowed from the hub's channel */
    size_t name_len;
    uint32_t seq; /* tags the bus's answers; unique per hub */
    enum gw_recovery_state state;
    struct gw_recovery_req req;
    struct gw_position at; /* the channel's position in the ack (first page) */
    uint64_t next; /* the next offset the replay expects; 0 until the first page */
    struct gw_frame **held; /* owned references, oldest first */
    size_t nheld, held_cap, held_bytes, hold_max_bytes;
};

struct gw_recovery *gw_recovery_new(const struct gw_client_ops *ops, void *client, const char *name, size_t len,
                                    uint32_t seq, const struct gw_recovery_req *req, size_t hold_max_bytes)
{
    struct gw_recovery *r = gw_xcalloc(1, sizeof(*r));
    r->ops = ops;
    r->client = client;
    r->name = name;
    r->name_len = len;
    r->seq = seq;
    r->req = *req;
    r->hold_max_bytes = hold_max_bytes;
    return r;
}

static void drop_held(struct gw_recovery *r)
{
    for (size_t i = 0; i < r->nheld; i++)
        gw_frame_unref(r->held[i]);
    free(r->held);
    r->held = NULL;
    r->nheld = r->held_cap = r->held_bytes = 0;
}

void gw_recovery_free(struct gw_recovery *r)
{
    if (!r)
        return;
    drop_held(r);
    free(r);
}

void gw_recovery_cancel(struct gw_recovery *r)
{
    if (!r)
        return;
    if (r->next == 0 && r->req.has_id)
        r->ops->ack(r->client, r->req.id);
    gw_recovery_free(r);
}

uint32_t gw_recovery_seq(const struct gw_recovery *r)
{
    return r->seq;
}

void gw_recovery_start(struct gw_recovery *r)
{
    if (r->state != GW_RECOVERY_WAITING_LIVE)
        return;
    r->state = GW_RECOVERY_ASKED;
    r->ops->ask_page(r->client, r->seq, r->name, r->name_len, r->req.has_since ? &r->req.since : NULL, 0);
}

void gw_recovery_hold(struct gw_recovery *r, struct gw_frame *frame)
{
    if (r->state == GW_RECOVERY_OVERFLOWED)
        return;
    if (r->held_bytes + frame->len > r->hold_max_bytes) {
        r->state = GW_RECOVERY_OVERFLOWED;
        drop_held(r);
        r->ops->overflow(r->client);
        return;
    }
    if (r->nheld == r->held_cap) {
        r->held_cap = r->held_cap ? r->held_cap * 2 : 16;
        r->held = gw_xrealloc(r->held, r->held_cap * sizeof(*r->held));
    }
    r->held[r->nheld++] = gw_frame_ref(frame);
    r->held_bytes += frame->len;
}

static void send_gap(struct gw_recovery *r, uint64_t from, uint64_t to)
{
    struct gw_frame *gap = gw_codec_gap(r->name, r->name_len, r->at.epoch, r->at.epoch_len, from, to);
    gw_client_send_own(r->ops, r->client, gap);
}

/* Asks for the next page once the client's queue has room for it, so a
 * replay is paced by the client reading it. */
static void ask_next(struct gw_recovery *r)
{
    struct gw_position since;

    if (!r->ops->want_room(r->client)) {
        r->state = GW_RECOVERY_WAITING_ROOM;
        return;
    }
    r->state = GW_RECOVERY_ASKED;
    since = r->at;
    since.offset = r->next - 1; /* the last offset replayed, in the replay's epoch */
    r->ops->ask_page(r->client, r->seq, r->name, r->name_len, &since, r->at.offset);
}

void gw_recovery_room(struct gw_recovery *r)
{
    if (r->state == GW_RECOVERY_WAITING_ROOM)
        ask_next(r);
}

/* The replay sent everything up to upto: hands on the held live frames
 * after it (and those without an offset), which is where live delivery
 * resumes. */
static void resume_live(struct gw_recovery *r, uint64_t upto)
{
    for (size_t i = 0; i < r->nheld; i++) {
        struct gw_frame *f = r->held[i];
        if (f->offset == 0 || f->offset > upto)
            r->ops->deliver(r->client, f);
    }
    drop_held(r);
}

enum gw_recovery_step gw_recovery_page(struct gw_recovery *r, const struct gw_wmail *m)
{
    if (m->seq != r->seq || r->state == GW_RECOVERY_OVERFLOWED)
        return GW_RECOVERY_IGNORED;
    if (m->first) {
        r->at = m->at;
        if (r->req.has_id)
            gw_client_send_own(r->ops, r->client,
                               gw_codec_ack_position(r->req.id, r->name, r->name_len, &m->at, m->recovered));
        /* Without a replay the client continues from the ack's position. */
        r->next = (m->recovered == 1 ? r->req.since.offset : m->at.offset) + 1;
    }
    for (size_t i = 0; i < m->nframes; i++) {
        struct gw_frame *f = m->frames[i];

        if (f->offset < r->next)
            continue;
        if (f->offset > r->next) /* trimmed between two pages */
            send_gap(r, r->next, f->offset - 1);
        r->ops->deliver(r->client, f);
        r->next = f->offset + 1;
    }
    if (!m->last) {
        ask_next(r);
        return GW_RECOVERY_MORE;
    }
    if (r->next <= r->at.offset) {
        /* The replay stopped short of the ack's position: say so. */
        send_gap(r, r->next, r->at.offset);
        r->next = r->at.offset + 1;
    }
    resume_live(r, r->next - 1);
    return GW_RECOVERY_DONE;
}
