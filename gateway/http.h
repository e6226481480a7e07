/* Plain HTTP on the WebSocket port: /healthz, /readyz, /metrics, the demo
 * page at / (--demo-page), the admin view, and POST /api/publish, whose
 * logic is api.c's. Each response is written whole, headers and body in one
 * write, from the callback that has it (an API answer that arrives later,
 * the publish result, from HTTP_WRITEABLE), and ends its connection: no
 * keep-alive, no pipelining (why: respond() in http.c). GET serves every
 * path but the API's; other methods get 405 there, and only a publish has
 * a body. Worker thread; it sees the node and
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

/* True while st's publish is reading its body (the --http-timeout watch). */
bool gw_http_reading(const struct gw_http_state *st);

/* The demo page, embedded at build time (generated demo_page.c). */
extern const unsigned char gw_demo_page[];
extern const size_t gw_demo_page_len;
/* gateway/static/admin.html, embedded the same way. */
extern const unsigned char gw_admin_page[];
extern const size_t gw_admin_page_len;
/* The scripts of those two pages (no inline script: see CSP_PAGE). */
extern const unsigned char gw_demo_js[];
extern const size_t gw_demo_js_len;
extern const unsigned char gw_admin_js[];
extern const size_t gw_admin_js_len;
/* clients/js/src/wsgate.js, served at /sdk/wsgate.js (generated sdk_js.c). */
extern const unsigned char gw_sdk_js[];
extern const size_t gw_sdk_js_len;

#endif
