/* Worker threads: a libuv loop each with one lws context on it (the lws
 * side is worker_lws.c), the inbox that the bus fills, the sweep, the
 * end-of-batch flush that writes to clients, and the ordered teardown.
 *
 * Why libuv: lws' own loop is poll() over every descriptor on every wake-up,
 * so its cost grows with the connections held, not with the work; an epoll
 * loop costs what the ready descriptors cost (docs/BENCHMARKS.md). */
#define GW_LOG_MODULE "worker"

#include "worker.h"
#include "worker_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "alloc.h"
#include "bus.h"
#include "clock.h"
#include "hub.h"
#include "intake.h"
#include "listen.h"
#include "log.h"
#include "mailbox.h"
#include "registry.h"
#include "session.h"
#include "wake.h"

#define SWEEP_INTERVAL_MS 250

/* ---- what the hub gets from its worker: the node's Redis interest ---- */

static void hub_channel_wanted(void *ctx, const char *name, size_t len, uint32_t gen)
{
    struct gw_worker *w = ctx;
    gw_bus_post_subscribe(w->node->bus, w->index, name, len, gen);
}

static void hub_channel_unwanted(void *ctx, const char *name, size_t len)
{
    struct gw_worker *w = ctx;
    gw_bus_post_unsubscribe(w->node->bus, w->index, name, len);
}

static const struct gw_hub_ops hub_ops = {
    .channel_wanted = hub_channel_wanted,
    .channel_unwanted = hub_channel_unwanted,
};

static void worker_begin_drain(struct gw_worker *w)
{
    if (w->state != GW_WORKER_RUNNING)
        return;
    w->state = GW_WORKER_DRAINING;
    w->drain_deadline_us = gw_now_us() + (int64_t)w->node->cfg->drain_timeout_s * 1000000;
    for (struct gw_registry_entry *e = gw_registry_first(&w->sessions); e; e = gw_registry_next(&w->sessions, e))
        gw_session_close(e->session, 1001, "server draining", true);
    LOG_INFO("draining worker=%d sessions=%zu timeout_s=%d", w->index, w->sessions.count,
             w->node->cfg->drain_timeout_s);
    gw_worker_stop_if_drained(w);
}

/* ---- inbox ---- */

static void worker_handle_mail(struct gw_worker *w, struct gw_wmail *m)
{
    switch (m->type) {
    case GW_WMAIL_DELIVER:
        gw_hub_deliver(&w->hub, m->name, m->name_len, m->frame);
        break;
    case GW_WMAIL_PRESENCE_EVENT:
        gw_hub_deliver_presence(&w->hub, m->name, m->name_len, m->frame);
        break;
    case GW_WMAIL_LIVE:
        gw_hub_channel_live(&w->hub, m->name, m->name_len, m->gen);
        break;
    case GW_WMAIL_LINK_DOWN: /* with a name: that channel only */
        if (m->name_len)
            gw_hub_channel_down(&w->hub, m->name, m->name_len);
        else
            gw_hub_link_down(&w->hub);
        break;
    case GW_WMAIL_PUBLISH_RESULT: {
        if (gw_api_publish_result(&w->api, m->session_id, m->ok, m->busy, &m->at)) /* api.h: own id space */
            break;
        struct gw_session *s = gw_registry_find(&w->sessions, m->session_id);
        if (s)
            gw_session_publish_result(s, m->ok, m->has_id, m->id, &m->at);
        break;
    }
    case GW_WMAIL_RECOVERY:
        gw_hub_recovery_page(&w->hub, m);
        break;
    case GW_WMAIL_HISTORY_RESULT: {
        if (gw_api_history_result(&w->api, m->session_id, m->frame)) /* api.h: own id space */
            break;
        struct gw_session *s = gw_registry_find(&w->sessions, m->session_id);
        if (s)
            gw_session_history_result(s, m->has_id, m->id, m->frame);
        break;
    }
    case GW_WMAIL_PRESENCE_RESULT: {
        if (gw_api_presence_result(&w->api, m->session_id, m->frame)) /* api.h: own id space */
            break;
        struct gw_session *s = gw_registry_find(&w->sessions, m->session_id);
        if (s)
            gw_session_presence_result(s, m->has_id, m->id, m->frame);
        break;
    }
    case GW_WMAIL_DRAIN:
        worker_begin_drain(w);
        break;
    case GW_WMAIL_DISCONNECT: {
        uint64_t closed = 0;
        for (struct gw_registry_entry *e = gw_registry_first(&w->sessions); e; e = gw_registry_next(&w->sessions, e))
            closed += gw_session_disconnect_user(e->session, m->name, m->name_len, (int)m->id, m->text);
        gw_bus_post_disconnected(w->node->bus, w->index, m->seq, closed);
        break;
    }
    case GW_WMAIL_UNSUBSCRIBE: {
        uint64_t left = 0;
        size_t clen = strlen(m->text);
        for (struct gw_registry_entry *e = gw_registry_first(&w->sessions); e; e = gw_registry_next(&w->sessions, e))
            left += gw_session_unsubscribe_user(e->session, m->name, m->name_len, m->text, clen, m->text2);
        gw_bus_post_disconnected(w->node->bus, w->index, m->seq, left);
        break;
    }
    case GW_WMAIL_CTL_RESULT:
        gw_api_ctl_result(&w->api, m);
        break;
    }
}

static void worker_drain_inbox(struct gw_worker *w)
{
    struct gw_mail *m = gw_mailbox_take_all(&w->inbox);
    w->last_inbox_drain_us = gw_now_us();
    while (m) {
        struct gw_mail *next = m->next;
        size_t bytes = ((struct gw_wmail *)m)->bytes;
        worker_handle_mail(w, (struct gw_wmail *)m);
        gw_wmail_free((struct gw_wmail *)m);
        atomic_fetch_sub_explicit(&w->inbox_bytes, bytes, memory_order_relaxed);
        m = next;
    }
    gw_worker_flush_sessions(w);
}

static void on_inbox_timer(uv_timer_t *t)
{
    struct gw_worker *w = t->data;
    w->inbox_drain_scheduled = false;
    worker_drain_inbox(w);
}

/* The inbox has mail. With --coalesce-ms, drains at most once per interval:
 * the first mail after a quiet period is handled at once, later ones wait
 * for the interval to end, so each client gets several messages per write and
 * the worker wakes less often under load, for at most that much latency. */
static void on_wake(uv_poll_t *p, int status, int events)
{
    struct gw_worker *w = p->data;

    gw_wake_clear(&w->wake); /* before the inbox is taken, see wake.h */
    int64_t now = gw_now_us();
    int64_t due = w->last_inbox_drain_us + (int64_t)w->node->cfg->coalesce_ms * 1000;

    if (now >= due)
        worker_drain_inbox(w);
    else if (!w->inbox_drain_scheduled) {
        w->inbox_drain_scheduled = true;
        uv_timer_start(&w->inbox_timer, on_inbox_timer, (uint64_t)((due - now + 999) / 1000), 0);
    }
}

size_t gw_worker_inbox_bytes(const struct gw_worker *w)
{
    return atomic_load_explicit(&((struct gw_worker *)w)->inbox_bytes, memory_order_relaxed);
}

void gw_worker_post(struct gw_worker *w, struct gw_wmail *m)
{
    m->bytes = gw_wmail_bytes(m);
    atomic_fetch_add_explicit(&w->inbox_bytes, m->bytes, memory_order_relaxed);
    if (gw_mailbox_post(&w->inbox, &m->link))
        gw_wake_send(&w->wake); /* else a wake-up for this batch is on its way */
}

/* ---- periodic sweep ---- */

/* The busiest channels, for the admin view. */
static void update_top(struct gw_worker *w)
{
    struct gw_hub_top top[GW_TOP_CHANNELS];
    int n = gw_hub_busiest(&w->hub, top, GW_TOP_CHANNELS);

    pthread_mutex_lock(&w->top_lock);
    memcpy(w->top, top, sizeof(top[0]) * (size_t)n);
    w->ntop = n;
    pthread_mutex_unlock(&w->top_lock);
}

int gw_worker_top_channels(struct gw_worker *w, struct gw_hub_top *out, int max)
{
    pthread_mutex_lock(&w->top_lock);
    int n = w->ntop < max ? w->ntop : max;
    memcpy(out, w->top, sizeof(out[0]) * (size_t)n);
    pthread_mutex_unlock(&w->top_lock);
    return n;
}

static void count_one(void *arg, const char *name, size_t len, uint32_t subscribers)
{
    gw_bus_counts_add(arg, name, len, subscribers);
}

/* The channels whose subscriber count changed since the last sweep, in one
 * mail (the bus coalesces them into its 1 s write: bus_chans.c). */
static void post_counts(struct gw_worker *w)
{
    struct gw_bus_counts c = { 0 };

    if (gw_hub_take_counts(&w->hub, count_one, &c))
        gw_bus_post_counts(w->node->bus, w->index, &c);
}

static void on_sweep(uv_timer_t *t)
{
    struct gw_worker *w = t->data;
    int64_t now = gw_now_us();

    if (++w->sweeps % 8 == 1)
        update_top(w);
    post_counts(w);
    struct gw_session *s;
    while ((s = gw_registry_next_due(&w->sessions, now)))
        gw_session_tick(s, now);
    gw_worker_flush_sessions(w);
    if (w->state == GW_WORKER_DRAINING && now >= w->drain_deadline_us) {
        LOG_WARN("drain timeout worker=%d sessions_left=%zu", w->index, w->sessions.count);
        gw_worker_stop(w);
    }
}

/* ---- the thread ---- */

static void worker_set_start_result(struct gw_worker *w, int result)
{
    pthread_mutex_lock(&w->state_lock);
    w->start_result = result;
    pthread_cond_signal(&w->state_cond);
    pthread_mutex_unlock(&w->state_lock);
}

/* Closes the worker's own handles and runs the loop until every handle, lws'
 * included, has finished closing; then the loop can be closed. */
static void worker_close_loop(struct gw_worker *w, bool listening)
{
    uv_close((uv_handle_t *)&w->sweep_timer, NULL);
    uv_close((uv_handle_t *)&w->inbox_timer, NULL);
    if (listening)
        uv_close((uv_handle_t *)&w->listen_poll, NULL);
    gw_wake_close(&w->wake);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* On a foreign loop the first destroy only starts the teardown; once the
     * loop has closed lws' handles, a second call frees the context. */
    if (w->ctx) {
        lws_context_destroy(w->ctx);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (w->ctx)
        LOG_ERR("lws context not freed worker=%d", w->index);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0)
        LOG_ERR("loop not closed worker=%d error=\"%s\"", w->index, uv_strerror(rc));
    gw_wake_deinit(&w->wake);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    const struct gw_config *cfg = w->node->cfg;
    char err[256];
    bool listening = false;
    int rc;

    if ((rc = uv_loop_init(&w->loop)) != 0) {
        LOG_ERR("cannot create event loop worker=%d error=\"%s\"", w->index, uv_strerror(rc));
        worker_set_start_result(w, rc); /* nothing to close: the loop never existed */
        return NULL;
    }
    uv_timer_init(&w->loop, &w->sweep_timer);
    uv_timer_init(&w->loop, &w->inbox_timer);
    w->sweep_timer.data = w->inbox_timer.data = w;
    if ((rc = gw_wake_open(&w->wake, &w->loop, on_wake, w)) != 0) {
        LOG_ERR("cannot create wake-up worker=%d error=\"%s\"", w->index, strerror(-rc));
        goto fail;
    }
    if ((rc = gw_intake_start(&w->intake, w->node, &w->loop, w->stats.http_refused,
                              &w->stats.http_connections)) != 0) {
        LOG_ERR("cannot start the intake worker=%d error=\"%s\"", w->index, uv_strerror(rc));
        goto fail;
    }

    /* Only our own workers share the port: a second process still fails to bind. */
    w->listen_fd = gw_listen_open(cfg->listen_host, cfg->listen_port, cfg->workers > 1, err, sizeof(err));
    if (w->listen_fd < 0) {
        LOG_ERR("listen failed worker=%d reason=\"%s\"", w->index, err);
        rc = w->listen_fd;
        goto fail;
    }
    w->ctx = gw_worker_create_context(w);
    w->vhost = w->ctx ? lws_get_vhost_by_name(w->ctx, "default") : NULL;
    if (!w->vhost) {
        LOG_ERR("lws context creation failed worker=%d", w->index);
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = uv_poll_init(&w->loop, &w->listen_poll, w->listen_fd)) != 0) {
        LOG_ERR("cannot watch listen socket worker=%d error=\"%s\"", w->index, uv_strerror(rc));
        goto fail;
    }
    listening = true;
    w->listen_poll.data = w;
    if ((rc = uv_poll_start(&w->listen_poll, UV_READABLE, gw_worker_on_listen_ready)) != 0) {
        LOG_ERR("cannot watch listen socket worker=%d error=\"%s\"", w->index, uv_strerror(rc));
        goto fail;
    }
    if ((rc = gw_api_start(&w->api, w->node, w->index, &w->loop, w->vhost, &w->intake)) != 0)
        goto fail; /* last step: nothing of the API to undo below */
    uv_timer_start(&w->sweep_timer, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    worker_set_start_result(w, 0);
    worker_drain_inbox(w); /* anything posted before the loop ran */

    uv_run(&w->loop, UV_RUN_DEFAULT);

    uv_poll_stop(&w->listen_poll);
    gw_api_stop(&w->api);
    gw_intake_close(&w->intake);
    pthread_mutex_lock(&w->state_lock);
    w->stopped = true;
    pthread_cond_broadcast(&w->state_cond);
    while (!w->teardown_go)
        pthread_cond_wait(&w->state_cond, &w->state_lock);
    pthread_mutex_unlock(&w->state_lock);
    /* Closes what is left (CLOSED callbacks free the sessions); with a
     * foreign loop lws finishes its own teardown as the loop runs below. */
    lws_context_destroy(w->ctx);
    worker_close_loop(w, listening);
    close(w->listen_fd);
    LOG_INFO("stopped worker=%d", w->index);
    return NULL;

fail:
    gw_intake_close(&w->intake);
    if (w->ctx)
        lws_context_destroy(w->ctx);
    worker_close_loop(w, listening);
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
    w->listen_fd = -1;
    gw_wake_init(&w->wake);
    gw_mailbox_init(&w->inbox);
    pthread_mutex_init(&w->top_lock, NULL);
    atomic_init(&w->inbox_bytes, 0);
    /* A recovering client holds live messages up to one queue's worth. */
    gw_hub_init(&w->hub, &hub_ops, w, &gw_session_client_ops, node->cfg->queue_max_bytes);
    gw_registry_init(&w->sessions);
    w->host = (struct gw_session_host){
        .cfg = node->cfg, .access = node->access, .node = node, .worker = index, .hub = &w->hub,
        .registry = &w->sessions, .stats = &w->stats,
    };
    pthread_mutex_init(&w->state_lock, NULL);
    pthread_cond_init(&w->state_cond, NULL);
    w->start_result = 1;
    return w;
}

int gw_worker_start(struct gw_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    w->started = true;
    pthread_mutex_lock(&w->state_lock);
    while (w->start_result == 1)
        pthread_cond_wait(&w->state_cond, &w->state_lock);
    rc = w->start_result;
    pthread_mutex_unlock(&w->state_lock);
    if (rc != 0)
        gw_worker_join(w);
    return rc;
}

void gw_worker_wait_stopped(struct gw_worker *w)
{
    pthread_mutex_lock(&w->state_lock);
    while (w->started && !w->stopped)
        pthread_cond_wait(&w->state_cond, &w->state_lock);
    pthread_mutex_unlock(&w->state_lock);
}

void gw_worker_join(struct gw_worker *w)
{
    pthread_mutex_lock(&w->state_lock);
    w->teardown_go = true;
    pthread_cond_broadcast(&w->state_cond);
    pthread_mutex_unlock(&w->state_lock);
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

struct gw_worker_stats *gw_worker_stats(struct gw_worker *w)
{
    return &w->stats;
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
    pthread_mutex_destroy(&w->top_lock);
    gw_hub_deinit(&w->hub);
    gw_registry_deinit(&w->sessions);
    gw_api_deinit(&w->api);
    gw_intake_deinit(&w->intake);
    pthread_mutex_destroy(&w->state_lock);
    pthread_cond_destroy(&w->state_cond);
    free(w);
}
