/* HTTP endpoints for probes, scraping, the demo page and the publish API. */
#define GW_LOG_MODULE "http"

#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "log.h"
#include "metrics.h"

/* Frees the pending response body only. */
static void drop_body(struct gw_http_state *st)
{
    free(st->body);
    st->body = NULL;
    st->len = 0;
}

/* Everything st owns, the API request included. */
static void release(struct gw_http_state *st)
{
    drop_body(st);
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

/* Writes the headers now (plus one extra header when hname is given, and
 * "connection: close" when st->close_after) and keeps a copy of body (with
 * lws headroom) for the next HTTP_WRITEABLE. body stays the caller's. */
static int respond(struct lws *wsi, struct gw_http_state *st, unsigned int status, const char *type,
                   const void *body, size_t len, const char *hname, const char *hvalue)
{
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        (hname && lws_add_http_header_by_name(wsi, (const unsigned char *)hname, (const unsigned char *)hvalue,
                                              (int)strlen(hvalue), &p, end)) ||
        (st->close_after && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                                        (const unsigned char *)"close", 5, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    drop_body(st);
    st->body = gw_xmalloc(LWS_PRE + len + 1);
    memcpy(st->body + LWS_PRE, body, len);
    st->len = len;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_text(struct lws *wsi, struct gw_http_state *st, unsigned int status, const char *text)
{
    return respond(wsi, st, status, "text/plain; charset=utf-8", text, strlen(text), NULL, NULL);
}

/* Writes the API's answer once api.c has one; until then nothing. */
static int respond_api(struct lws *wsi, struct gw_http_state *st)
{
    struct gw_api_req *r = st->api;
    int rc;

    if (api_phase(st) != GW_API_ANSWERED)
        return 0;
    st->close_after = r->close_after;
    rc = respond(wsi, st, r->status, "application/json", r->answer, r->answer_len, r->hdr_name, r->hdr_value);
    gw_api_req_release(r);
    return rc;
}

/* GET /admin/api/cluster: the roster every node keeps (roster.h). */
static int admin_cluster(const struct gw_node *node, struct gw_api *api, struct lws *wsi, struct gw_http_state *st)
{
    static const char unauthorized[] = "{\"error\":\"unauthorized\"}\n";
    size_t len = 0;
    char *json;
    int rc;

    if (!gw_api_authorized(api, wsi))
        return respond(wsi, st, 401, "application/json", unauthorized, sizeof unauthorized - 1,
                       "www-authenticate:", "Bearer");
    json = gw_bus_cluster(node->bus, &len);
    rc = respond(wsi, st, 200, "application/json", json, len, NULL, NULL);
    free(json);
    return rc;
}

static int request(const struct gw_node *node, struct gw_api *api, struct lws *wsi, struct gw_http_state *st,
                   const char *uri)
{
    if (strcmp(uri, GW_API_PATH) == 0 && gw_api_serves(api, wsi)) {
        if (!st->api)
            st->api = gw_xcalloc(1, sizeof(*st->api));
        gw_api_begin(api, wsi, st->api);
        return respond_api(wsi, st);
    }
    /* The admin view goes where the API goes, behind the same keys; the page
     * itself is static and asks for a key to read the data. */
    if (strcmp(uri, "/admin") == 0 && gw_api_serves(api, wsi))
        return respond(wsi, st, 200, "text/html; charset=utf-8", gw_admin_page, gw_admin_page_len, NULL, NULL);
    if (strcmp(uri, "/admin/api/cluster") == 0 && gw_api_serves(api, wsi))
        return admin_cluster(node, api, wsi, st);
    /* The API port serves nothing else. */
    if (gw_api_port(wsi))
        return respond_text(wsi, st, 404, "not found\n");
    if (strcmp(uri, "/healthz") == 0)
        return respond_text(wsi, st, 200, "ok\n");
    if (strcmp(uri, "/readyz") == 0) {
        if (gw_node_draining(node))
            return respond_text(wsi, st, 503, "draining\n");
        if (!gw_node_ready(node))
            return respond_text(wsi, st, 503, "redis link not live\n");
        return respond_text(wsi, st, 200, "ready\n");
    }
    if (strcmp(uri, "/metrics") == 0) {
        char *text;
        size_t len = gw_metrics_render(&text, node->bus_stats, node->worker_stats, node->nworkers,
                                       gw_node_ready(node), gw_node_draining(node),
                                       node->cfg->node_id);
        int rc = respond(wsi, st, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
        free(text);
        return rc;
    }
    if (strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0)
        return respond(wsi, st, 200, "text/html; charset=utf-8", gw_demo_page, gw_demo_page_len, NULL, NULL);
    if (strcmp(uri, "/sdk/wsgate.js") == 0)
        return respond(wsi, st, 200, "text/javascript; charset=utf-8", gw_sdk_js, gw_sdk_js_len, NULL, NULL);
    if (strcmp(uri, "/ws") == 0)
        return respond_text(wsi, st, 426, "this endpoint needs a WebSocket upgrade\n");
    return respond_text(wsi, st, 404, "not found\n");
}

static int writeable(struct lws *wsi, struct gw_http_state *st)
{
    /* No body pending: an API answer that came after its request's
     * callbacks (a publish result) starts here with its headers. */
    if (!st->body)
        return respond_api(wsi, st);
    int n = lws_write(wsi, st->body + LWS_PRE, st->len, LWS_WRITE_HTTP_FINAL);
    drop_body(st);
    /* A body that was never read is not skipped: the connection ends. */
    if (n < 0 || st->close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
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
        if (api_phase(st) == GW_API_READING)
            gw_api_body(st->api, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (api_phase(st) == GW_API_READING) {
            gw_api_end(api, st->api);
            return respond_api(wsi, st);
        }
        /* Not lws' default, which completes the transaction at once: a
         * response whose body is still to be written completes it itself. */
        if (st->body || api_phase(st) != GW_API_IDLE)
            return 0;
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return writeable(wsi, st);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        release(st);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, st, in, len);
}
