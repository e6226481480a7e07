/* Writing a session's queue to its socket: one writev per batch, straight
 * from the shared frames. */
#define GW_LOG_MODULE "session"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "session.h"
#include "session_int.h"

/* Writes as many queued frames as the socket takes with one writev, straight
 * from the shared frames: each frame already carries its WebSocket header
 * (the codec seals it), so no byte is copied or framed per client, and a
 * client that fell behind catches up with one syscall for many messages.
 *
 * Writing to the fd beside lws is safe here: lws calls WRITEABLE only when
 * it has nothing of its own buffered, and if the socket takes part of a
 * frame, the rest of that frame is handed to lws_write(LWS_WRITE_RAW), which
 * sends or buffers it and flushes it before anything else lws writes (pings,
 * pongs, the close frame). The listener is plain TCP, so there is no TLS
 * layer to bypass, and no extension is ever negotiated. */
/* A server ping: never empty, since lws 4.1.6 raises no RECEIVE_PONG for an
 * empty pong, and a pong echoes the ping's payload. */
static const unsigned char ping_frame[] = { 0x89, 8, 'w', 's', 'g', 'a', 't', 'e', ':', 'p' };

static int write_queued(struct gw_session *s)
{
    struct iovec iov[GW_WRITE_BATCH_FRAMES + 1];
    size_t total = 0, nframes = 0;
    int n = 0;
    struct gw_frame *f;
    bool ping = s->ping_due;

    /* A due ping goes first, in the same writev: a control frame may sit
     * between any two messages, and this way it costs no writable request. */
    if (ping) {
        iov[n++] = (struct iovec){ (void *)ping_frame, sizeof(ping_frame) };
        total = sizeof(ping_frame);
    }
    while (nframes < GW_WRITE_BATCH_FRAMES && total < GW_WRITE_BATCH_BYTES && (f = gw_outq_at(&s->outq, nframes))) {
        iov[n].iov_base = (void *)gw_frame_wire(f);
        iov[n].iov_len = gw_frame_wire_len(f);
        total += iov[n].iov_len;
        n++;
        nframes++;
    }
    ssize_t sent = writev(lws_get_socket_fd(s->wsi), iov, n);
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return -1;
    }
    size_t left = (size_t)sent;
    if (ping && left > 0) {
        s->ping_due = false;
        if (left < sizeof(ping_frame))
            return lws_write(s->wsi, (unsigned char *)ping_frame + left, sizeof(ping_frame) - left,
                             LWS_WRITE_RAW) < 0 ? -1 : 0;
        left -= sizeof(ping_frame);
    }
    /* Counters move once per writev, not once per frame. */
    int64_t frames = 0, bytes = 0;
    int rc = 0;
    while (left > 0) {
        f = gw_outq_pop(&s->outq);
        frames++;
        bytes += (int64_t)f->len;
        if (left < gw_frame_wire_len(f)) {
            size_t rest = gw_frame_wire_len(f) - left;
            rc = lws_write(s->wsi, (unsigned char *)gw_frame_wire(f) + left, rest, LWS_WRITE_RAW) < 0 ? -1 : 0;
            gw_frame_unref(f);
            break;
        }
        left -= gw_frame_wire_len(f);
        gw_frame_unref(f);
    }
    gw_stat_add(&s->host->stats->outq_bytes, -bytes);
    gw_stat_add(&s->host->stats->outq_messages, -frames);
    gw_stat_add(&s->host->stats->messages_delivered, frames);
    if (s->room_wanted && gw_session_has_room(s)) {
        s->room_wanted = false;
        gw_hub_member_room(s->host->hub, &s->member);
    }
    return rc;
}

int gw_session_writeable(struct gw_session *s)
{
    s->write_requested = false;
    if (s->state == GW_SESSION_CLOSING && !(s->flush_before_close && !gw_outq_empty(&s->outq))) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)s->close_reason,
                         strlen(s->close_reason));
        return GW_SESSION_SEND_CLOSE;
    }
    if (gw_outq_empty(&s->outq) && !s->ping_due)
        return 0;
    if (write_queued(s) < 0)
        return -1;
    if (!gw_outq_empty(&s->outq) || s->ping_due || s->state == GW_SESSION_CLOSING)
        gw_session_request_writable(s);
    return 0;
}

void gw_session_flush(struct gw_session *s)
{
    if (s->state != GW_SESSION_OPEN || (gw_outq_empty(&s->outq) && !s->ping_due) || s->write_requested)
        return;
    /* lws holds the rest of an earlier frame: it must go out first, which
     * only WRITEABLE guarantees. */
    if (lws_partial_buffered(s->wsi)) {
        gw_session_request_writable(s);
        return;
    }
    if (write_queued(s) < 0) {
        /* The peer is gone (EPIPE, ECONNRESET): close as for any other reason,
         * but there is no callback to return -1 from and no close frame can
         * get out, so let lws kill it at its next safe point. */
        gw_session_close(s, 1011, "write failed", false);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (!gw_outq_empty(&s->outq) || s->ping_due)
        gw_session_request_writable(s);
}
