/* A session's part in presence (docs/PROTOCOL.md "Presence"): it joins a
 * presence channel when its subscription goes live, leaves it on
 * unsubscribe (and on close, through gw_bus_post_left), and asks for and
 * receives the presence and presence_stats replies. Worker thread. */
#define GW_LOG_MODULE "session"

#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "node.h"
#include "session_int.h"

static void post(struct gw_session *s, const char *name, size_t len, struct gw_presence_req *r)
{
    const struct gw_session_host *h = s->host;
    gw_bus_post_presence(h->node->bus, h->worker, s->id, name, len, r);
}

void gw_session_presence_live(void *client, const char *name, size_t len)
{
    struct gw_session *s = client;
    char ch[GW_CHANNEL_MAX + 1];

    if (len > GW_CHANNEL_MAX)
        return;
    memcpy(ch, name, len);
    ch[len] = '\0';
    if (!gw_config_keeps_presence(s->host->cfg, ch))
        return;
    struct gw_presence_req *r = gw_xcalloc(1, sizeof *r);
    r->op = GW_PRESENCE_JOIN;
    if (s->claims && s->claims->sub)
        r->user = gw_xstrdup(s->claims->sub);
    if (s->claims && s->claims->info)
        r->info = gw_xstrdup(s->claims->info);
    post(s, name, len, r);
}

void gw_session_presence_unsubscribed(struct gw_session *s, const char *name, size_t len)
{
    if (!gw_config_keeps_presence(s->host->cfg, name))
        return;
    struct gw_presence_req *r = gw_xcalloc(1, sizeof *r);
    r->op = GW_PRESENCE_LEAVE;
    post(s, name, len, r);
}

void gw_session_presence_request(struct gw_session *s, const struct gw_request *req)
{
    if (!gw_config_keeps_presence(s->host->cfg, req->channel)) {
        gw_session_send_error(s, GW_ERR_BAD_REQUEST, req->has_id, req->id,
                              "this channel keeps no presence (--presence-channels)");
        return;
    }
    if (!gw_node_ready(s->host->node)) {
        gw_session_presence_result(s, req->has_id, req->id, NULL);
        return;
    }
    struct gw_presence_req *r = gw_xcalloc(1, sizeof *r);
    r->op = req->type == GW_REQ_PRESENCE ? GW_PRESENCE_MEMBERS : GW_PRESENCE_STATS;
    r->has_id = req->has_id;
    r->id = req->id;
    r->limit = req->limit;
    memcpy(r->cursor, req->cursor, sizeof r->cursor);
    post(s, req->channel, req->channel_len, r);
}

void gw_session_presence_result(struct gw_session *s, bool has_id, int64_t id, struct gw_frame *frame)
{
    if (frame)
        gw_session_enqueue(s, frame);
    else
        gw_session_send_error(s, GW_ERR_UNAVAILABLE, has_id, id, "Redis is unavailable; presence could not be read");
}
