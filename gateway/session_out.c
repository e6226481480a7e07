/* A session's way out, below the rest of it: the bounded queue, frames built
 * for this client alone (replies, errors, acks), shedding and the close.
 * session.c, session_auth.c, session_presence.c and session_tx.c call it;
 * it calls none of them. Worker thread. */
#define GW_LOG_MODULE "session"

#include <libwebsockets.h>

#include "log.h"
#include "session_int.h"

#define CLOSE_GRACE_S 5

void gw_session_drop_queued(struct gw_session *s)
{
    gw_stat_add(&s->host->stats->outq_bytes, -(int64_t)s->outq.bytes);
    gw_stat_add(&s->host->stats->outq_messages, -(int64_t)s->outq.count);
    gw_outq_deinit(&s->outq);
}

void gw_session_request_writable(struct gw_session *s)
{
    if (s->write_requested)
        return;
    s->write_requested = true;
    lws_callback_on_writable(s->wsi);
}

void gw_session_close(struct gw_session *s, int code, const char *reason, bool flush)
{
    if (s->state == GW_SESSION_CLOSING)
        return;
    s->state = GW_SESSION_CLOSING;
    s->close_code = code;
    s->close_reason = reason;
    s->flush_before_close = flush;
    if (!flush) {
        /* Nothing queued will be sent: free it now, not when the peer lets us. */
        gw_session_drop_queued(s);
    }
    gw_session_request_writable(s);
    /* A peer that never lets us write (full socket) still goes: lws kills the
     * connection when this timer fires unless the close completed first. A
     * shed client's close frame waits behind what the kernel already holds
     * for it; it gets CLOSE_GRACE_S to read that far, as long as lws gives a
     * peer to answer a close. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, flush ? s->host->cfg->drain_timeout_s + 1 : CLOSE_GRACE_S);
}

void gw_session_shed(struct gw_session *s, enum gw_shed_reason reason, int code, const char *text)
{
    gw_stat_add(&s->host->stats->shed[reason], 1);
    LOG_WARN("shed id=%llu reason=%s queued_msgs=%zu queued_bytes=%zu subscriptions=%d",
             (unsigned long long)s->id, gw_shed_reason_name(reason), s->outq.count, s->outq.bytes,
             gw_hub_member_count(&s->member));
    gw_session_close(s, code, text, false);
}

void gw_session_enqueue(struct gw_session *s, struct gw_frame *frame)
{
    if (s->state != GW_SESSION_OPEN)
        return;
    bool was_empty = gw_outq_empty(&s->outq);
    if (gw_outq_push(&s->outq, frame) != 0) {
        gw_session_shed(s, GW_SHED_SLOW_CONSUMER, 4008, "slow consumer");
        return;
    }
    gw_stat_add(&s->host->stats->outq_bytes, (int64_t)frame->len);
    gw_stat_add(&s->host->stats->outq_messages, 1);
    if (was_empty && !s->write_requested)
        gw_registry_want_flush(s->host->registry, &s->reg);
}

void gw_session_send_own(struct gw_session *s, struct gw_frame *frame)
{
    /* gw_client_send_own with this session's deliver, named directly so
     * that the way out needs nothing of session.c. */
    gw_session_enqueue(s, frame);
    gw_frame_unref(frame);
}

void gw_session_send_error(struct gw_session *s, enum gw_err err, bool has_id, int64_t id, const char *message)
{
    gw_stat_add(&s->host->stats->client_errors[err], 1);
    LOG_DBG("error id=%llu code=%s", (unsigned long long)s->id, gw_err_slug(err));
    gw_session_send_own(s, gw_codec_error(err, has_id, id, message));
}

void gw_session_send_ack(struct gw_session *s, bool has_id, int64_t id)
{
    if (has_id)
        gw_session_send_own(s, gw_codec_ack(id));
}
