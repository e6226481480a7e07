/* Private to gateway/session.c and gateway/session_tx.c: the session's
 * struct (opaque to every other file, see session.h) and what the two halves
 * call of each other. Worker thread. */
#ifndef GW_SESSION_INT_H
#define GW_SESSION_INT_H

#include <libwebsockets.h>

#include "codec.h"
#include "outq.h"
#include "quota.h"
#include "session.h"

enum gw_session_state { GW_SESSION_OPEN = 0, GW_SESSION_CLOSING };

struct gw_session {
    uint64_t id; /* never reused: given by the host */
    struct lws *wsi;
    const struct gw_session_host *host;
    struct gw_registry_entry reg; /* its place in host->registry: registry.c's alone */

    struct gw_hub_member member;
    struct gw_outq outq;

    enum gw_session_state state;
    int close_code;
    const char *close_reason; /* static string, or close_text */
    char *close_text; /* owned: a reason the server API gave (gw_session_disconnect_user) */
    bool flush_before_close; /* drain: send what is queued first */
    bool ping_due;
    bool write_requested; /* lws_callback_on_writable() asked, WRITEABLE not yet seen */
    bool room_wanted; /* tell the hub (gw_hub_member_room) once the queue is half empty */

    /* Inbound reassembly of one fragmented message. */
    char *rxbuf; /* owned, NULL between messages */
    size_t rxlen, rxcap;
    bool rx_in_message, rx_discard, rx_binary;

    /* Token bucket, in millionths of a message. */
    int64_t tokens;
    int64_t last_refill_us;
    /* Bytes of channel history it may still store (--client-store-bytes). */
    struct gw_quota store;

    int64_t last_rx_us;
    int64_t last_ping_us;

    /* Access (access.h). claims: the last valid token's, owned; NULL while
     * anonymous. Both times are monotonic us, 0 when they do not apply. */
    struct gw_jwt_claims *claims;
    int64_t auth_deadline_us; /* no rights without a token: close 4004 then */
    int64_t expires_us;       /* exp + leeway of the token: close 4005 then */
};


/* session_out.c: the way out. */

/* Drops every queued frame and takes it off the queue gauges. */
void gw_session_drop_queued(struct gw_session *s);

/* Logs and counts the shed, then closes without flushing. */
void gw_session_shed(struct gw_session *s, enum gw_shed_reason reason, int code, const char *text);

/* Queues an ack frame when has_id. */
void gw_session_send_ack(struct gw_session *s, bool has_id, int64_t id);

/* Queues a frame built for this client alone (takes frame). */
void gw_session_send_own(struct gw_session *s, struct gw_frame *frame);

/* Queues an error frame, counted per code. */
void gw_session_send_error(struct gw_session *s, enum gw_err err, bool has_id, int64_t id, const char *message);

/* session_auth.c. Verifies token and, when valid, makes its claims the
 * session's rights (acked when has_id); a refused token closes 4003. */
void gw_session_authenticate(struct gw_session *s, const char *token, size_t len, bool has_id, int64_t id);

/* Authenticates with the upgrade URL's first token= argument, if any. */
void gw_session_auth_from_url(struct gw_session *s);

/* Checks req against the session's rights; on refusal replies and returns false. */
bool gw_session_permitted(struct gw_session *s, const struct gw_request *req);

/* session_presence.c. gw_client_ops.live: joins name's presence when the
 * channel keeps it (client is the session). */
void gw_session_presence_live(void *client, const char *name, size_t len);
/* s unsubscribed from name (NUL-terminated): it leaves name's presence. */
void gw_session_presence_unsubscribed(struct gw_session *s, const char *name, size_t len);
/* A presence or presence_stats request, already permitted. */
void gw_session_presence_request(struct gw_session *s, const struct gw_request *req);

/* Asks lws for one WRITEABLE; repeated requests before it comes cost nothing. */
void gw_session_request_writable(struct gw_session *s);

/* The queue is at most half full, in bytes and in messages. */
static inline bool gw_session_has_room(const struct gw_session *s)
{
    return s->outq.bytes <= s->host->cfg->queue_max_bytes / 2 && s->outq.count <= s->host->cfg->queue_max_messages / 2;
}

#endif
