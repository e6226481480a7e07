/* Private to gateway/session.c and gateway/session_tx.c. */
#ifndef GW_SESSION_INT_H
#define GW_SESSION_INT_H

#include "session.h"

/* Asks lws for one WRITEABLE; repeated requests before it comes cost nothing. */
void gw_session_request_writable(struct gw_session *s);

/* The queue is at most half full, in bytes and in messages. */
static inline bool gw_session_has_room(const struct gw_session *s)
{
    return s->outq.bytes <= s->host->cfg->queue_max_bytes / 2 && s->outq.count <= s->host->cfg->queue_max_messages / 2;
}

#endif
