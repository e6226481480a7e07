/* The HTTP publish API (docs/PROTOCOL.md, "HTTP publish API"): POST
 * /api/publish with a bearer key publishes through the bus exactly like a
 * client publish and is answered once Redis has taken the message.
 *
 * One struct gw_api per worker, worker thread only: the requests waiting for
 * their publish result, by id, and on worker 0 the --api-listen socket.
 * http.c drives each request through gw_api_begin/_body/_end; the worker
 * hands publish results to gw_api_publish_result. This module never writes to
 * a socket: it fills in the answer (struct gw_api_req) and, when the answer
 * comes later than the lws callback that asked, requests a writable callback
 * so that http.c writes it. It sees the node, never the worker. */
#ifndef GW_API_H
#define GW_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

#include "dict.h"

struct gw_intake;
struct gw_api_batch; /* api_batch.c */
#include "node.h"

#define GW_API_PATH "/api/publish"
#define GW_API_DISCONNECT_PATH "/api/disconnect"
#define GW_API_REVOKE_PATH "/api/revoke"
#define GW_API_UNREVOKE_PATH "/api/unrevoke"
#define GW_API_UNSUBSCRIBE_PATH "/api/unsubscribe"
#define GW_API_HISTORY_PATH "/api/history"
#define GW_API_CHANNELS_PATH "/api/channels"

/* The endpoints of the server API (docs/PROTOCOL.md, "Server API"). */
enum gw_api_op {
    GW_API_OP_NONE = 0,   /* not an API path */
    GW_API_OP_PUBLISH,    /* POST /api/publish */
    GW_API_OP_DISCONNECT, /* POST /api/disconnect */
    GW_API_OP_REVOKE,     /* POST /api/revoke */
    GW_API_OP_UNREVOKE,   /* POST /api/unrevoke */
    GW_API_OP_UNSUBSCRIBE, /* POST /api/unsubscribe */
    GW_API_OP_HISTORY,    /* GET /api/history?channel=&since=&limit= */
    GW_API_OP_CHANNELS,   /* GET /api/channels?pattern=&cursor=&limit= */
};

/* The endpoint a request path names (exact match), or GW_API_OP_NONE. */
enum gw_api_op gw_api_op_of(const char *uri);
#define GW_API_PRESENCE_PATH "/api/presence"
#define GW_API_PRESENCE_STATS_PATH "/api/presence_stats"

/* HTTP publishes use their own ids in the bus's session_id field. Session
 * ids never set this bit (worker index << 56 with index < 64), so one test
 * tells a result's owner. */
#define GW_API_ID_FLAG (UINT64_C(1) << 63)

enum gw_api_phase {
    GW_API_IDLE = 0, /* not an API request, or its answer has been taken */
    GW_API_READING,  /* authorized, the body is coming in */
    GW_API_WAITING,  /* published; waiting in api->pending for the result */
    GW_API_ANSWERED, /* answer ready for http.c */
};

/* One request; http.c allocates it, owns it from the connection's lws user
 * data, and releases it at LWS_CALLBACK_HTTP_DROP_PROTOCOL / CLOSED_HTTP
 * (after which lws frees that user data), so api->pending never points at
 * a request whose connection is gone. Worker thread only. */
struct gw_api_req {
    enum gw_api_phase phase;
    enum gw_api_op op;
    struct lws *wsi;
    struct gw_api *api; /* WAITING: the table that holds a pointer to this */
    uint64_t id;        /* WAITING: the publish's (or the disconnect's) id */
    char *body;         /* READING: owned, expect + 1 bytes */
    size_t len, expect;
    bool overflow;      /* READING: more bytes came than announced */
    /* ANSWERED: */
    unsigned int status;
    char *answer; /* owned JSON text */
    size_t answer_len;
    const char *hdr_name, *hdr_value; /* one extra header (static strings) or NULL */
    struct gw_api_batch *batch; /* a batch publish's entries (owned), or NULL */
};

struct gw_api {
    const struct gw_node *node;
    int worker;
    bool started;
    uint64_t next_seq;
    struct gw_dict pending; /* id (8 bytes) -> struct gw_api_req * */
    /* worker 0 with --api-listen: */
    struct lws_vhost *vhost;
    struct gw_intake *intake;
    uv_poll_t poll;
    int listen_fd;
    bool listening;
};

/* Sets up worker `worker`'s API state on its loop and vhost; on worker 0
 * with --api-listen (and keys) also opens that socket and accepts on it
 * through intake (kept, the worker's) into vhost, each connection marked as
 * the API port's. Returns 0, or -errno
 * (logged; nothing is left open). Worker thread, before its loop runs. */
int gw_api_start(struct gw_api *api, const struct gw_node *node, int worker, uv_loop_t *loop,
                 struct lws_vhost *vhost, struct gw_intake *intake);
/* Stops accepting on the API port; the socket is closed once the loop has
 * closed its handle (the worker runs the loop to the end afterwards).
 * No-op without one. Worker thread. */
void gw_api_stop(struct gw_api *api);
/* Frees the table. Requests still in it are not touched (their connections
 * are gone by then). Safe on a never-started (zeroed) api. */
void gw_api_deinit(struct gw_api *api);

/* True when wsi came in through the --api-listen socket. */
bool gw_api_port(struct lws *wsi);
/* True when POST /api/publish is served on wsi: keys are configured and
 * wsi came in where the API listens (--api-listen, or else --listen). */
bool gw_api_serves(const struct gw_api *api, struct lws *wsi);

/* True when wsi's request carries Authorization: Bearer <a configured key>.
 * Also guards the admin view's data (http.c). */
bool gw_api_authorized(const struct gw_api *api, struct lws *wsi);

/* LWS_CALLBACK_HTTP for the path of op: checks method, key and length.
 * Leaves r READING, or ANSWERED (405, 401, 411, 413). */
void gw_api_begin(struct gw_api *api, struct lws *wsi, struct gw_api_req *r, enum gw_api_op op);
/* LWS_CALLBACK_HTTP_BODY: appends a chunk while READING (copies it). */
void gw_api_body(struct gw_api_req *r, const void *in, size_t len);
/* LWS_CALLBACK_HTTP_BODY_COMPLETION: parses and publishes (or posts the
 * disconnect). Leaves r WAITING (the bus took it) or ANSWERED (400, 403,
 * 413, 503). No-op unless READING. */
void gw_api_end(struct gw_api *api, struct gw_api_req *r);

/* A GW_WMAIL_PUBLISH_RESULT for session_id. Returns false when the id is not
 * an API id (it belongs to a session). Otherwise answers the waiting request
 * (200, or 503 when Redis did not take it) and asks lws for a writable
 * callback on its connection; a request whose connection closed first is no
 * longer in the table, and its result is dropped. Worker thread. */
bool gw_api_publish_result(struct gw_api *api, uint64_t session_id, bool ok, bool busy, const struct gw_position *at);

/* A GW_WMAIL_CTL_RESULT (wmail.h): answers the waiting disconnect or
 * revocation (200 with the counts, or 503) and asks lws for a writable callback; a request
 * whose connection closed first is no longer in the table. Worker thread. */
struct gw_wmail;
void gw_api_ctl_result(struct gw_api *api, const struct gw_wmail *m);

/* A GW_WMAIL_HISTORY_RESULT for session_id. Returns false when the id is
 * not an API id. Otherwise answers the waiting GET /api/history with the
 * frame's JSON (200), or 503 without a frame. Worker thread. */
bool gw_api_history_result(struct gw_api *api, uint64_t session_id, struct gw_frame *frame);

/* GET GW_API_PRESENCE_PATH (stats: GW_API_PRESENCE_STATS_PATH) with
 * ?channel=, and for members ?cursor= and ?limit=: checks method (405), key
 * (401) and arguments (400), then asks the bus and leaves r WAITING, or
 * ANSWERED (503 when the node is not ready). Worker thread. */
void gw_api_presence(struct gw_api *api, struct lws *wsi, struct gw_api_req *r, bool stats);
/* A GW_WMAIL_PRESENCE_RESULT for session_id: false when it is not an API id.
 * Otherwise answers the waiting request with frame's JSON (200; borrowed) or
 * 503 when frame is NULL, as gw_api_publish_result does. */
bool gw_api_presence_result(struct gw_api *api, uint64_t session_id, struct gw_frame *frame);

/* Frees what r owns and takes it out of its table: idle again. Idempotent. */
void gw_api_req_release(struct gw_api_req *r);

#endif
