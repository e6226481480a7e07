/* One Redis connection: bufferevent + redisReader + a FIFO of reply
 * callbacks with deadlines, and pushes handed to the owner (rconn.h).
 *
 * Pairing rule (where hiredis 0.14's async layer goes wrong): on a connection
 * in pub/sub mode, an array whose first element names a push kind is a push,
 * whatever is pending; everything else answers the oldest pending command.
 * A subscribe-family command waits in the FIFO as a marker that counts its
 * confirmations, so an error reply to it still pairs with it and not with a
 * later command. Outside pub/sub mode every reply answers a command (a GET of
 * a list element "message" is not a push). */
#define GW_LOG_MODULE "redis"

#include "rconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "rconn_int.h"

static const char *const push_names[GW_RCONN_PUSH__COUNT] = {
    "message",   "pmessage",   "smessage",     "subscribe",  "unsubscribe",
    "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe",
};

const char *gw_rconn_state_name(enum gw_rconn_state s)
{
    switch (s) {
    case GW_RCONN_IDLE: return "idle";
    case GW_RCONN_CONNECTING: return "connecting";
    case GW_RCONN_SETUP: return "setup";
    case GW_RCONN_READY: return "ready";
    case GW_RCONN_FAILED: return "failed";
    case GW_RCONN_CLOSED: return "closed";
    }
    return "?";
}

bool rconn_terminal(const struct gw_rconn *c)
{
    return c->state == GW_RCONN_FAILED || c->state == GW_RCONN_CLOSED;
}

/* The one place the state changes; every move is logged with its reason. */
void rconn_move(struct gw_rconn *c, enum gw_rconn_state to, const char *why)
{
    if (c->state == to)
        return;
    if (to == GW_RCONN_FAILED)
        LOG_WARN("redis conn=%s from=%s to=%s reason=\"%s\" error=\"%s\"", c->name, gw_rconn_state_name(c->state),
                 gw_rconn_state_name(to), why, c->errstr);
    else
        LOG_INFO("redis conn=%s from=%s to=%s reason=\"%s\"", c->name, gw_rconn_state_name(c->state),
                 gw_rconn_state_name(to), why);
    c->state = to;
}

/* ---- the FIFO ---- */

static struct rconn_cmd *q_at(struct gw_rconn *c, size_t i)
{
    return &c->q[(c->qhead + i) % c->qcap];
}

static void q_push(struct gw_rconn *c, const struct rconn_cmd *cmd)
{
    if (c->qlen == c->qcap) {
        size_t ncap = c->qcap ? c->qcap * 2 : 16;
        struct rconn_cmd *nq = gw_xmalloc(sizeof(*nq) * ncap);
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = *q_at(c, i);
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen++) % c->qcap] = *cmd;
    if (cmd->confirms > 0)
        c->sub_markers++;
}

static struct rconn_cmd q_pop(struct gw_rconn *c)
{
    struct rconn_cmd cmd = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    if (cmd.confirms > 0)
        c->sub_markers--;
    return cmd;
}

static void run_cb(struct gw_rconn *c, const struct rconn_cmd *cmd, const redisReply *reply)
{
    if (cmd->cb)
        cmd->cb(c, reply, cmd->privdata);
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("redis conn=%s command=%s error=\"%s\"", c->name, cmd->verb, reply->str);
}

/* ---- deadlines ---- */

static void arm_timer(struct gw_rconn *c, int64_t at_us)
{
    int64_t d = at_us - gw_now_us();
    if (d < 0)
        d = 0;
    struct timeval tv = { (time_t)(d / 1000000), (suseconds_t)(d % 1000000) };
    if (evtimer_add(c->timer, &tv) != 0) {
        LOG_ERR("libevent could not arm a redis deadline");
        abort(); /* a command without a deadline could wait forever */
    }
    c->timer_at_us = at_us;
}

static void want_deadline(struct gw_rconn *c, int64_t at_us)
{
    if (!c->timer_at_us || at_us < c->timer_at_us)
        arm_timer(c, at_us);
}

/* ---- teardown ---- */

static void close_socket(struct gw_rconn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->timer)
        evtimer_del(c->timer);
    if (c->kick)
        event_del(c->kick);
    c->timer_at_us = 0;
}

/* Every pending callback with NULL, oldest first, each popped before it runs
 * (it may issue commands, which a terminal connection refuses). */
static void fail_pending(struct gw_rconn *c)
{
    while (c->qlen) {
        struct rconn_cmd cmd = q_pop(c);
        run_cb(c, &cmd, NULL);
    }
}

/* Called with depth > 0 (from an event callback of ours). */
void rconn_fail(struct gw_rconn *c, const char *why, const char *detail)
{
    if (rconn_terminal(c))
        return;
    if (!detail)
        detail = why;
    if (detail != c->errstr)
        snprintf(c->errstr, sizeof c->errstr, "%s", detail);
    rconn_move(c, GW_RCONN_FAILED, why);
    close_socket(c);
    fail_pending(c);
    c->ops->on_fail(c->ctx, c, why);
}

static void finish_free(struct gw_rconn *c)
{
    c->depth++; /* a callback below may call gw_rconn_free again */
    close_socket(c);
    if (!rconn_terminal(c))
        rconn_move(c, GW_RCONN_CLOSED, "freed by its owner");
    fail_pending(c);
    if (c->timer)
        event_free(c->timer);
    if (c->kick)
        event_free(c->kick);
    if (c->reader)
        redisReaderFree(c->reader);
    SSL_CTX_free(c->tls_ctx); /* our reference */
    free(c->tls_name);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->password);
    free(c->username);
    free(c->name);
    free(c->q);
    free(c);
}

void rconn_enter(struct gw_rconn *c)
{
    c->depth++;
}

/* Last statement of every entry point from libevent: c may be gone after. */
void rconn_leave(struct gw_rconn *c)
{
    if (--c->depth == 0 && c->doomed)
        finish_free(c);
}

void gw_rconn_free(struct gw_rconn *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        /* Inside one of our callbacks: stop here, free once it returned. */
        c->doomed = true;
        if (!rconn_terminal(c)) {
            rconn_move(c, GW_RCONN_CLOSED, "freed by its owner");
            close_socket(c);
        }
        return;
    }
    finish_free(c);
}

/* ---- replies ---- */

static bool in_pubsub(const struct gw_rconn *c)
{
    return c->sub_markers > 0 || c->sub_count > 0 || c->ssub_count > 0;
}

bool rconn_push_kind(const redisReply *r, enum gw_rconn_push *kind)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    for (int k = 0; k < GW_RCONN_PUSH__COUNT; k++) {
        if (strcmp(r->element[0]->str, push_names[k]) == 0) {
            *kind = (enum gw_rconn_push)k;
            return true;
        }
    }
    return false;
}

static void handle_push(struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *r)
{
    struct rconn_cmd done;
    bool popped = false;

    if (kind >= GW_RCONN_SUBSCRIBE && r->element[2]->type == REDIS_REPLY_INTEGER) {
        if (kind == GW_RCONN_SSUBSCRIBE || kind == GW_RCONN_SUNSUBSCRIBE)
            c->ssub_count = r->element[2]->integer;
        else
            c->sub_count = r->element[2]->integer;
    }
    if (kind >= GW_RCONN_SUBSCRIBE && c->qlen && q_at(c, 0)->confirms > 0 && q_at(c, 0)->kind == kind &&
        --q_at(c, 0)->confirms == 0) {
        /* Popped before on_push runs, so a free inside it cannot call
         * this command's callback a second time. */
        done = q_pop(c);
        c->sub_markers--; /* q_pop counts off markers with confirms left; this one has none */
        popped = true;
    }
    c->ops->on_push(c->ctx, c, kind, r);
    if (popped)
        run_cb(c, &done, r);
}

static void dispatch(struct gw_rconn *c, const redisReply *r)
{
    enum gw_rconn_push kind;

    if (in_pubsub(c) && rconn_push_kind(r, &kind)) {
        handle_push(c, kind, r);
        return;
    }
    if (c->qlen == 0) {
        /* Redis sends an error before closing (maxclients, LOADING); any
         * other unsolicited reply means we lost track of the stream. */
        rconn_fail(c, "reply with no command waiting", r->type == REDIS_REPLY_ERROR ? r->str : NULL);
        return;
    }
    if (q_at(c, 0)->confirms > 0 && r->type != REDIS_REPLY_ERROR) {
        /* The marker stays queued: the failure answers it with NULL. */
        rconn_fail(c, "unexpected reply to a subscribe command", NULL);
        return;
    }
    struct rconn_cmd cmd = q_pop(c);
    run_cb(c, &cmd, r);
}

/* Moves the bufferevent's input into the reader, then hands out every
 * complete reply while the connection stays open. */
void rconn_process_input(struct gw_rconn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v[8];

    while (evbuffer_get_length(in)) {
        int n = evbuffer_peek(in, -1, NULL, v, 8);
        size_t fed = 0;
        for (int i = 0; i < n && i < 8; i++) {
            redisReaderFeed(c->reader, v[i].iov_base, v[i].iov_len);
            fed += v[i].iov_len;
        }
        evbuffer_drain(in, fed);
    }
    while (c->state == GW_RCONN_SETUP || c->state == GW_RCONN_READY) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            rconn_fail(c, "protocol error", c->reader->errstr);
            return;
        }
        if (!reply)
            break;
        dispatch(c, reply);
        freeReplyObject(reply);
    }
    if (!rconn_terminal(c) && c->reader->len - c->reader->pos > c->max_in) {
        snprintf(c->errstr, sizeof c->errstr, "a reply over %zu bytes", c->max_in);
        rconn_fail(c, "input bound exceeded", c->errstr);
    }
}

void rconn_on_read(struct bufferevent *bev, void *arg)
{
    struct gw_rconn *c = arg;
    rconn_enter(c);
    rconn_process_input(c);
    rconn_leave(c);
}

/* ---- setup ---- */

void rconn_go_ready(struct gw_rconn *c, const char *why)
{
    rconn_move(c, GW_RCONN_READY, why);
    c->ops->on_ready(c->ctx, c);
}

static void on_setup_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    const char *what = privdata;

    if (!reply || rconn_terminal(c))
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        rconn_fail(c, strcmp(what, "AUTH") == 0 ? "AUTH rejected" : "SELECT rejected", reply->str);
        return;
    }
    if (--c->setup_due == 0 && c->state == GW_RCONN_SETUP)
        rconn_go_ready(c, "AUTH/SELECT answered");
}

static char auth_tag[] = "AUTH", select_tag[] = "SELECT";

void rconn_queue_setup(struct gw_rconn *c)
{
    char db[16];
    int rc = 0;

    c->connect_deadline_us = gw_now_us() + (int64_t)c->connect_timeout_ms * 1000;
    want_deadline(c, c->connect_deadline_us);
    if (c->password) {
        const char *argv[] = { "AUTH", c->username ? c->username : c->password, c->password };
        size_t lens[] = { 4, strlen(argv[1]), strlen(c->password) };
        rc = gw_rconn_command(c, c->username ? 3 : 2, argv, lens, c->connect_timeout_ms, on_setup_reply, auth_tag);
        c->setup_due += rc == 0;
    }
    /* Pub/sub ignores the db, but a wrong db number should fail loudly. */
    if (rc == 0 && c->db) {
        snprintf(db, sizeof db, "%d", c->db);
        const char *argv[] = { "SELECT", db };
        size_t lens[] = { 6, strlen(db) };
        rc = gw_rconn_command(c, 2, argv, lens, c->connect_timeout_ms, on_setup_reply, select_tag);
        c->setup_due += rc == 0;
    }
    if (rc != 0) {
        LOG_ERR("redis conn=%s cannot queue AUTH/SELECT rc=%d", c->name, rc);
        abort(); /* the output bound is far above two short commands */
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_rconn *c = arg;
    int64_t now = gw_now_us(), first = 0;
    const char *who = NULL;

    rconn_enter(c);
    c->timer_at_us = 0;
    if (c->state == GW_RCONN_CONNECTING || c->state == GW_RCONN_SETUP) {
        first = c->connect_deadline_us;
        who = "connect";
    }
    for (size_t i = 0; i < c->qlen; i++) {
        const struct rconn_cmd *cmd = q_at(c, i);
        if (!first || cmd->deadline_us < first) {
            first = cmd->deadline_us;
            who = cmd->verb;
        }
    }
    if (!first || rconn_terminal(c)) {
        /* nothing waits */
    } else if (first > now) {
        arm_timer(c, first);
    } else if (gw_rconn_readable(c) && now - first < 1000000) {
        /* This thread was late, maybe not Redis: the answer may be waiting
         * in the socket. Read it before judging (for at most a second). */
        arm_timer(c, now + 10000);
    } else {
        snprintf(c->errstr, sizeof c->errstr, "no answer to %s in time", who);
        rconn_fail(c, "timed out", c->errstr);
    }
    rconn_leave(c);
}

/* ---- public ---- */

struct gw_rconn *gw_rconn_new(struct event_base *base, const struct gw_rconn_opts *opts,
                              const struct gw_rconn_ops *ops, void *ctx)
{
    struct gw_rconn *c = gw_xcalloc(1, sizeof(*c));
    c->base = base;
    c->ops = ops;
    c->ctx = ctx;
    c->name = gw_xstrdup(opts->name ? opts->name : "redis");
    c->username = opts->username ? gw_xstrdup(opts->username) : NULL;
    c->password = opts->password ? gw_xstrdup(opts->password) : NULL;
    c->db = opts->db;
    c->connect_timeout_ms = opts->connect_timeout_ms;
    c->max_out = opts->max_out_bytes;
    c->max_in = opts->max_in_bytes;
    if (opts->tls_ctx) {
        SSL_CTX_up_ref(opts->tls_ctx);
        c->tls_ctx = opts->tls_ctx;
        c->tls_name = opts->tls_name ? gw_xstrdup(opts->tls_name) : NULL;
    }
    c->reader = redisReaderCreate();
    c->timer = evtimer_new(base, on_timer, c);
    if (!c->reader || !c->timer) {
        LOG_ERR("out of memory creating a redis connection");
        abort();
    }
    return c;
}

static bool subscribe_family(const char *verb, size_t len, enum gw_rconn_push *kind)
{
    for (int k = GW_RCONN_SUBSCRIBE; k < GW_RCONN_PUSH__COUNT; k++) {
        if (strlen(push_names[k]) == len && strncasecmp(verb, push_names[k], len) == 0) {
            *kind = (enum gw_rconn_push)k;
            return true;
        }
    }
    return false;
}

int gw_rconn_command(struct gw_rconn *c, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                     gw_rconn_reply_fn cb, void *privdata)
{
    struct rconn_cmd cmd = { .cb = cb, .privdata = privdata };
    char *wire = NULL;

    if (c->state == GW_RCONN_IDLE || rconn_terminal(c))
        return -ENOTCONN;
    if (argc < 1 || timeout_ms <= 0)
        return -EINVAL;
    if (subscribe_family(argv[0], lens[0], &cmd.kind)) {
        if (argc < 2)
            return -EINVAL; /* a bare UNSUBSCRIBE's confirmations cannot be counted */
        cmd.confirms = argc - 1;
    }
    int len = redisFormatCommandArgv(&wire, argc, (const char **)argv, lens);
    if (len < 0)
        return -EINVAL;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) + (size_t)len > c->max_out) {
        redisFreeCommand(wire);
        return -ENOBUFS;
    }
    if (evbuffer_add(out, wire, (size_t)len) != 0) {
        redisFreeCommand(wire);
        return -ENOBUFS;
    }
    redisFreeCommand(wire);
    snprintf(cmd.verb, sizeof cmd.verb, "%.*s", (int)(lens[0] < 15 ? lens[0] : 15), argv[0]);
    cmd.deadline_us = gw_now_us() + (int64_t)timeout_ms * 1000;
    q_push(c, &cmd);
    want_deadline(c, cmd.deadline_us);
    return 0;
}

bool gw_rconn_readable(const struct gw_rconn *c)
{
    if (!c->bev)
        return false;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)))
        return true;
    struct pollfd p = { .fd = bufferevent_getfd(c->bev), .events = POLLIN };
    return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

uint64_t gw_rconn_discard_messages(struct gw_rconn *c, size_t max_bytes)
{
    char buf[16384];
    size_t seen = 0;
    uint64_t n = 0;
    void *reply;
    enum gw_rconn_push kind;

    if (c->bev) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        int fd = bufferevent_getfd(c->bev);
        int got;
        while ((got = evbuffer_remove(in, buf, sizeof buf)) > 0)
            redisReaderFeed(c->reader, buf, (size_t)got);
        /* Under TLS the kernel holds ciphertext: only what was decrypted counts. */
        for (; fd >= 0 && !c->tls_on && seen < max_bytes;) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r <= 0)
                break;
            redisReaderFeed(c->reader, buf, (size_t)r);
            seen += (size_t)r;
        }
    }
    while (redisReaderGetReply(c->reader, &reply) == REDIS_OK && reply) {
        if (rconn_push_kind(reply, &kind) && kind <= GW_RCONN_SMESSAGE)
            n++;
        freeReplyObject(reply);
    }
    return n;
}

enum gw_rconn_state gw_rconn_state(const struct gw_rconn *c)
{
    return c->state;
}

void *gw_rconn_owner(const struct gw_rconn *c)
{
    return c->ctx;
}

const char *gw_rconn_errstr(const struct gw_rconn *c)
{
    return c->errstr;
}

size_t gw_rconn_pending(const struct gw_rconn *c)
{
    return c->qlen;
}

size_t gw_rconn_out_bytes(const struct gw_rconn *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}
