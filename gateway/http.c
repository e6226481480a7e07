/* HTTP endpoints for probes, scraping and the demo page. */
#define GW_LOG_MODULE "http"

#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"

/* Writes the headers now and keeps a copy of body (with lws headroom) for
 * the next HTTP_WRITEABLE. body stays the caller's. */
static int respond(struct lws *wsi, struct gw_http_state *st, unsigned int status, const char *type,
                   const void *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    gw_http_release(st);
    st->body = gw_xmalloc(LWS_PRE + len + 1);
    memcpy(st->body + LWS_PRE, body, len);
    st->len = len;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_text(struct lws *wsi, struct gw_http_state *st, unsigned int status, const char *text)
{
    return respond(wsi, st, status, "text/plain; charset=utf-8", text, strlen(text));
}

int gw_http_request(const struct gw_node *node, struct lws *wsi, struct gw_http_state *st, const char *uri)
{

    if (strcmp(uri, "/healthz") == 0)
        return respond_text(wsi, st, 200, "ok\n");
    if (strcmp(uri, "/readyz") == 0) {
        if (atomic_load(&((struct gw_node *)node)->draining))
            return respond_text(wsi, st, 503, "draining\n");
        if (!node->bus_ops->ready(node->bus))
            return respond_text(wsi, st, 503, "redis link not live\n");
        return respond_text(wsi, st, 200, "ready\n");
    }
    if (strcmp(uri, "/metrics") == 0) {
        char *text;
        size_t len = gw_metrics_render(&text, node->bus_stats, node->worker_stats, node->nworkers,
                                       gw_node_ready(node), atomic_load(&((struct gw_node *)node)->draining),
                                       node->cfg->node_id);
        int rc = respond(wsi, st, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
        return rc;
    }
    if (strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0)
        return respond(wsi, st, 200, "text/html; charset=utf-8", gw_demo_page, gw_demo_page_len);
    if (strcmp(uri, "/ws") == 0)
        return respond_text(wsi, st, 426, "this endpoint needs a WebSocket upgrade\n");
    return respond_text(wsi, st, 404, "not found\n");
}

int gw_http_writeable(struct lws *wsi, struct gw_http_state *st)
{
    if (!st->body)
        return 0;
    int n = lws_write(wsi, st->body + LWS_PRE, st->len, LWS_WRITE_HTTP_FINAL);
    gw_http_release(st);
    if (n < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void gw_http_release(struct gw_http_state *st)
{
    free(st->body);
    st->body = NULL;
    st->len = 0;
}
