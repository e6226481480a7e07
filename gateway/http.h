/* Plain HTTP on the WebSocket port: /healthz, /readyz, /metrics and the demo
 * page at /. Each response is built whole into a buffer owned by the
 * connection's http state and written from HTTP_WRITEABLE. Worker thread;
 * it sees the node, never the worker. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

#include "node.h"

struct gw_http_state {
    unsigned char *body; /* owned, NULL when nothing is pending */
    size_t len;
};

/* LWS_CALLBACK_HTTP. Returns what the lws callback must return. */
int gw_http_request(const struct gw_node *node, struct lws *wsi, struct gw_http_state *st, const char *uri);
/* LWS_CALLBACK_HTTP_WRITEABLE. */
int gw_http_writeable(struct lws *wsi, struct gw_http_state *st);
/* LWS_CALLBACK_CLOSED_HTTP and connection teardown: frees the body. */
void gw_http_release(struct gw_http_state *st);

/* The demo page, embedded at build time (generated demo_page.c). */
extern const unsigned char gw_demo_page[];
extern const size_t gw_demo_page_len;

#endif
