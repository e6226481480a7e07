/* WebSocket client connections: non-blocking connect from 127.0.0.x, the upgrade
 * handshake, a streaming frame parser that looks only at the head of each message,
 * and the per-connection sequence accounting (loss, duplicates, reordering). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* The server's Sec-WebSocket-Accept is not checked: a fixed key keeps the handshake
 * cheap, and a wrong server would fail on the first frame anyway. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static void report_conn_error(struct bench *b, struct conn *c, const char *what, int err)
{
    if (++b->conn_errors <= 5)
        bench_log(b, "connection %u: %s: %s", c->idx, what, err ? strerror(err) : "failed");
    else if (b->conn_errors == 6)
        bench_log(b, "more connection errors follow; only the count is reported");
}

static void conn_release(struct bench *b, struct conn *c, int reset)
{
    if (c->fd >= 0) {
        if (reset) {
            /* RST instead of FIN: no TIME_WAIT left behind to exhaust source ports */
            struct linger lg = { 1, 0 };
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        if (!c->paused)
            bench_ep_del(b, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    free(c->part);
    c->part = NULL;
    c->part_len = 0;
}

/* A connection that never became live. */
static void conn_fail(struct bench *b, struct conn *c, const char *what, int err)
{
    report_conn_error(b, c, what, err);
    if (c->state != CS_IDLE && c->state < CS_LIVE)
        b->in_progress--;
    c->failed = 1;
    c->state = CS_CLOSED;
    conn_release(b, c, 1);
}

/* The server closed a live connection (close frame, EOF or reset). */
static void conn_lost(struct bench *b, struct conn *c, uint16_t code)
{
    if (c->state < CS_LIVE) {
        conn_fail(b, c, code ? "closed during handshake" : "eof during handshake", 0);
        return;
    }
    c->close_code = code;
    b->closes_by_code[code < 5000 ? code : 0]++;
    b->live--;
    b->closed++;
    c->state = CS_CLOSED;
    conn_release(b, c, 1);
}

void conn_close(struct bench *b, struct conn *c)
{
    if (c->state == CS_CLOSED || c->state == CS_IDLE)
        return;
    if (c->state == CS_LIVE)
        b->live--;
    else
        b->in_progress--;
    c->state = CS_CLOSED;
    conn_release(b, c, 1);
}

void conn_pause(struct bench *b, struct conn *c)
{
    if (c->state == CS_CLOSED || c->paused)
        return;
    bench_ep_del(b, c->fd);
    c->paused = 1;
}

void conn_resume(struct bench *b, struct conn *c)
{
    if (c->state == CS_CLOSED || !c->paused)
        return;
    c->paused = 0;
    bench_ep_add(b, c->fd, EPOLLIN, c);
}

void conn_phase_reset(struct conn *c)
{
    c->recv = c->dups = c->reorders = c->stale = 0;
}

void conn_start(struct bench *b, struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_start_us = bench_now_us();
    if (fd < 0) {
        conn_fail(b, c, "socket", errno);
        return;
    }
    int one = 1;
    /* Defer the port choice to connect(), so a port is unique per 4-tuple, not per
     * source address: many servers can share one source address's port range. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->slow)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &b->o.slow_rcvbuf, sizeof b->o.slow_rcvbuf);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->idx % (uint32_t)b->o.src_addrs));
    c->fd = fd;
    c->state = CS_CONNECTING;
    b->in_progress++;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
        conn_fail(b, c, "bind", errno);
        return;
    }
    const struct sockaddr_in *dst = &b->o.servers[c->idx % (uint32_t)b->o.nservers];
    if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS) {
        conn_fail(b, c, "connect", errno);
        return;
    }
    bench_ep_add(b, fd, EPOLLOUT, c);
}

static int conn_write(struct bench *b, struct conn *c, const void *buf, size_t len)
{
    ssize_t n = write(c->fd, buf, len);
    if (n == (ssize_t)len)
        return 0;
    /* Only tiny control frames are written; a full socket buffer here means the
     * connection is stuck, which the close/loss counters will show. */
    report_conn_error(b, c, "short write", n < 0 ? errno : 0);
    return -1;
}

/* Client frames must be masked (RFC 6455 5.3). */
static void send_frame(struct bench *b, struct conn *c, int opcode, const void *payload, size_t len)
{
    uint8_t f[8 + 256];
    if (len > 256)
        return;
    size_t h = 0;
    f[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        f[h++] = (uint8_t)(0x80 | len);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    }
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    uint8_t mask[4] = { (uint8_t)b->rng, (uint8_t)(b->rng >> 8), (uint8_t)(b->rng >> 16), (uint8_t)(b->rng >> 24) };
    memcpy(f + h, mask, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        f[h + i] = p[i] ^ mask[i & 3];
    conn_write(b, c, f, h + len);
}

static void send_request(struct bench *b, struct conn *c)
{
    char req[512 + BENCH_TOKEN_MAX];
    const struct sockaddr_in *dst = &b->o.servers[c->idx % (uint32_t)b->o.nservers];
    const struct chan *ch = &b->chans[c->chan];
    int n = snprintf(req, sizeof req,
                     "GET %s%s%s%s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     b->o.path, b->o.target == TARGET_NCHAN ? ch->name : "", b->o.token ? "?token=" : "",
                     b->o.token ? b->o.token : "", ntohs(dst->sin_port));
    if (n < 0 || (size_t)n >= sizeof req) {
        conn_fail(b, c, "upgrade request too long", 0);
        return;
    }
    if (conn_write(b, c, req, (size_t)n) < 0) {
        conn_fail(b, c, "upgrade request", errno);
        return;
    }
    c->state = CS_HANDSHAKE;
    bench_ep_mod(b, c->fd, EPOLLIN, c);
}

static void conn_became_live(struct bench *b, struct conn *c)
{
    c->state = CS_LIVE;
    c->t_live_us = bench_now_us();
    b->in_progress--;
    b->live++;
}

/* Returns the length of the HTTP response head, or 0 while it is incomplete. */
static size_t handshake(struct bench *b, struct conn *c, const uint8_t *buf, size_t have)
{
    const uint8_t *end = memmem(buf, have, "\r\n\r\n", 4);
    if (!end) {
        if (have >= BENCH_PART_MAX)
            conn_fail(b, c, "upgrade response too long", 0);
        return 0;
    }
    if (have < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        if (b->conn_errors < 5) {
            const uint8_t *eol = memchr(buf, '\r', have);
            bench_log(b, "connection %u: upgrade refused: %.*s", c->idx, (int)(eol ? eol - buf : 0), buf);
        }
        conn_fail(b, c, "upgrade refused", 0);
        return 0;
    }
    if (b->o.target == TARGET_NCHAN) {
        /* nchan subscribes on the upgrade itself; there is no ack to wait for */
        conn_became_live(b, c);
    } else {
        const struct chan *ch = &b->chans[c->chan];
        char msg[128];
        int n = snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"channel\":\"%s\",\"id\":1}", ch->name);
        c->state = CS_SUBSCRIBING;
        send_frame(b, c, 0x1, msg, (size_t)n);
    }
    return (size_t)(end - buf) + 4;
}

static int scan_num(const uint8_t **pp, const uint8_t *end, const char key[4], int64_t *out)
{
    const uint8_t *k = memmem(*pp, (size_t)(end - *pp), key, 4);
    if (!k)
        return 0;
    k += 4;
    if (k >= end || *k < '0' || *k > '9')
        return 0;
    int64_t v = 0;
    while (k < end && *k >= '0' && *k <= '9')
        v = v * 10 + (*k++ - '0');
    *out = v;
    *pp = k;
    return 1;
}

enum msg_kind { MSG_DATA, MSG_ACK, MSG_OTHER };

/* Looks only at the head of a text message: "type" for the wsgate protocol (the
 * envelope puts it first), then the payload's "s" and "t". No JSON parse. */
static enum msg_kind classify(struct bench *b, struct conn *c, const uint8_t *p, size_t n, int64_t *s, int64_t *t)
{
    if (b->o.target != TARGET_NCHAN) {
        if (n < 10 || memcmp(p, "{\"type\":\"", 9) != 0)
            return MSG_OTHER;
        if (p[9] == 'a')
            return MSG_ACK;
        if (p[9] == 'e') {
            if (++b->ws_errors <= 3)
                bench_log(b, "connection %u: error reply: %.*s", c->idx, (int)(n < 200 ? n : 200), p);
            return MSG_OTHER;
        }
        if (p[9] != 'm')
            return MSG_OTHER;
    }
    const uint8_t *q = p, *end = p + n;
    if (!scan_num(&q, end, "\"s\":", s) || !scan_num(&q, end, "\"t\":", t))
        return MSG_OTHER;
    return MSG_DATA;
}

static inline int win_test(const struct conn *c, int64_t s)
{
    uint64_t i = (uint64_t)s % BENCH_WIN_BITS;
    return (int)((c->win[i / 64] >> (i % 64)) & 1);
}

static inline void win_set(struct conn *c, int64_t s)
{
    uint64_t i = (uint64_t)s % BENCH_WIN_BITS;
    c->win[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline void win_clear(struct conn *c, int64_t s)
{
    uint64_t i = (uint64_t)s % BENCH_WIN_BITS;
    c->win[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static void account(struct bench *b, struct conn *c, int64_t seq, int64_t t, int64_t now)
{
    if (seq < b->chans[c->chan].base) {
        c->stale++;
        return;
    }
    if (seq > c->max_seq) {
        if (seq - c->max_seq >= BENCH_WIN_BITS)
            memset(c->win, 0, sizeof c->win);
        else
            for (int64_t s = c->max_seq + 1; s <= seq; s++)
                win_clear(c, s);
        c->max_seq = seq;
        win_set(c, seq);
    } else if (c->max_seq - seq >= BENCH_WIN_BITS) {
        /* too old for the window: cannot tell a duplicate from a late message */
        c->reorders++;
    } else if (win_test(c, seq)) {
        c->dups++;
        return;
    } else {
        win_set(c, seq);
        c->reorders++;
    }
    c->recv++;
    if (c->excluded)
        return;
    b->ph.delivered++;
    hist_record(&b->ph.lat, now - t);
}

static void on_data(struct bench *b, struct conn *c, const uint8_t *p, size_t n, int fin, int64_t now)
{
    int64_t s = 0, t = 0;
    enum msg_kind k = classify(b, c, p, n, &s, &t);
    if (k == MSG_ACK) {
        if (c->state == CS_SUBSCRIBING)
            conn_became_live(b, c);
        return;
    }
    if (!fin) {
        c->in_frag = 1;
        c->frag_seq = k == MSG_DATA ? s : -1;
        c->frag_t = t;
        return;
    }
    if (k == MSG_DATA)
        account(b, c, s, t, now);
}

static void on_frame(struct bench *b, struct conn *c, int op, int fin, const uint8_t *p, size_t n, int64_t now)
{
    switch (op) {
    case 0x1:
    case 0x2:
        on_data(b, c, p, n, fin, now);
        break;
    case 0x0:
        if (c->in_frag && fin) {
            c->in_frag = 0;
            if (c->frag_seq >= 0)
                account(b, c, c->frag_seq, c->frag_t, now);
        }
        break;
    case 0x8:
        conn_lost(b, c, n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005);
        break;
    case 0x9:
        send_frame(b, c, 0xA, p, n);
        break;
    default:
        break;
    }
}

/* Consumes whole frames from buf; returns the bytes used. A data frame whose head has
 * arrived is accounted at once and the rest of its payload skipped as it comes. */
static size_t parse_frames(struct bench *b, struct conn *c, const uint8_t *buf, size_t have, int64_t now)
{
    size_t p = 0;
    if (c->skip) {
        size_t k = c->skip < have ? (size_t)c->skip : have;
        c->skip -= k;
        p = k;
    }
    while (p < have && c->state != CS_CLOSED) {
        const uint8_t *f = buf + p;
        size_t avail = have - p;
        if (avail < 2)
            break;
        int fin = f[0] & 0x80, op = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t hl = 2;
        if (f[1] & 0x80) {
            conn_lost(b, c, 1002); /* servers must not mask */
            break;
        }
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            hl = 10;
        }
        if (avail < hl)
            break;
        size_t got = avail - hl;
        if (got >= len) {
            on_frame(b, c, op, fin, f + hl, (size_t)len, now);
            p += hl + (size_t)len;
            continue;
        }
        if (op >= 8 || got < BENCH_HEAD_SCAN)
            break; /* wait for more: the partial frame fits in c->part */
        on_frame(b, c, op, fin, f + hl, got, now);
        c->skip = len - got;
        p = have;
    }
    return p;
}

static void conn_read(struct bench *b, struct conn *c)
{
    uint8_t *buf = b->rbuf;
    size_t have = c->part_len;
    if (have)
        memcpy(buf, c->part, have);
    ssize_t n = read(c->fd, buf + have, BENCH_RBUF - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_lost(b, c, 0);
        return;
    }
    have += (size_t)n;
    c->part_len = 0;
    int64_t now = bench_now_us();
    size_t used = 0;
    if (c->state == CS_HANDSHAKE) {
        used = handshake(b, c, buf, have);
        if (c->state == CS_CLOSED)
            return;
    }
    if (c->state >= CS_SUBSCRIBING && c->state != CS_CLOSED)
        used += parse_frames(b, c, buf + used, have - used, now);
    if (c->state == CS_CLOSED)
        return;
    size_t left = have - used;
    if (left) {
        if (left > BENCH_PART_MAX) {
            conn_lost(b, c, 1009);
            return;
        }
        if (!c->part && !(c->part = malloc(BENCH_PART_MAX)))
            bench_die("out of memory");
        memcpy(c->part, buf + used, left);
        c->part_len = (uint16_t)left;
    }
}

void conn_on_event(struct bench *b, struct conn *c, uint32_t events)
{
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            conn_fail(b, c, "connect", err);
            return;
        }
        send_request(b, c);
        return;
    }
    if (c->state == CS_CLOSED)
        return;
    conn_read(b, c);
}
