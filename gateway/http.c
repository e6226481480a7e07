/* HTTP endpoints for probes, scraping, the demo page and the publish API. */
#define GW_LOG_MODULE "http"

#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "log.h"
#include "metrics.h"

/* Every response says what it is and may not be framed or sniffed (issue
 * 15, finding 7). Pages run only the scripts the node serves (no inline
 * script, no other origin, WebSocket and fetch only to the page's own
 * origin); inline styles are allowed, they cannot run code. */
#define CSP_DATA "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#define CSP_PAGE                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "   \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#define TYPE_TEXT "text/plain; charset=utf-8"
#define TYPE_HTML "text/html; charset=utf-8"
#define TYPE_JS "text/javascript; charset=utf-8"
#define TYPE_JSON "application/json"

/* Everything st owns, the API request included. */
static void release(struct gw_http_state *st)
{
    if (st->api) {
        gw_api_req_release(st->api);
        free(st->api);
        st->api = NULL;
    }
}

static enum gw_api_phase api_phase(const struct gw_http_state *st)
{
    return st->api ? st->api->phase : GW_API_IDLE;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* Writes the whole response at once (status line, headers, body; one
 * extra header when hname is given) and returns -1, so that lws closes the
 * connection once it has flushed what the socket did not take. No plain
 * HTTP connection carries a second request: lws 4.1.6 spins for good in
 * lws_service_do_ripe_rxflow on a pipelined request with a body (issue 15,
 * finding 1: one packet wedged a worker), and a connection that ends inside
 * the callback that answered its request never reaches that path. lws'
 * rx flow control is no way out: a flow-controlled h1 connection gets no
 * HTTP_WRITEABLE either (ops-h1.c), and its armed POLLOUT spins. */
static int respond(struct lws *wsi, unsigned int status, const char *type, const void *body, size_t len,
                   const char *hname, const char *hvalue)
{
    size_t cap = LWS_PRE + 2048 + len;
    unsigned char *buf = gw_xmalloc(cap), *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + 2048;
    bool page = strcmp(type, TYPE_HTML) == 0;

    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        add_header(wsi, "cache-control:", "no-store", &p, end) ||
        add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        add_header(wsi, "x-frame-options:", "DENY", &p, end) ||
        add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
        add_header(wsi, "content-security-policy:", page ? CSP_PAGE : CSP_DATA, &p, end) ||
        (hname && add_header(wsi, hname, hvalue, &p, end)) ||
        add_header(wsi, "connection:", "close", &p, end) || lws_finalize_http_header(wsi, &p, end)) {
        free(buf);
        return -1;
    }
    memcpy(p, body, len);
    p += len;
    /* One write: lws buffers what the kernel does not take. */
    (void)lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    free(buf);
    return -1;
}

static int respond_text(struct lws *wsi, unsigned int status, const char *text)
{
    return respond(wsi, status, TYPE_TEXT, text, strlen(text), NULL, NULL);
}

bool gw_http_reading(const struct gw_http_state *st)
{
    return api_phase(st) == GW_API_READING;
}

/* Writes the API's answer once api.c has one (and returns -1: the
 * connection ends); until then returns 0. */
static int respond_api(struct lws *wsi, struct gw_http_state *st)
{
    struct gw_api_req *r = st->api;
    int rc;

    if (api_phase(st) != GW_API_ANSWERED)
        return 0;
    rc = respond(wsi, r->status, TYPE_JSON, r->answer, r->answer_len, r->hdr_name, r->hdr_value);
    gw_api_req_release(r);
    return rc;
}

/* GET /admin/api/cluster: the roster every node keeps (roster.h). */
static int admin_cluster(const struct gw_node *node, struct gw_api *api, struct lws *wsi)
{
    static const char unauthorized[] = "{\"error\":\"unauthorized\"}\n";
    size_t len = 0;
    char *json;
    int rc;

    if (!gw_api_authorized(api, wsi))
        return respond(wsi, 401, TYPE_JSON, unauthorized, sizeof unauthorized - 1, "www-authenticate:", "Bearer");
    json = gw_bus_cluster(node->bus, &len);
    rc = respond(wsi, 200, TYPE_JSON, json, len, NULL, NULL);
    free(json);
    return rc;
}

/* A message with both Content-Length and Transfer-Encoding is refused (RFC
 * 9112 6.1: a proxy in front may have framed it the other way). */
static bool framing_ambiguous(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
           lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
}

/* The paths served to GET alone, with what they serve. */
static int get_route(const struct gw_node *node, struct gw_api *api, struct lws *wsi, const char *uri, bool *found)
{
    bool admin = gw_api_serves(api, wsi), demo = node->cfg->demo_page && !gw_api_port(wsi);

    *found = true;
    /* The admin view goes where the API goes, behind the same keys; the page
     * itself is static and asks for a key to read the data. */
    if (admin && strcmp(uri, "/admin") == 0)
        return respond(wsi, 200, TYPE_HTML, gw_admin_page, gw_admin_page_len, NULL, NULL);
    if (admin && strcmp(uri, "/admin.js") == 0)
        return respond(wsi, 200, TYPE_JS, gw_admin_js, gw_admin_js_len, NULL, NULL);
    if (admin && strcmp(uri, "/admin/api/cluster") == 0)
        return admin_cluster(node, api, wsi);
    if (demo && (strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0))
        return respond(wsi, 200, TYPE_HTML, gw_demo_page, gw_demo_page_len, NULL, NULL);
    if (demo && strcmp(uri, "/demo.js") == 0)
        return respond(wsi, 200, TYPE_JS, gw_demo_js, gw_demo_js_len, NULL, NULL);
    /* The API port serves nothing else. */
    if (gw_api_port(wsi)) {
        *found = false;
        return 0;
    }
    if (strcmp(uri, "/healthz") == 0)
        return respond_text(wsi, 200, "ok\n");
    if (strcmp(uri, "/readyz") == 0) {
        if (gw_node_draining(node))
            return respond_text(wsi, 503, "draining\n");
        if (!gw_node_ready(node))
            return respond_text(wsi, 503, "redis link not live\n");
        return respond_text(wsi, 200, "ready\n");
    }
    if (strcmp(uri, "/metrics") == 0) {
        char *text;
        size_t len = gw_metrics_render(&text, node->bus_stats, node->worker_stats, node->nworkers,
                                       gw_node_ready(node), gw_node_draining(node),
                                       node->cfg->node_id);
        int rc = respond(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
        free(text);
        return rc;
    }
    if (strcmp(uri, "/sdk/wsgate.js") == 0)
        return respond(wsi, 200, TYPE_JS, gw_sdk_js, gw_sdk_js_len, NULL, NULL);
    if (strcmp(uri, "/ws") == 0)
        return respond_text(wsi, 426, "this endpoint needs a WebSocket upgrade\n");
    *found = false;
    return 0;
}

/* True when GET serves uri on wsi (the 405 of other methods). */
static bool get_path(const struct gw_node *node, const struct gw_api *api, struct lws *wsi, const char *uri)
{
    static const char *const everywhere[] = { "/healthz", "/readyz", "/metrics", "/sdk/wsgate.js", "/ws" };
    bool admin = gw_api_serves(api, wsi), demo = node->cfg->demo_page && !gw_api_port(wsi);

    if (admin && (strcmp(uri, "/admin") == 0 || strcmp(uri, "/admin.js") == 0 ||
                  strcmp(uri, "/admin/api/cluster") == 0))
        return true;
    if (demo && (strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0 || strcmp(uri, "/demo.js") == 0))
        return true;
    if (gw_api_port(wsi))
        return false;
    for (size_t i = 0; i < sizeof everywhere / sizeof everywhere[0]; i++)
        if (strcmp(uri, everywhere[i]) == 0)
            return true;
    return false;
}

static int request(const struct gw_node *node, struct gw_api *api, struct lws *wsi, struct gw_http_state *st,
                   const char *uri)
{
    bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0, found;
    int rc;

    if (framing_ambiguous(wsi))
        return respond_text(wsi, 400, "both Content-Length and Transfer-Encoding\n");
    bool presence = strcmp(uri, GW_API_PRESENCE_PATH) == 0, stats = strcmp(uri, GW_API_PRESENCE_STATS_PATH) == 0;
    if ((presence || stats) && gw_api_serves(api, wsi)) {
        if (!st->api)
            st->api = gw_xcalloc(1, sizeof(*st->api));
        gw_api_presence(api, wsi, st->api, stats);
        return respond_api(wsi, st);
    }
    if (gw_api_op_of(uri) != GW_API_OP_NONE && gw_api_serves(api, wsi)) {
        if (!st->api)
            st->api = gw_xcalloc(1, sizeof(*st->api));
        gw_api_begin(api, wsi, st->api, gw_api_op_of(uri));
        return respond_api(wsi, st);
    }
    if (get) {
        rc = get_route(node, api, wsi, uri, &found);
        if (found)
            return rc;
        return respond_text(wsi, 404, "not found\n");
    }
    /* Any other method: the paths GET serves say so (405), others are 404.
     * Nothing here reads a body: the connection ends with the answer. */
    if (get_path(node, api, wsi, uri))
        return respond(wsi, 405, TYPE_TEXT, "method not allowed\n", 19, "allow:", "GET");
    return respond_text(wsi, 404, "not found\n");
}

int gw_http_callback(const struct gw_node *node, struct gw_api *api, struct lws *wsi,
                     enum lws_callback_reasons reason, struct gw_http_state *st, void *in, size_t len)
{
    if (!st)
        return lws_callback_http_dummy(wsi, reason, NULL, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return request(node, api, wsi, st, in);
    case LWS_CALLBACK_HTTP_BODY:
        /* Only a publish reads a body; anything else ends the connection. */
        if (api_phase(st) != GW_API_READING)
            return -1;
        gw_api_body(st->api, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws calls this again for every read that follows a body it has
         * completed (input pipelined behind a publish): end the connection
         * then, which is also what keeps lws off the path that spins. */
        if (api_phase(st) != GW_API_READING)
            return -1;
        gw_api_end(api, st->api);
        return respond_api(wsi, st);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        /* A publish result that came after its request's callbacks. */
        return api_phase(st) == GW_API_ANSWERED ? respond_api(wsi, st) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        release(st);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, st, in, len);
}
