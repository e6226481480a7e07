/* Plain HTTP on the WebSocket port: /healthz, /readyz, /metrics, the demo
 * page at /, and POST /api/publish, whose logic is api.c's. Each response is
 * built whole into a buffer owned by the connection's http state: the
 * headers are written at once, the body from the next HTTP_WRITEABLE. An API
 * answer that arrives later (the publish result) is written from
 * HTTP_WRITEABLE in the same two steps. Worker thread; it sees the node and
 * the worker's API state, never the worker. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

#include "api.h"
#include "node.h"

/* In the connection's lws user data, zeroed by lws per request. */
struct gw_http_state {
    unsigned char *body; /* owned, LWS_PRE headroom; NULL when nothing is pending */
    size_t len;
    bool close_after; /* close once body is written, instead of keep-alive */
    /* POST /api/publish: owned, allocated by its first request, so that
     * WebSocket connections (which share this user data) pay one pointer. */
    struct gw_api_req *api;
};

/* The HTTP reasons of the lws protocol callback: LWS_CALLBACK_HTTP,
 * _HTTP_BODY, _HTTP_BODY_COMPLETION, _HTTP_WRITEABLE, _CLOSED_HTTP and
 * _HTTP_DROP_PROTOCOL (after which lws frees st: everything st owns is freed
 * there, and a publish still waiting is taken out of api's table). st may be
 * NULL when lws has no user data. Returns what the lws callback must
 * return. */
int gw_http_callback(const struct gw_node *node, struct gw_api *api, struct lws *wsi,
                     enum lws_callback_reasons reason, struct gw_http_state *st, void *in, size_t len);

/* The demo page, embedded at build time (generated demo_page.c). */
extern const unsigned char gw_demo_page[];
extern const size_t gw_demo_page_len;
/* gateway/static/admin.html, embedded the same way. */
extern const unsigned char gw_admin_page[];
extern const size_t gw_admin_page_len;
/* clients/js/src/wsgate.js, served at /sdk/wsgate.js (generated sdk_js.c). */
extern const unsigned char gw_sdk_js[];
extern const size_t gw_sdk_js_len;

#endif
