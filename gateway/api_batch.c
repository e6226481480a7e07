/* The batch form of POST /api/publish (docs/PROTOCOL.md, "Batch"): up to
 * GW_CTL_BATCH_MAX {channel, data, idempotency_key?} entries, each published
 * as a single publish would be (its own id in the worker's table, all
 * pointing at the one request) and answered in order, each with its position
 * or its own error, once the last result is in. Worker thread. */
#define GW_LOG_MODULE "api"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api_int.h"
#include "codec.h"
#include "ctl.h"
#include "json.h"
#include "log.h"

struct gw_api_batch {
    size_t n, pending;
    uint64_t first_id; /* entry i waits under first_id + i */
    char **answers;    /* owned JSON objects, in order; NULL while waiting */
};

/* {"error":slug,"message":msg} (msg escaped), malloc'd. */
static char *entry_error(const char *slug, const char *msg)
{
    size_t mlen = strlen(msg), n;
    char *out = gw_xmalloc(32 + strlen(slug) + gw_json_escape_len(msg, mlen));

    n = (size_t)sprintf(out, "{\"error\":\"%s\",\"message\":", slug);
    n += gw_json_escape(out + n, msg, mlen);
    memcpy(out + n, "}", 2);
    return out;
}

static char *entry_ok(const struct gw_position *at)
{
    char ok[128];

    if (at && at->offset)
        snprintf(ok, sizeof ok, "{\"ok\":true,\"offset\":%" PRIu64 ",\"epoch\":\"%s\"}", at->offset, at->epoch);
    else
        snprintf(ok, sizeof ok, "{\"ok\":true}");
    return gw_xstrdup(ok);
}

/* All entries answered: {"results":[...]} , 200. */
static void finish(struct gw_api *api, struct gw_api_req *r)
{
    struct gw_api_batch *b = r->batch;
    size_t len = 16;
    char *o;

    for (size_t i = 0; i < b->n; i++)
        len += strlen(b->answers[i]) + 1;
    free(r->answer);
    o = r->answer = gw_xmalloc(len);
    o += sprintf(o, "{\"results\":[");
    for (size_t i = 0; i < b->n; i++)
        o += sprintf(o, "%s%s", i ? "," : "", b->answers[i]);
    o += sprintf(o, "]}\n");
    r->answer_len = (size_t)(o - r->answer);
    r->status = 200;
    r->hdr_name = r->hdr_value = NULL;
    r->phase = GW_API_ANSWERED;
    gw_api_count(api, 200);
}

/* One entry: parsed as a single publish body, then published. */
static char *publish_entry(struct gw_api *api, const char *text, size_t len, uint64_t id, bool *waiting)
{
    struct gw_request req;
    char key[GW_CTL_IDEM_MAX + 1], msg[256];
    size_t klen = 0;
    enum gw_err kerr = GW_ERR_NONE, err;
    char *answer = NULL;

    *waiting = false;
    if (gw_codec_parse_publish_body(text, len, &req) != 0) {
        answer = entry_error(gw_err_slug(req.err), req.errmsg);
    } else if (gw_ctl_idempotency_key(text, len, key, &klen, &kerr, msg, sizeof msg) != 0) {
        answer = entry_error(gw_err_slug(kerr), msg);
    } else {
        err = gw_node_publish_once(api->node, api->worker, id, false, 0, req.channel, req.channel_len, req.data_json,
                                   req.data_len, klen ? key : NULL, klen);
        if (err == GW_ERR_NONE) {
            req.data_json = NULL; /* moved to the bus */
            *waiting = true;
        } else if (err == GW_ERR_FORBIDDEN) {
            answer = entry_error("forbidden", "the channel is reserved for the nodes themselves");
        } else if (err == GW_ERR_MESSAGE_TOO_LARGE) {
            answer = entry_error("message_too_large", "\"data\" is over --max-message-bytes");
        } else {
            answer = entry_error("unavailable", "Redis is unavailable; the message was not published");
        }
    }
    gw_request_deinit(&req);
    return answer;
}

void gw_api_end_batch(struct gw_api *api, struct gw_api_req *r)
{
    struct gw_ctl_batch in;
    struct gw_api_batch *b;
    enum gw_err err;
    char msg[256];

    if (gw_ctl_parse_batch(r->body, r->len, &in, &err, msg, sizeof msg) != 0) {
        gw_api_answer_error(api, r, 400, gw_err_slug(err), "%s", msg);
        return;
    }
    if (!gw_node_ready(api->node)) { /* draining, or Redis not proven live */
        gw_ctl_batch_deinit(&in);
        gw_api_answer_error(api, r, 503, "unavailable", "%s",
                            gw_node_draining(api->node) ? "node is draining; publish through another node"
                                                        : "Redis is unavailable; nothing was published");
        return;
    }
    b = r->batch = gw_xcalloc(1, sizeof(*b));
    b->n = in.n;
    b->answers = gw_xcalloc(in.n, sizeof(*b->answers));
    b->first_id = GW_API_ID_FLAG | (api->next_seq + 1);
    /* Ids first_id .. first_id + n - 1, all taken now: a result can only come
     * back through this worker's inbox, after this returns. */
    api->next_seq += in.n;
    r->api = api;
    for (size_t i = 0; i < in.n; i++) {
        uint64_t id = b->first_id + i;
        bool waiting;
        b->answers[i] = publish_entry(api, in.items[i], in.lens[i], id, &waiting);
        if (waiting) {
            gw_dict_add(&api->pending, &id, sizeof(id), r, NULL);
            b->pending++;
        }
    }
    gw_ctl_batch_deinit(&in);
    if (!b->pending) {
        r->api = NULL;
        finish(api, r);
        return;
    }
    r->phase = GW_API_WAITING;
}

void gw_api_batch_result(struct gw_api *api, struct gw_api_req *r, uint64_t id, bool ok, bool busy,
                         const struct gw_position *at)
{
    struct gw_api_batch *b = r->batch;
    size_t i = (size_t)(id - b->first_id);

    if (i >= b->n || b->answers[i])
        return;
    b->answers[i] = ok ? entry_ok(at)
                  : busy ? entry_error("conflict", "a publish with this idempotency_key is still on its way")
                         : entry_error("unavailable", "Redis is unavailable; the message was not published");
    if (--b->pending)
        return;
    r->api = NULL;
    finish(api, r);
    lws_callback_on_writable(r->wsi);
}

void gw_api_batch_release(struct gw_api_req *r)
{
    struct gw_api_batch *b = r->batch;

    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t id = b->first_id + i;
        if (r->api && !b->answers[i])
            gw_dict_delete(&r->api->pending, &id, sizeof(id));
        free(b->answers[i]);
    }
    free(b->answers);
    free(b);
    r->batch = NULL;
}
