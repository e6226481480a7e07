/* The server API: key check, method and length, body, the publish
 * endpoint, answers; and the API port. The other endpoints are in api_ctl.c. */
#define GW_LOG_MODULE "api"

#include "api.h"
#include "api_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "apikey.h"
#include "bus.h"
#include "codec.h"
#include "ctl.h"
#include "intake.h"
#include "json.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "text.h"

/* Most connections accepted per readiness of the API socket (see worker.c). */
#define ACCEPT_BATCH 16

/* Its address is the opaque user data of every connection accepted on the
 * API port: lws keeps that pointer on the wsi for its whole life, so
 * http.c can tell the two listeners apart without a second vhost or
 * protocol. */
static char api_port_marker;

/* ---- answers ---- */

/* {"ok":true}, with the message's "offset" and "epoch" when it was
 * published with history. */
static void answer_ok(struct gw_api *api, struct gw_api_req *r, const struct gw_position *at)
{
    char ok[128];
    int n = at && at->offset ? snprintf(ok, sizeof ok, "{\"ok\":true,\"offset\":%" PRIu64 ",\"epoch\":\"%s\"}\n",
                                        at->offset, at->epoch)
                             : snprintf(ok, sizeof ok, "{\"ok\":true}\n");

    gw_api_answer_ok(api, r, ok, (size_t)n);
}

/* ---- the request ---- */

/* Authorization: Bearer <key>, the scheme case-insensitive (RFC 7235). The
 * header's copy is wiped: it may hold a valid key. */
bool gw_api_authorized(const struct gw_api *api, struct lws *wsi)
{
    char hdr[GW_APIKEY_MAX + 64];
    int n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
    bool ok = false;

    if (n > 7 && strncasecmp(hdr, "bearer ", 7) == 0) {
        const char *k = hdr + 7, *e = hdr + n;
        while (k < e && *k == ' ')
            k++;
        while (e > k && e[-1] == ' ')
            e--;
        ok = gw_apikeys_match(api->node->api_keys, k, (size_t)(e - k));
    }
    explicit_bzero(hdr, sizeof(hdr));
    return ok;
}

/* The Content-Length, or -1 when there is none or it is not a number. */
static long long content_length(struct lws *wsi)
{
    char buf[32];
    long long v;

    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
        gw_text_parse_ll(buf, &v) != 0 || v < 0)
        return -1;
    return v;
}

enum gw_api_op gw_api_op_of(const char *uri)
{
    if (strcmp(uri, GW_API_PATH) == 0)
        return GW_API_OP_PUBLISH;
    if (strcmp(uri, GW_API_DISCONNECT_PATH) == 0)
        return GW_API_OP_DISCONNECT;
    if (strcmp(uri, GW_API_REVOKE_PATH) == 0)
        return GW_API_OP_REVOKE;
    if (strcmp(uri, GW_API_UNREVOKE_PATH) == 0)
        return GW_API_OP_UNREVOKE;
    if (strcmp(uri, GW_API_UNSUBSCRIBE_PATH) == 0)
        return GW_API_OP_UNSUBSCRIBE;
    if (strcmp(uri, GW_API_HISTORY_PATH) == 0)
        return GW_API_OP_HISTORY;
    if (strcmp(uri, GW_API_CHANNELS_PATH) == 0)
        return GW_API_OP_CHANNELS;
    return GW_API_OP_NONE;
}

void gw_api_begin(struct gw_api *api, struct lws *wsi, struct gw_api_req *r, enum gw_api_op op)
{
    size_t max = api->node->cfg->max_api_body_bytes;
    bool get_op = op == GW_API_OP_HISTORY || op == GW_API_OP_CHANNELS;
    bool method_ok = lws_hdr_total_length(wsi, get_op ? WSI_TOKEN_GET_URI : WSI_TOKEN_POST_URI) > 0;
    long long cl = content_length(wsi);

    gw_api_req_release(r);
    r->wsi = wsi;
    r->op = op;
    if (!method_ok) {
        gw_api_answer_error(api, r, 405, "method_not_allowed", "use %s", get_op ? "GET" : "POST");
        r->hdr_name = "allow:";
        r->hdr_value = get_op ? "GET" : "POST";
    } else if (!gw_api_authorized(api, wsi)) {
        gw_api_answer_error(api, r, 401, "unauthorized", "missing or unknown API key (Authorization: Bearer <key>)");
        r->hdr_name = "www-authenticate:";
        r->hdr_value = "Bearer";
    } else if (get_op && cl > 0) {
        gw_api_answer_error(api, r, 400, "bad_request", "a GET carries no body");
    } else if (get_op) {
        gw_api_begin_read(api, wsi, r);
    } else if (cl < 0) {
        gw_api_answer_error(api, r, 411, "bad_request", "a Content-Length is required (no chunked bodies)");
    } else if (cl > (long long)max) {
        gw_api_answer_error(api, r, 413, "message_too_large", "body of %lld bytes is over --max-api-body-bytes (%zu)",
                     cl, max);
    } else {
        r->expect = (size_t)cl;
        r->len = 0;
        r->body = gw_xmalloc(r->expect + 1);
        r->phase = GW_API_READING;
    }
}

void gw_api_body(struct gw_api_req *r, const void *in, size_t len)
{
    if (r->phase != GW_API_READING || !len)
        return;
    /* lws hands over at most Content-Length bytes; a surplus all the same is
     * kept out of the buffer and makes the request a bad one. */
    if (len > r->expect - r->len) {
        r->overflow = true;
        len = r->expect - r->len;
    }
    memcpy(r->body + r->len, in, len);
    r->len += len;
}

void gw_api_end(struct gw_api *api, struct gw_api_req *r)
{
    const struct gw_node *node = api->node;
    struct gw_request req;
    char key[GW_CTL_IDEM_MAX + 1], msg[256];
    size_t klen = 0;
    enum gw_err kerr = GW_ERR_NONE;
    int rc;

    if (r->phase != GW_API_READING)
        return;
    if (r->op != GW_API_OP_PUBLISH) {
        gw_api_end_control(api, r);
        return;
    }
    if (r->len == r->expect && !r->overflow && gw_ctl_is_batch(r->body, r->len)) {
        gw_api_end_batch(api, r);
        free(r->body);
        r->body = NULL;
        return;
    }
    if (r->len == r->expect && !r->overflow) {
        rc = gw_codec_parse_publish_body(r->body, r->len, &req);
        if (rc == 0 && gw_ctl_idempotency_key(r->body, r->len, key, &klen, &kerr, msg, sizeof msg) != 0)
            rc = -EINVAL;
    } else {
        memset(&req, 0, sizeof(req));
        req.err = GW_ERR_BAD_REQUEST;
        snprintf(req.errmsg, sizeof(req.errmsg), "body length does not match its Content-Length");
        rc = -EINVAL;
    }
    free(r->body);
    r->body = NULL;
    r->phase = GW_API_IDLE;
    if (kerr != GW_ERR_NONE) {
        gw_api_answer_error(api, r, 400, gw_err_slug(kerr), "%s", msg);
    } else if (rc != 0) {
        gw_api_answer_error(api, r, 400, gw_err_slug(req.err), "%s", req.errmsg);
    } else {
        uint64_t id = GW_API_ID_FLAG | (api->next_seq + 1);
        enum gw_err err = gw_node_publish_once(node, api->worker, id, false, 0, req.channel, req.channel_len,
                                               req.data_json, req.data_len, klen ? key : NULL, klen);
        if (err == GW_ERR_FORBIDDEN) {
            gw_api_answer_error(api, r, 403, "forbidden", "channel %s is reserved for the nodes themselves", req.channel);
        } else if (err == GW_ERR_MESSAGE_TOO_LARGE) {
            gw_api_answer_error(api, r, 413, "message_too_large", "\"data\" is %zu bytes, over --max-message-bytes (%zu)",
                         req.data_len, node->cfg->max_message_bytes);
        } else if (err == GW_ERR_UNAVAILABLE) {
            gw_api_answer_error(api, r, 503, "unavailable", "%s",
                         gw_node_draining(node) ? "node is draining; publish through another node"
                                                : "Redis is unavailable; the message was not published");
        } else {
            /* The result comes back through this worker's inbox, so the
             * request is in the table before it can arrive. */
            req.data_json = NULL; /* moved to the bus */
            gw_api_wait_for(api, r, id);
        }
    }
    gw_request_deinit(&req);
}

/* ---- GET /api/presence and /api/presence_stats ---- */

/* The query argument name ("channel=") into buf, or NULL when absent. lws
 * has URL-decoded it; the value is judged by the caller. lws stops looking
 * at the first argument that does not fit buf, so every buf is ARG_MAX. */
#define ARG_MAX 512
static const char *query_arg(struct lws *wsi, const char *name, char *buf, int len)
{
    return lws_get_urlarg_by_name(wsi, name, buf, len);
}

/* A decimal 1..max, or -1. */
static long small_number(const char *s, long max)
{
    long v = 0;
    if (!*s || strlen(s) > 9 || strspn(s, "0123456789") != strlen(s))
        return -1;
    v = strtol(s, NULL, 10);
    return v >= 1 && v <= max ? v : -1;
}

void gw_api_presence(struct gw_api *api, struct lws *wsi, struct gw_api_req *r, bool stats)
{
    const struct gw_node *node = api->node;
    char channel[ARG_MAX], cursor[ARG_MAX], limit[ARG_MAX];
    const char *ch, *cur, *lim;

    gw_api_req_release(r);
    r->wsi = wsi;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        gw_api_answer_error(api, r, 405, "method_not_allowed", "use GET");
        r->hdr_name = "allow:";
        r->hdr_value = "GET";
        return;
    }
    if (!gw_api_authorized(api, wsi)) {
        gw_api_answer_error(api, r, 401, "unauthorized", "missing or unknown API key (Authorization: Bearer <key>)");
        r->hdr_name = "www-authenticate:";
        r->hdr_value = "Bearer";
        return;
    }
    ch = query_arg(wsi, "channel=", channel, sizeof channel);
    cur = stats ? NULL : query_arg(wsi, "cursor=", cursor, sizeof cursor);
    lim = stats ? NULL : query_arg(wsi, "limit=", limit, sizeof limit);
    long n = lim ? small_number(lim, GW_HISTORY_LIMIT_MAX) : GW_HISTORY_LIMIT_DEFAULT;
    if (!ch || !gw_channel_valid(ch, strlen(ch))) {
        gw_api_answer_error(api, r, 400, "bad_channel", "?channel= must be a valid channel name");
    } else if (!gw_config_keeps_presence(node->cfg, ch)) {
        gw_api_answer_error(api, r, 400, "bad_request", "channel %s keeps no presence (--presence-channels)", ch);
    } else if (n < 0 || (cur && (!*cur || strlen(cur) > GW_PRESENCE_CURSOR_MAX ||
                                 strspn(cur, "0123456789") != strlen(cur)))) {
        gw_api_answer_error(api, r, 400, "bad_request", "?limit= must be 1..%d and ?cursor= a cursor a reply gave",
                     GW_HISTORY_LIMIT_MAX);
    } else if (!gw_node_ready(node)) {
        gw_api_answer_error(api, r, 503, "unavailable", "Redis is unavailable; presence could not be read");
    } else {
        struct gw_presence_req *p = gw_xcalloc(1, sizeof *p);
        p->op = stats ? GW_PRESENCE_STATS : GW_PRESENCE_MEMBERS;
        p->limit = (int)n;
        snprintf(p->cursor, sizeof p->cursor, "%s", cur ? cur : "0");
        r->id = GW_API_ID_FLAG | ++api->next_seq;
        gw_dict_add(&api->pending, &r->id, sizeof(r->id), r, NULL);
        r->api = api;
        r->phase = GW_API_WAITING;
        gw_bus_post_presence(node->bus, api->worker, r->id, ch, strlen(ch), p);
    }
}

bool gw_api_presence_result(struct gw_api *api, uint64_t session_id, struct gw_frame *frame)
{
    if (!(session_id & GW_API_ID_FLAG))
        return false;
    struct gw_api_req *r = api->started ? gw_dict_delete(&api->pending, &session_id, sizeof(session_id)) : NULL;
    if (!r)
        return true; /* its connection is gone */
    r->api = NULL;
    gw_api_answer_frame(api, r, frame, "Redis is unavailable; presence could not be read");
    lws_callback_on_writable(r->wsi);
    return true;
}

bool gw_api_publish_result(struct gw_api *api, uint64_t session_id, bool ok, bool busy, const struct gw_position *at)
{
    struct gw_api_req *r;

    if (!(session_id & GW_API_ID_FLAG))
        return false;
    r = api->started ? gw_dict_delete(&api->pending, &session_id, sizeof(session_id)) : NULL;
    if (!r) {
        LOG_DBG("publish result dropped id=%" PRIu64 " ok=%d reason=connection_gone",
                session_id & ~GW_API_ID_FLAG, ok);
        return true;
    }
    if (r->batch) {
        gw_api_batch_result(api, r, session_id, ok, busy, at);
        return true;
    }
    r->api = NULL;
    if (ok)
        answer_ok(api, r, at);
    else if (busy)
        gw_api_answer_error(api, r, 409, "conflict",
                     "a publish with this idempotency_key is still on its way; retry for its answer");
    else
        gw_api_answer_error(api, r, 503, "unavailable", "Redis is unavailable; the message was not published");
    lws_callback_on_writable(r->wsi);
    return true;
}

void gw_api_req_release(struct gw_api_req *r)
{
    if (r->batch)
        gw_api_batch_release(r);
    else if (r->api)
        gw_dict_delete(&r->api->pending, &r->id, sizeof(r->id));
    free(r->body);
    free(r->answer);
    memset(r, 0, sizeof(*r));
}

/* ---- where the API is served ---- */

bool gw_api_port(struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi) == &api_port_marker;
}

bool gw_api_serves(const struct gw_api *api, struct lws *wsi)
{
    if (!api->node->api_keys)
        return false;
    return api->node->cfg->api_listen_host ? gw_api_port(wsi) : true;
}

/* ---- the API port (worker 0, --api-listen) ---- */

static void api_adopt(void *ctx, int fd)
{
    struct gw_api *api = ctx;
    lws_adopt_desc_t info = {
        .vh = api->vhost, .type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP, .fd.sockfd = fd,
        .opaque = &api_port_marker,
    };
    if (!lws_adopt_descriptor_vhost_via_info(&info)) /* lws closes fd when this fails */
        LOG_WARN("adopt failed port=api");
}

/* Every accepted connection waits in the intake for its request head. */
static void api_accept(void *ctx, int fd)
{
    struct gw_api *api = ctx;
    gw_intake_accept(api->intake, fd, api_adopt, api);
}

static void on_api_ready(uv_poll_t *p, int status, int events)
{
    struct gw_api *api = p->data;

    (void)events;
    int rc = status < 0 ? 0 : gw_listen_accept_batch(api->listen_fd, true, 0, ACCEPT_BATCH, api_accept, api);
    if (rc < 0)
        gw_intake_accept_failed(api->intake, -rc, p, on_api_ready, "api");
}

int gw_api_start(struct gw_api *api, const struct gw_node *node, int worker, uv_loop_t *loop,
                 struct lws_vhost *vhost, struct gw_intake *intake)
{
    const struct gw_config *cfg = node->cfg;
    char err[256];
    int fd, rc;

    api->node = node;
    api->worker = worker;
    api->vhost = vhost;
    api->intake = intake;
    api->listen_fd = -1;
    gw_dict_init(&api->pending);
    api->started = true;
    if (worker != 0 || !node->api_keys || !cfg->api_listen_host)
        return 0;
    /* One worker owns the API port: no SO_REUSEPORT, so a port already in
     * use (by --listen, or another process) is a startup error. */
    fd = gw_listen_open(cfg->api_listen_host, cfg->api_listen_port, false, err, sizeof(err));
    if (fd < 0) {
        LOG_ERR("api listen failed reason=\"%s\"", err);
        return fd;
    }
    if ((rc = uv_poll_init(loop, &api->poll, fd)) != 0) {
        LOG_ERR("cannot watch api socket error=\"%s\"", uv_strerror(rc));
        close(fd);
        return rc;
    }
    api->listen_fd = fd;
    api->listening = true;
    api->poll.data = api;
    if ((rc = uv_poll_start(&api->poll, UV_READABLE, on_api_ready)) != 0) {
        LOG_ERR("cannot watch api socket error=\"%s\"", uv_strerror(rc));
        gw_api_stop(api); /* closes fd once libuv has let go of it */
        return rc;
    }
    LOG_INFO("api listening host=%s port=%d", cfg->api_listen_host, cfg->api_listen_port);
    return 0;
}

/* The descriptor is closed only once libuv has let go of it. */
static void on_poll_closed(uv_handle_t *h)
{
    struct gw_api *api = h->data;
    close(api->listen_fd);
    api->listen_fd = -1;
}

void gw_api_stop(struct gw_api *api)
{
    if (!api->listening)
        return;
    api->listening = false;
    uv_close((uv_handle_t *)&api->poll, on_poll_closed);
}

void gw_api_deinit(struct gw_api *api)
{
    if (api->started)
        gw_dict_deinit(&api->pending);
    api->started = false;
}
