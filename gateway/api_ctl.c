/* The server API's endpoints other than /api/publish (docs/PROTOCOL.md,
 * "Server API"): disconnect, unsubscribe, revoke and unrevoke (a body, then
 * a command through the bus and the cluster's answer), GET /api/history
 * (a query, then a client's history read) and GET /api/channels (a query,
 * then a read of the channel index, bus_chans.c). Worker thread. */
#define GW_LOG_MODULE "api"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api.h"
#include "api_int.h"
#include "bus.h"
#include "channel.h"
#include "ctl.h"
#include "log.h"
#include "revoke.h"
#include "wmail.h"

/* The request's query, its '&'-separated arguments joined again into q (lws
 * keeps each as one fragment, percent-decoded). Returns its length, or -1
 * when it is over sizeof q - 2 bytes. */
static int query_of(struct lws *wsi, char *q, size_t cap)
{
    int n = 0;
    /* The total length bounds the loop (a fragment is never empty of its
     * '=' for a parameter the parsers accept). */
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    for (int i = 0, used = 0; total > 0 && used < total && n >= 0; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0 || n + (n > 0) + flen + 1 > (int)cap)
            return flen <= 0 ? n : -1;
        if (n > 0)
            q[n++] = '&';
        if (lws_hdr_copy_fragment(wsi, q + n, (int)cap - n, WSI_TOKEN_HTTP_URI_ARGS, i) != flen)
            return -1;
        n += flen;
        used += flen;
    }
    return n;
}

/* GET /api/history (the query read as a client's history request, the
 * answer the same reply, read by the bus: bus_read.c) and GET /api/channels
 * (one page of the cluster's channel index, read by the bus: bus_chans.c).
 * Both answer as a history result's frame (gw_api_history_result). */
void gw_api_begin_read(struct gw_api *api, struct lws *wsi, struct gw_api_req *r)
{
    char q[1024], msg[256];
    struct gw_ctl_history h;
    struct gw_ctl_channels c;
    enum gw_err err;
    bool channels = r->op == GW_API_OP_CHANNELS;
    const struct gw_node *node = api->node;
    int n = query_of(wsi, q, sizeof q);

    if (n < 0)
        gw_api_answer_error(api, r, 400, "bad_request", "query over %zu bytes", sizeof q - 2);
    else if ((channels ? gw_ctl_parse_channels_query(n ? q : NULL, (size_t)n, &c, &err, msg, sizeof msg)
                       : gw_ctl_parse_history_query(n ? q : NULL, (size_t)n, &h, &err, msg, sizeof msg)) != 0)
        gw_api_answer_error(api, r, 400, gw_err_slug(err), "%s", msg);
    else if (!channels && gw_channel_reserved(node->cfg->channel_prefix, strlen(node->cfg->channel_prefix),
                                              h.channel, h.channel_len))
        gw_api_answer_error(api, r, 403, "forbidden", "channel %s is reserved for the nodes themselves", h.channel);
    else if (channels && !node->cfg->redis_url)
        gw_api_answer_error(api, r, 503, "unavailable", "the channel index is kept in Redis: this node has none");
    else if (!gw_node_ready(node))
        gw_api_answer_error(api, r, 503, "unavailable", "%s",
                            gw_node_draining(node) ? "node is draining; ask another node" : "Redis is unavailable");
    else {
        uint64_t id = GW_API_ID_FLAG | (api->next_seq + 1);
        gw_api_wait_for(api, r, id);
        if (channels)
            gw_bus_post_channels(node->bus, api->worker, id, &c);
        else
            gw_bus_post_history(node->bus, api->worker, id, false, 0, h.channel, h.channel_len,
                                h.has_since ? &h.since : NULL, h.limit);
    }
}

bool gw_api_history_result(struct gw_api *api, uint64_t session_id, struct gw_frame *frame)
{
    struct gw_api_req *r;

    if (!(session_id & GW_API_ID_FLAG))
        return false;
    r = api->started ? gw_dict_delete(&api->pending, &session_id, sizeof(session_id)) : NULL;
    if (!r)
        return true;
    r->api = NULL;
    gw_api_answer_frame(api, r, frame, "Redis could not be read");
    lws_callback_on_writable(r->wsi);
    return true;
}

/* POST /api/disconnect, /api/unsubscribe, /api/revoke and /api/unrevoke,
 * the body complete. */
void gw_api_end_control(struct gw_api *api, struct gw_api_req *r)
{
    struct gw_ctl_disconnect d;
    struct gw_ctl_unsubscribe u;
    struct gw_ctl_revoke rv;
    enum gw_err err = GW_ERR_BAD_REQUEST;
    char msg[256] = "body length does not match its Content-Length";
    int rc = -EINVAL;

    if (r->len == r->expect && !r->overflow && r->op == GW_API_OP_DISCONNECT)
        rc = gw_ctl_parse_disconnect_body(r->body, r->len, &d, &err, msg, sizeof msg);
    else if (r->len == r->expect && !r->overflow && r->op == GW_API_OP_UNSUBSCRIBE)
        rc = gw_ctl_parse_unsubscribe_body(r->body, r->len, &u, &err, msg, sizeof msg);
    else if (r->len == r->expect && !r->overflow)
        rc = gw_ctl_parse_revoke_body(r->body, r->len, r->op == GW_API_OP_UNREVOKE, GW_REVOKE_KEEP_DEFAULT_S,
                                      GW_REVOKE_KEEP_MAX_S, &rv, &err, msg, sizeof msg);
    free(r->body);
    r->body = NULL;
    r->phase = GW_API_IDLE;
    if (rc != 0)
        gw_api_answer_error(api, r, 400, gw_err_slug(err), "%s", msg);
    else if (!gw_node_ready(api->node))
        gw_api_answer_error(api, r, 503, "unavailable", "%s",
                            gw_node_draining(api->node) ? "node is draining; ask another node"
                                                        : "Redis is unavailable; nothing was done");
    else {
        uint64_t id = GW_API_ID_FLAG | (api->next_seq + 1);
        /* The answer comes back through this worker's inbox, so the request
         * is in the table before it can arrive. */
        gw_api_wait_for(api, r, id);
        if (r->op == GW_API_OP_DISCONNECT)
            gw_bus_post_disconnect(api->node->bus, api->worker, id, &d);
        else if (r->op == GW_API_OP_UNSUBSCRIBE)
            gw_bus_post_unsubscribe_user(api->node->bus, api->worker, id, &u);
        else
            gw_bus_post_revoke(api->node->bus, api->worker, id, rv.user, rv.user_len, rv.keep,
                               r->op == GW_API_OP_UNREVOKE);
    }
}

void gw_api_ctl_result(struct gw_api *api, const struct gw_wmail *m)
{
    uint64_t id = m->session_id;
    struct gw_api_req *r = api->started ? gw_dict_delete(&api->pending, &id, sizeof(id)) : NULL;
    char ok[200];
    int n;

    if (!r) {
        LOG_DBG("disconnect result dropped id=%" PRIu64 " reason=connection_gone", id & ~GW_API_ID_FLAG);
        return;
    }
    r->api = NULL;
    if (!m->ok) {
        gw_api_answer_error(api, r, 503, "unavailable", "%s",
                     r->op == GW_API_OP_DISCONNECT || r->op == GW_API_OP_UNSUBSCRIBE
                         ? "Redis did not take the command; nothing is known to be done"
                         : "Redis did not take it, or took it and could not announce it to the nodes; retry");
    } else {
        if (r->op == GW_API_OP_DISCONNECT)
            n = snprintf(ok, sizeof ok, "{\"ok\":true,\"closed\":%" PRIu64 ",\"nodes\":%d,\"answered\":%d}\n",
                         m->closed, m->nodes, m->answered);
        else if (r->op == GW_API_OP_UNSUBSCRIBE)
            n = snprintf(ok, sizeof ok,
                         "{\"ok\":true,\"unsubscribed\":%" PRIu64 ",\"nodes\":%d,\"answered\":%d}\n", m->closed,
                         m->nodes, m->answered);
        else if (r->op == GW_API_OP_REVOKE)
            n = snprintf(ok, sizeof ok,
                         "{\"ok\":true,\"revoked_at\":%" PRId64 ",\"until\":%" PRId64 ",\"nodes\":%d,\"answered\":%d}\n",
                         m->rev_at, m->rev_until, m->nodes, m->answered);
        else
            n = snprintf(ok, sizeof ok, "{\"ok\":true,\"lifted_at\":%" PRId64 ",\"nodes\":%d,\"answered\":%d}\n",
                         m->rev_at, m->nodes, m->answered);
        gw_api_answer_ok(api, r, ok, (size_t)n);
    }
    lws_callback_on_writable(r->wsi);
}
