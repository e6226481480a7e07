/* Accepted sockets until their request head is in; see intake.h. */
#define GW_LOG_MODULE "intake"

#include "intake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"

#define SWEEP_MS 100

enum conn_state {
    CONN_WAITING, /* polled until its head is in */
    CONN_HANDING, /* head good; adopted by lws once libuv let go of the fd */
    CONN_ENDING,  /* refused; closed once libuv let go of the fd */
};

struct gw_intake_conn {
    struct gw_intake *in;
    struct gw_intake_conn *prev, *next;
    uv_poll_t poll;
    int fd;
    enum conn_state state;
    size_t seen; /* bytes the last peek saw */
    struct gw_http_slot slot;
    void (*adopt)(void *ctx, int fd);
    void *ctx;
};

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* One best-effort write of a whole small answer, with the headers every
 * answer of the node carries (http.c). */
static void answer(int fd, int status, const char *reason)
{
    char buf[768];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nserver: wsgate\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     "content-length: %zu\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n"
                     "x-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n"
                     "content-security-policy: default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                     "form-action 'none'\r\nconnection: close\r\n\r\n%s\n",
                     status, status_text(status), strlen(reason) + 1, reason);

    if (n > 0 && (size_t)n < sizeof buf)
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void gw_intake_release(struct gw_node *node, struct gw_http_slot *slot)
{
    if (slot->peer)
        gw_ipcount_give(&node->http_peers, &slot->key);
    if (slot->node) {
        atomic_fetch_sub(&node->http_connections, 1);
        gw_stat_add(slot->gauge, -1);
    }
    memset(slot, 0, sizeof(*slot));
}

int64_t gw_intake_time_left_us(const struct gw_intake *in, struct lws *wsi, int64_t now_us)
{
    struct gw_dict_entry *e = in->lws_slots.buckets ? gw_dict_find(&in->lws_slots, &wsi, sizeof wsi) : NULL;
    const struct gw_http_slot *slot = e ? e->value : NULL;

    if (!slot)
        return -1;
    int64_t left = slot->accepted_us + (int64_t)in->node->cfg->http_timeout_s * 1000000 - now_us;
    return left > 0 ? left : 1;
}

void gw_intake_adopted(struct gw_intake *in, struct lws *wsi)
{
    struct gw_http_slot *slot;
    int existed = 0;

    if (!in->handoff.accepted_us || !in->lws_slots.buckets)
        return;
    slot = gw_xmalloc(sizeof(*slot));
    *slot = in->handoff;
    memset(&in->handoff, 0, sizeof(in->handoff));
    gw_dict_add(&in->lws_slots, &wsi, sizeof wsi, slot, &existed);
    if (existed) { /* lws reused a wsi address before its WSI_DESTROY: not seen, kept safe */
        gw_intake_release(in->node, slot);
        free(slot);
    }
}

void gw_intake_forget(struct gw_intake *in, struct lws *wsi)
{
    struct gw_http_slot *slot = in->lws_slots.buckets ? gw_dict_delete(&in->lws_slots, &wsi, sizeof wsi) : NULL;

    if (slot) {
        gw_intake_release(in->node, slot);
        free(slot);
    }
}

void gw_intake_deinit(struct gw_intake *in)
{
    if (!in->lws_slots.buckets)
        return;
    for (struct gw_dict_entry *e = gw_dict_first(&in->lws_slots); e; e = gw_dict_next(&in->lws_slots, e)) {
        gw_intake_release(in->node, e->value);
        free(e->value);
    }
    gw_dict_deinit(&in->lws_slots);
    memset(&in->lws_slots, 0, sizeof(in->lws_slots));
}

static void count(struct gw_intake *in, enum gw_http_refuse why)
{
    gw_stat_add(&in->refused[why], 1);
}

/* The connection leaves the list; its descriptor is adopted or closed once
 * libuv has closed the poll handle. */
static void on_closed(uv_handle_t *h)
{
    struct gw_intake_conn *c = h->data;
    struct gw_intake *in = c->in;

    if (c->prev)
        c->prev->next = c->next;
    else
        in->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* A node that stopped (gw_intake_close) hands nothing to lws any more:
     * its context is being destroyed. */
    if (c->state == CONN_HANDING && in->started) {
        int one = 1;
        (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
        in->handoff = c->slot;
        c->adopt(c->ctx, c->fd);
        /* Not taken (lws failed before its first callback): given back here. */
        gw_intake_release(in->node, &in->handoff);
    } else {
        gw_intake_release(in->node, &c->slot);
        close(c->fd);
    }
    free(c);
}

static void finish(struct gw_intake_conn *c, enum conn_state state)
{
    c->state = state;
    uv_close((uv_handle_t *)&c->poll, on_closed);
}

/* Refuses with status: what was peeked is read first, so that the close
 * after the answer does not reset the connection over unread bytes. */
static void refuse(struct gw_intake_conn *c, size_t peeked, int status, const char *reason, enum gw_http_refuse why)
{
    while (peeked > 0) {
        ssize_t n = recv(c->fd, c->in->peek, peeked, MSG_DONTWAIT);
        if (n <= 0)
            break;
        peeked -= (size_t)n;
    }
    answer(c->fd, status, reason);
    count(c->in, why);
    LOG_DBG("request refused status=%d reason=\"%s\"", status, reason);
    finish(c, CONN_ENDING);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    struct gw_intake_conn *c = p->data;
    struct gw_intake *in = c->in;
    struct gw_httpreq req;
    ssize_t n;
    int rc, lowat;

    (void)events;
    if (c->state != CONN_WAITING)
        return;
    if (status < 0) {
        finish(c, CONN_ENDING);
        return;
    }
    n = recv(c->fd, in->peek, sizeof in->peek, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    /* With SO_RCVLOWAT above what is there, a wake-up without new bytes is
     * the peer's end (or an error): nothing more will come. */
    if (n <= 0 || (size_t)n == c->seen) {
        finish(c, CONN_ENDING);
        return;
    }
    rc = gw_httpreq_parse(in->peek, (size_t)n, &req);
    if (rc < 0) {
        refuse(c, (size_t)n, req.status, req.reason, GW_HTTP_REFUSE_BAD_REQUEST);
        return;
    }
    if (rc == 1) {
        uv_poll_stop(p);
        finish(c, CONN_HANDING);
        return;
    }
    c->seen = (size_t)n;
    lowat = (int)n + 1;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) != 0) {
        LOG_WARN("cannot wait for the rest of a request head error=\"%s\"", strerror(errno));
        finish(c, CONN_ENDING);
    }
}

void gw_intake_accept_failed(struct gw_intake *in, int err, uv_poll_t *poll, uv_poll_cb cb, const char *what)
{
    int64_t now = gw_now_us();

    count(in, GW_HTTP_REFUSE_ACCEPT_ERROR);
    in->errors_unlogged++;
    /* Measured before: 2.0 M log lines (214 MB) in 12 s on EMFILE. */
    if (now - in->error_logged_us >= 1000000) {
        LOG_WARN("accept failed port=%s error=\"%s\" errors=%llu", what, strerror(err),
                 (unsigned long long)in->errors_unlogged);
        in->error_logged_us = now;
        in->errors_unlogged = 0;
    }
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return;
    for (size_t i = 0; i < sizeof in->paused / sizeof in->paused[0]; i++) {
        if (in->paused[i].poll == poll)
            return;
        if (!in->paused[i].poll) {
            in->paused[i].poll = poll;
            in->paused[i].cb = cb;
            uv_poll_stop(poll);
            return;
        }
    }
}

static void on_sweep(uv_timer_t *t)
{
    struct gw_intake *in = t->data;
    int64_t now = gw_now_us(), limit = (int64_t)in->node->cfg->http_timeout_s * 1000000;

    for (size_t i = 0; i < sizeof in->paused / sizeof in->paused[0]; i++) {
        if (in->paused[i].poll && !uv_is_closing((uv_handle_t *)in->paused[i].poll))
            (void)uv_poll_start(in->paused[i].poll, UV_READABLE, in->paused[i].cb);
        in->paused[i].poll = NULL;
    }

    for (struct gw_intake_conn *c = in->conns; c; c = c->next) {
        if (c->state != CONN_WAITING || now - c->slot.accepted_us < limit)
            continue;
        answer(c->fd, 408, "request head not complete within --http-timeout");
        count(in, GW_HTTP_REFUSE_TIMEOUT);
        finish(c, CONN_ENDING);
    }
}

/* Takes the node's and the peer's slots; false (nothing taken, the reason
 * counted) when either is full. */
static bool take_slots(struct gw_intake *in, int fd, struct gw_http_slot *slot)
{
    const struct gw_config *cfg = in->node->cfg;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;

    slot->accepted_us = gw_now_us();
    if (atomic_fetch_add(&in->node->http_connections, 1) >= cfg->max_http_connections) {
        atomic_fetch_sub(&in->node->http_connections, 1);
        count(in, GW_HTTP_REFUSE_LIMIT);
        return false;
    }
    slot->node = true;
    slot->gauge = in->gauge;
    gw_stat_add(in->gauge, 1);
    if (cfg->max_http_connections_per_ip > 0) {
        if (getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
            gw_ipcount_key_from_sockaddr(&slot->key, (struct sockaddr *)&ss, sslen) != 0 ||
            !gw_ipcount_take(&in->node->http_peers, &slot->key, cfg->max_http_connections_per_ip)) {
            gw_intake_release(in->node, slot);
            count(in, GW_HTTP_REFUSE_PER_IP);
            return false;
        }
        slot->peer = true;
    }
    return true;
}

void gw_intake_accept(struct gw_intake *in, int fd, void (*adopt)(void *ctx, int fd), void *ctx)
{
    struct gw_intake_conn *c;
    struct gw_http_slot slot;
    int rc;

    memset(&slot, 0, sizeof slot);
    if (!in->started || !take_slots(in, fd, &slot)) {
        answer(fd, 503, "too many connections");
        close(fd);
        return;
    }
    c = gw_xcalloc(1, sizeof(*c));
    c->in = in;
    c->fd = fd;
    c->slot = slot;
    c->adopt = adopt;
    c->ctx = ctx;
    c->poll.data = c;
    if ((rc = uv_poll_init(in->loop, &c->poll, fd)) != 0) {
        LOG_WARN("cannot watch a new connection error=\"%s\"", uv_strerror(rc));
        gw_intake_release(in->node, &c->slot);
        close(fd);
        free(c);
        return;
    }
    c->next = in->conns;
    if (in->conns)
        in->conns->prev = c;
    in->conns = c;
    if ((rc = uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, on_readable)) != 0) {
        LOG_WARN("cannot watch a new connection error=\"%s\"", uv_strerror(rc));
        finish(c, CONN_ENDING);
    }
}

int gw_intake_start(struct gw_intake *in, struct gw_node *node, uv_loop_t *loop, gw_stat *refused,
                    gw_stat *gauge)
{
    int rc;

    memset(in, 0, sizeof(*in));
    in->node = node;
    in->loop = loop;
    in->refused = refused;
    in->gauge = gauge;
    gw_dict_init(&in->lws_slots);
    if ((rc = uv_timer_init(loop, &in->sweep)) != 0)
        return rc;
    in->sweep.data = in;
    if ((rc = uv_timer_start(&in->sweep, on_sweep, SWEEP_MS, SWEEP_MS)) != 0) {
        uv_close((uv_handle_t *)&in->sweep, NULL);
        return rc;
    }
    in->started = true;
    return 0;
}

void gw_intake_close(struct gw_intake *in)
{
    if (!in->started)
        return;
    in->started = false;
    uv_close((uv_handle_t *)&in->sweep, NULL);
    for (struct gw_intake_conn *c = in->conns; c; c = c->next)
        if (c->state == CONN_WAITING)
            finish(c, CONN_ENDING);
}
