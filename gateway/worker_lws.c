/* The lws side of a worker: the protocol callback that turns lws reasons
 * into admission, session, hub and http calls, the sessions' open and close
 * (and the drain's end, which waits for them), the accept loop of the
 * worker's own listen socket, and the context creation. worker.c calls in
 * here, never the other way. Worker thread. */
#define GW_LOG_MODULE "worker"

#include <string.h>

#include <libwebsockets.h>

#include "admit.h"
#include "api.h"
#include "clock.h"
#include "http.h"
#include "intake.h"
#include "listen.h"
#include "log.h"
#include "session.h"
#include "worker_int.h"
#include "ws6455.h"

/* Most connections accepted per readiness of the listen socket, so a
 * connect storm cannot starve the clients already connected. */
#define ACCEPT_BATCH 64

/* ---- sessions: open, close, and the drain that waits for them ---- */

/* Bit 63 of an id marks the HTTP API's requests (api.h). */
_Static_assert(GW_WORKERS_MAX <= 128, "a worker index must fit in session id bits 56..62");

static struct gw_session *worker_open_session(struct gw_worker *w, struct lws *wsi)
{
    uint64_t id = ((uint64_t)w->index << 56) | ++w->next_seq;
    struct gw_session *s = gw_session_new(&w->host, id, wsi);

    gw_stat_add(&w->stats.connections, 1);
    gw_stat_add(&w->stats.connections_accepted, 1);
    return s;
}

void gw_worker_stop(struct gw_worker *w)
{
    if (w->state == GW_WORKER_STOPPING)
        return;
    w->state = GW_WORKER_STOPPING;
    uv_stop(&w->loop);
}

/* Stops once every WebSocket is gone: not at its CLOSED callback, which lws
 * makes before it sends the close frame, but when its wsi is destroyed. */
void gw_worker_stop_if_drained(struct gw_worker *w)
{
    /* Every session is counted in wsi_alive until after its CLOSED. */
    if (w->state == GW_WORKER_DRAINING && !w->wsi_alive) {
        LOG_INFO("drained worker=%d", w->index);
        gw_worker_stop(w);
    }
}

void gw_worker_flush_sessions(struct gw_worker *w)
{
    struct gw_session *s;
    /* A flush can close a session but never frees one, and one it queues
     * comes out of the same loop. */
    while ((s = gw_registry_next_flush(&w->sessions)))
        gw_session_flush(s);
}

static void worker_close_session(struct gw_worker *w, struct gw_session *s)
{
    gw_session_free(s);
    gw_stat_add(&w->stats.connections, -1);
}

/* lws per-connection storage: HTTP requests and WebSocket sessions share the
 * one protocol, so both kinds of state live here. */
struct conn {
    struct gw_session *session; /* WebSocket: owned, from ESTABLISHED to CLOSED */
    struct gw_http_state http;  /* plain HTTP */
    struct gw_admit_slot slot; /* node-wide and per-IP slots, from FILTER to WSI_DESTROY */
    bool established; /* counted in wsi_alive, from ESTABLISHED to WSI_DESTROY */
};

/* ---- the lws protocol callback ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct gw_worker *w = lws_context_user(lws_get_context(wsi));
    struct conn *c = user;
    int rc;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: /* before FILTER: a 403 can still be sent */
        return gw_admit_confirm(w->node, wsi, in, w->stats.upgrades_refused);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (gw_api_port(wsi)) { /* the API port has no WebSocket */
            gw_stat_add(&w->stats.upgrades_refused[GW_REFUSE_PATH], 1);
            return -1;
        }
        return gw_admit_upgrade(w->node, wsi, gw_node_draining(w->node), &c->slot, w->stats.upgrades_refused);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: /* inside gw_intake's adopt */
        gw_intake_adopted(&w->intake, wsi);
        break;
    case LWS_CALLBACK_ESTABLISHED:
        gw_intake_forget(&w->intake, wsi); /* a WebSocket now: admit.h's slots count it */
        c->session = worker_open_session(w, wsi);
        c->established = true;
        w->wsi_alive++;
        break;
    case LWS_CALLBACK_RECEIVE:
        if (c->session)
            gw_session_receive(c->session, in, len);
        gw_worker_flush_sessions(w); /* acks, pongs and errors leave with this wake-up */
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws 4.1.6 echoes a 1-byte body and codes of 5000 and up; RFC 6455
         * 7.4 wants 1002. Refusing here makes lws send that close instead. */
        if (gw_ws_close_body_valid(in, len))
            break;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, NULL, 0);
        return -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c->session)
            gw_session_saw_traffic(c->session);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c->session)
            return 0;
        rc = gw_session_writeable(c->session);
        if (rc != GW_SESSION_SEND_CLOSE)
            return rc;
        /* Not "return -1": Debian builds lws with _DEBUG, and then its libuv
         * path closes a wsi twice when a callback returns -1, the second
         * call killing it before the close frame is sent. A synchronous
         * kill closes once: lws sends the close frame (after anything it
         * still buffers) and waits for the peer's. CLOSED runs inside it. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c->session) {
            worker_close_session(w, c->session);
            c->session = NULL;
        }
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        /* Every wsi ends here, upgraded or not, so a slot taken at FILTER is
         * given back exactly once whatever happened in between. */
        gw_intake_forget(&w->intake, wsi);
        if (c)
            gw_admit_release(w->node, &c->slot);
        if (c && c->established) {
            c->established = false;
            w->wsi_alive--;
            gw_worker_stop_if_drained(w);
        }
        break;
    case LWS_CALLBACK_HTTP:
        rc = gw_http_callback(w->node, &w->api, wsi, reason, c ? &c->http : NULL, in, len);
        /* A publish whose body is still to come: its connection's
         * --http-timeout counts on (lws' own timeout restarts with each
         * byte, so a byte every few seconds held a connection for good). */
        if (rc == 0 && c && gw_http_reading(&c->http)) {
            int64_t left = gw_intake_time_left_us(&w->intake, wsi, gw_now_us());
            if (left > 0)
                lws_set_timer_usecs(wsi, left);
        }
        return rc;
    case LWS_CALLBACK_TIMER:
        if (c && gw_http_reading(&c->http)) {
            gw_stat_add(&w->stats.http_refused[GW_HTTP_REFUSE_TIMEOUT], 1);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        return gw_http_callback(w->node, &w->api, wsi, reason, c ? &c->http : NULL, in, len);
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* First entry: used for plain HTTP and for upgrades without a subprotocol. */
    { .name = "wsgate", .callback = callback, .per_session_data_size = sizeof(struct conn), .rx_buffer_size = 1024 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* Accepts what is pending on the worker's listening socket and hands each
 * connection to lws. The socket stays the worker's: lws never sees it, so it
 * is closed exactly once, by worker_main. */
static void worker_adopt(void *ctx, int fd)
{
    struct gw_worker *w = ctx;
    if (!lws_adopt_socket_vhost(w->vhost, fd)) /* lws closes fd when this fails */
        LOG_WARN("adopt failed worker=%d", w->index);
}

/* Every accepted connection waits in the intake for its request head. */
static void worker_accept(void *ctx, int fd)
{
    struct gw_worker *w = ctx;
    gw_intake_accept(&w->intake, fd, worker_adopt, w);
}

void gw_worker_on_listen_ready(uv_poll_t *p, int status, int events)
{
    struct gw_worker *w = p->data;
    int rc = status < 0 ? 0 : gw_listen_accept_batch(w->listen_fd, w->node->cfg->tcp_nodelay,
                                                     w->node->cfg->socket_sndbuf, ACCEPT_BATCH, worker_accept, w);
    (void)events;
    if (rc < 0)
        gw_intake_accept_failed(&w->intake, -rc, p, gw_worker_on_listen_ready, "listen");
}

/* lws' own "validity" keepalive off (sessions ping on the worker's wheel): left
 * on, every frame received re-inserts the wsi into a sorted list walked from
 * its head, O(connections) per frame: 79% of a node's CPU at 9,500 clients. */
static const lws_retry_bo_t no_lws_keepalive = { .secs_since_valid_hangup = 0 };

struct lws_context *gw_worker_create_context(struct gw_worker *w)
{
    struct lws_context_creation_info info;
    void *loops[1] = { &w->loop };

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we accept ourselves, see listen.h */
    info.protocols = protocols;
    info.user = w;
    info.server_string = "wsgate";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS |
                   LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.pcontext = &w->ctx; /* lws clears it once the context is really freed */
    info.timeout_secs = 10;
    info.retry_and_idle_policy = &no_lws_keepalive;
    return lws_create_context(&info);
}

