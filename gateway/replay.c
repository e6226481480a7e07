/* Applying recovery pages. The hub holds the live frames until the last page;
 * this file only decides what the replay sends and where it stops. */
#include "replay.h"

#include "codec.h"

static void send_own(struct gw_session *s, struct gw_frame *f)
{
    gw_session_enqueue(s, f);
    gw_frame_unref(f);
}

struct gw_sub_recovery *gw_replay_page(struct gw_hub *hub, struct gw_session *s, const struct gw_wmail *m)
{
    struct gw_sub *sub = gw_hub_find(&s->member, m->name, m->name_len);
    struct gw_sub_recovery *rec = sub ? sub->rec : NULL;

    if (!rec || rec->seq != m->seq)
        return NULL;
    if (m->first) {
        rec->acked = true;
        rec->at = m->at;
        if (rec->req.has_id)
            send_own(s, gw_codec_ack_position(rec->req.id, m->name, m->name_len, &m->at, m->recovered));
        /* Without a replay the client continues from the ack's position. */
        rec->next = (m->recovered == 1 ? rec->req.since.offset : m->at.offset) + 1;
    }
    for (size_t i = 0; i < m->nframes; i++) {
        struct gw_frame *f = m->frames[i];

        if (f->offset < rec->next)
            continue;
        if (f->offset > rec->next) /* trimmed between two pages */
            send_own(s, gw_codec_gap(m->name, m->name_len, rec->at.epoch, rec->at.epoch_len, rec->next,
                                     f->offset - 1));
        gw_session_enqueue(s, f);
        rec->next = f->offset + 1;
    }
    if (!m->last)
        return s->state == GW_SESSION_OPEN ? rec : NULL;
    if (rec->next <= rec->at.offset) {
        /* The replay stopped short of the ack's position: say so. */
        send_own(s, gw_codec_gap(m->name, m->name_len, rec->at.epoch, rec->at.epoch_len, rec->next,
                                 rec->at.offset));
        rec->next = rec->at.offset + 1;
    }
    gw_hub_recovery_done(hub, sub, rec->next - 1);
    return NULL;
}

void gw_replay_next(const struct gw_sub_recovery *rec, struct gw_position *since, uint64_t *target)
{
    *since = rec->at;
    since->offset = rec->next - 1;
    *target = rec->at.offset;
}
