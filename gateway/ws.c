/* Worker threads: one lws context each, the protocol callback that turns lws
 * reasons into session/hub/http calls, and the inbox that the bus fills. */
#define GW_LOG_MODULE "ws"

#include "ws.h"

#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bus.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "session.h"

/* lws per-connection storage: HTTP requests and WebSocket sessions share the
 * one protocol, so both kinds of state live here. */
struct conn {
    struct gw_session *session; /* WebSocket: owned, from ESTABLISHED to CLOSED */
    struct gw_http_state http;  /* plain HTTP */
};

bool gw_node_ready(const struct gw_node *node)
{
    return !atomic_load(&node->draining) && gw_bus_ready(node->bus);
}

/* ---- hub callbacks: the hub calls out, the worker decides what it means ---- */

static void hub_channel_wanted(void *ctx, const char *name, size_t len)
{
    struct gw_worker *w = ctx;
    gw_bus_post_subscribe(w->node->bus, w->index, name, len);
}

static void hub_channel_unwanted(void *ctx, const char *name, size_t len)
{
    struct gw_worker *w = ctx;
    gw_bus_post_unsubscribe(w->node->bus, w->index, name, len);
}

static void hub_deliver(void *ctx, void *owner, struct gw_frame *frame)
{
    gw_session_enqueue(owner, frame);
}

static void hub_ack(void *ctx, void *owner, int64_t id)
{
    gw_session_ack(owner, id);
}

static const struct gw_hub_ops hub_ops = {
    .channel_wanted = hub_channel_wanted,
    .channel_unwanted = hub_channel_unwanted,
    .deliver = hub_deliver,
    .ack = hub_ack,
};

/* ---- draining ---- */

static void worker_stop_if_drained(struct gw_worker *w)
{
    if (w->draining && !w->session_list && !w->stopping) {
        w->stopping = true;
        LOG_INFO("drained worker=%d", w->index);
    }
}

static void worker_begin_drain(struct gw_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->drain_deadline_us = gw_now_us() + (int64_t)w->node->cfg->drain_timeout_s * 1000000;
    int n = 0;
    for (struct gw_session *s = w->session_list; s; s = s->next, n++)
        gw_session_close(s, 1001, "server draining", true);
    LOG_INFO("draining worker=%d sessions=%d timeout_s=%d", w->index, n, w->node->cfg->drain_timeout_s);
    worker_stop_if_drained(w);
}

/* ---- inbox ---- */

static void worker_handle_mail(struct gw_worker *w, struct gw_wmail *m)
{
    switch (m->type) {
    case GW_WMAIL_DELIVER:
        gw_hub_deliver(&w->hub, m->name, m->name_len, m->frame);
        break;
    case GW_WMAIL_LIVE:
        gw_hub_channel_live(&w->hub, m->name, m->name_len);
        break;
    case GW_WMAIL_PUBLISH_RESULT: {
        struct gw_session *s = gw_session_find(w, m->session_id);
        if (s)
            gw_session_publish_result(s, m->ok, m->has_id, m->id);
        break;
    }
    case GW_WMAIL_DRAIN:
        worker_begin_drain(w);
        break;
    }
}

static void worker_drain_inbox(struct gw_worker *w)
{
    struct gw_mail *m = gw_mailbox_take_all(&w->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        worker_handle_mail(w, (struct gw_wmail *)m);
        gw_wmail_free((struct gw_wmail *)m);
        m = next;
    }
}

static void worker_inbox_timer(lws_sorted_usec_list_t *sul)
{
    struct gw_worker *w = lws_container_of(sul, struct gw_worker, inbox_sul);
    w->inbox_drain_scheduled = false;
    w->last_inbox_drain_us = gw_now_us();
    worker_drain_inbox(w);
}

/* The inbox has mail. With --coalesce-ms, drains at most once per interval:
 * the first mail after a quiet period is handled at once, later ones wait
 * for the interval to end, so each client gets several messages per write and
 * the worker wakes less often under load, for at most that much latency. */
static void worker_inbox_ready(struct gw_worker *w)
{
    int64_t now = gw_now_us();
    int64_t due = w->last_inbox_drain_us + (int64_t)w->node->cfg->coalesce_ms * 1000;

    if (now >= due) {
        w->last_inbox_drain_us = now;
        worker_drain_inbox(w);
    } else if (!w->inbox_drain_scheduled) {
        w->inbox_drain_scheduled = true;
        lws_sul_schedule(atomic_load(&w->ctx), 0, &w->inbox_sul, worker_inbox_timer, due - now);
    }
}

void gw_worker_post(struct gw_worker *w, struct gw_wmail *m)
{
    if (!gw_mailbox_post(&w->inbox, &m->link))
        return; /* a wake-up for this batch is already on its way */
    /* wake_lock keeps the context alive while we poke it: the worker clears
     * ctx under the same lock before destroying it. */
    pthread_mutex_lock(&w->wake_lock);
    struct lws_context *ctx = atomic_load(&w->ctx);
    if (ctx)
        lws_cancel_service(ctx);
    pthread_mutex_unlock(&w->wake_lock);
}

/* ---- periodic sweep ---- */

static void worker_sweep(lws_sorted_usec_list_t *sul)
{
    struct gw_worker *w = lws_container_of(sul, struct gw_worker, sweep_sul);
    int64_t now = gw_now_us();

    for (struct gw_session *s = w->session_list; s; s = s->next)
        gw_session_tick(s, now);
    if (w->draining && now >= w->drain_deadline_us && !w->stopping) {
        int left = 0;
        for (struct gw_session *s = w->session_list; s; s = s->next)
            left++;
        LOG_WARN("drain timeout worker=%d sessions_left=%d", w->index, left);
        w->stopping = true;
    }
    lws_sul_schedule(atomic_load(&w->ctx), 0, &w->sweep_sul, worker_sweep, 1000 * LWS_US_PER_MS / 4);
}

/* ---- the lws protocol callback ---- */

/* Decides whether a WebSocket upgrade may proceed; refusals are counted. */
static bool upgrade_allowed(struct gw_worker *w, struct lws *wsi)
{
    const struct gw_config *cfg = w->node->cfg;
    char uri[16];
    enum gw_refuse_reason why;

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0)
        why = GW_REFUSE_PATH;
    else if (w->draining)
        why = GW_REFUSE_DRAINING;
    else if (cfg->max_connections && atomic_load_explicit(&w->node->connections, memory_order_relaxed) >=
                                         cfg->max_connections)
        why = GW_REFUSE_LIMIT;
    else
        return true;
    gw_stat_add(&w->stats.upgrades_refused[why], 1);
    return false;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct gw_worker *w = lws_context_user(lws_get_context(wsi));
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        worker_inbox_ready(w);
        break;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return upgrade_allowed(w, wsi) ? 0 : -1;
    case LWS_CALLBACK_ESTABLISHED:
        c->session = gw_session_new(w, wsi);
        break;
    case LWS_CALLBACK_RECEIVE:
        if (c->session)
            gw_session_receive(c->session, in, len);
        break;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c->session)
            gw_session_saw_traffic(c->session);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->session ? gw_session_writeable(c->session) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c->session) {
            gw_session_free(c->session);
            c->session = NULL;
            worker_stop_if_drained(w);
        }
        break;
    case LWS_CALLBACK_HTTP:
        return gw_http_request(w, wsi, &c->http, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return gw_http_writeable(wsi, &c->http);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c)
            gw_http_release(&c->http);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* Accepts what is pending on the worker's listening socket and hands each
 * connection to lws. Bounded per wake-up so a connect storm cannot starve the
 * clients already connected. */
static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    struct gw_worker *w = lws_context_user(lws_get_context(wsi));
    for (int i = 0; i < 64; i++) {
        int fd = gw_listen_accept(w->listen_fd, w->node->cfg->tcp_nodelay, w->node->cfg->socket_sndbuf);
        if (fd < 0) {
            if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED)
                LOG_WARN("accept failed worker=%d error=\"%s\"", w->index, strerror(-fd));
            break;
        }
        /* lws closes fd itself if the adoption fails. */
        if (!lws_adopt_socket_vhost(w->vhost, fd))
            LOG_WARN("adopt failed worker=%d", w->index);
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    /* First entry: used for plain HTTP and for upgrades without a subprotocol. */
    { .name = "wsgate", .callback = callback, .per_session_data_size = sizeof(struct conn), .rx_buffer_size = 1024 },
    { .name = "wsgate-listen", .callback = listen_callback },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* ---- the thread ---- */

static struct lws_context *worker_create_context(struct gw_worker *w)
{
    const struct gw_config *cfg = w->node->cfg;
    struct lws_context_creation_info info;

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we accept ourselves, see listen.h */
    info.protocols = protocols;
    info.user = w;
    info.server_string = "wsgate";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    info.timeout_secs = 10;
    (void)cfg;
    return lws_create_context(&info);
}

static void worker_set_start_result(struct gw_worker *w, int result)
{
    pthread_mutex_lock(&w->start_lock);
    w->start_result = result;
    pthread_cond_signal(&w->start_cond);
    pthread_mutex_unlock(&w->start_lock);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    const struct gw_config *cfg = w->node->cfg;
    char err[256];
    struct lws_context *ctx = NULL;
    int rc;

    /* Only our own workers share the port: a second process still fails to bind. */
    w->listen_fd = gw_listen_open(cfg->listen_host, cfg->listen_port, cfg->workers > 1, err, sizeof(err));
    if (w->listen_fd < 0) {
        LOG_ERR("listen failed worker=%d reason=\"%s\"", w->index, err);
        rc = w->listen_fd;
        goto fail;
    }
    ctx = worker_create_context(w);
    w->vhost = ctx ? lws_get_vhost_by_name(ctx, "default") : NULL;
    if (!w->vhost) {
        LOG_ERR("lws context creation failed worker=%d", w->index);
        rc = -ENOMEM;
        goto fail;
    }
    lws_sock_file_fd_type lfd = { .filefd = w->listen_fd };
    if (!lws_adopt_descriptor_vhost(w->vhost, LWS_ADOPT_RAW_FILE_DESC, lfd, "wsgate-listen", NULL)) {
        LOG_ERR("cannot watch listen socket worker=%d", w->index);
        rc = -ENOMEM;
        goto fail;
    }
    atomic_store(&w->ctx, ctx);
    worker_set_start_result(w, 0);
    lws_sul_schedule(ctx, 0, &w->sweep_sul, worker_sweep, 250 * LWS_US_PER_MS);
    worker_drain_inbox(w); /* anything posted before ctx was published */

    while (!w->stopping)
        if (lws_service(ctx, 0) < 0)
            break;

    lws_sul_cancel(&w->sweep_sul);
    lws_sul_cancel(&w->inbox_sul);
    pthread_mutex_lock(&w->wake_lock);
    atomic_store(&w->ctx, NULL);
    pthread_mutex_unlock(&w->wake_lock);
    /* Closes what is left (CLOSED callbacks free the sessions). */
    lws_context_destroy(ctx);
    close(w->listen_fd);
    LOG_INFO("stopped worker=%d", w->index);
    return NULL;

fail:
    if (ctx)
        lws_context_destroy(ctx);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    worker_set_start_result(w, rc);
    return NULL;
}

struct gw_worker *gw_worker_new(struct gw_node *node, int index)
{
    struct gw_worker *w = gw_xcalloc(1, sizeof(*w));
    w->index = index;
    w->node = node;
    gw_mailbox_init(&w->inbox);
    atomic_init(&w->ctx, NULL);
    gw_hub_init(&w->hub, &hub_ops, w);
    gw_dict_init(&w->sessions);
    pthread_mutex_init(&w->start_lock, NULL);
    pthread_cond_init(&w->start_cond, NULL);
    pthread_mutex_init(&w->wake_lock, NULL);
    w->start_result = 1;
    return w;
}

int gw_worker_start(struct gw_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    w->started = true;
    pthread_mutex_lock(&w->start_lock);
    while (w->start_result == 1)
        pthread_cond_wait(&w->start_cond, &w->start_lock);
    rc = w->start_result;
    pthread_mutex_unlock(&w->start_lock);
    if (rc != 0)
        gw_worker_join(w);
    return rc;
}

void gw_worker_join(struct gw_worker *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void gw_worker_free(struct gw_worker *w)
{
    if (!w)
        return;
    struct gw_mail *m = gw_mailbox_take_all(&w->inbox);
    while (m) {
        struct gw_mail *next = m->next;
        gw_wmail_free((struct gw_wmail *)m);
        m = next;
    }
    gw_mailbox_deinit(&w->inbox);
    gw_hub_deinit(&w->hub);
    gw_dict_deinit(&w->sessions);
    pthread_mutex_destroy(&w->start_lock);
    pthread_cond_destroy(&w->start_cond);
    pthread_mutex_destroy(&w->wake_lock);
    free(w);
}
