/* The publisher: a fixed-rate schedule of messages, each carrying its sequence number
 * and CLOCK_MONOTONIC send time, written as pipelined Redis PUBLISH commands (or, for
 * nchan, pipelined HTTP POSTs) over non-blocking connections, many per syscall. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "bench.h"

#define PUB_INBUF (64 * 1024)
/* One tick publishes at most this many messages so the loop keeps reading sockets;
 * a schedule that falls further behind is caught up over the next ticks. */
#define PUB_MAX_PER_TICK 20000

static void obuf_reserve(struct obuf *o, size_t extra)
{
    if (o->off && o->off == o->len)
        o->off = o->len = 0;
    if (o->len + extra <= o->cap)
        return;
    if (o->off) {
        memmove(o->data, o->data + o->off, o->len - o->off);
        o->len -= o->off;
        o->off = 0;
        if (o->len + extra <= o->cap)
            return;
    }
    size_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + extra)
        cap *= 2;
    if (!(o->data = realloc(o->data, cap)))
        bench_die("out of memory");
    o->cap = cap;
}

static char *put_u64(char *d, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *d++ = tmp[--n];
    return d;
}

static char *put_str(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

#define PUT_LIT(d, lit) put_str((d), (lit), sizeof(lit) - 1)

static int connect_blocking(const struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* CRC16/XMODEM (polynomial 0x1021, initial 0), Redis Cluster's key hash. */
static uint16_t crc16(const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)s[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* A key's slot: the hash tag between the first '{' and the next '}' if non-empty, else all. */
static int key_slot(const char *k, size_t n)
{
    const char *o = memchr(k, '{', n);
    if (o) {
        const char *c = memchr(o + 1, '}', n - (size_t)(o + 1 - k));
        if (c && c > o + 1)
            return crc16(o + 1, (size_t)(c - o - 1)) & 16383;
    }
    return crc16(k, n) & 16383;
}

/* The master (index into o.cluster, so into b->pubs) that owns PREFIX+channel's slot. */
static int chan_owner(struct bench *b, const struct chan *ch)
{
    char key[128];
    size_t plen = strlen(b->o.redis_prefix);
    if (plen + ch->name_len > sizeof key)
        bench_die("channel name too long for the slot map");
    memcpy(key, b->o.redis_prefix, plen);
    memcpy(key + plen, ch->name, ch->name_len);
    int slot = key_slot(key, plen + ch->name_len);
    for (int i = 0; i < b->o.ncluster; i++)
        if (slot >= b->o.cluster[i].lo && slot <= b->o.cluster[i].hi)
            return i;
    bench_die("--redis-cluster: no master owns slot %d", slot);
}

void pub_open(struct bench *b)
{
    int nchan = b->o.target == TARGET_NCHAN;
    b->npubs = nchan ? b->o.nchan_pub_conns : b->o.ncluster ? b->o.ncluster : 1;
    b->pubs = calloc((size_t)b->npubs, sizeof *b->pubs);
    if (!b->pubs)
        bench_die("out of memory");
    const struct sockaddr_in *dst = nchan ? (b->o.have_nchan_pub ? &b->o.nchan_pub : &b->o.servers[0]) : &b->o.redis;
    for (int i = 0; i < b->npubs; i++) {
        struct pubconn *p = &b->pubs[i];
        p->ep_kind = EP_PUB;
        if (b->o.ncluster)
            dst = &b->o.cluster[i].addr;
        p->fd = connect_blocking(dst);
        if (p->fd < 0)
            bench_die("cannot connect the publisher to %s port %u: %s", nchan ? "nchan" : "Redis",
                      ntohs(dst->sin_port), strerror(errno));
        if (!(p->in = malloc(PUB_INBUF)))
            bench_die("out of memory");
        bench_ep_add(b, p->fd, EPOLLIN, p);
    }
    size_t pad = (size_t)b->o.size + 64;
    if (!(b->payload_pad = malloc(pad)))
        bench_die("out of memory");
    memset(b->payload_pad, 'x', pad);
}

void pub_close(struct bench *b)
{
    for (int i = 0; i < b->npubs; i++) {
        struct pubconn *p = &b->pubs[i];
        if (p->fd >= 0) {
            bench_ep_del(b, p->fd);
            close(p->fd);
        }
        free(p->in);
        free(p->out.data);
    }
    free(b->pubs);
    b->pubs = NULL;
    b->npubs = 0;
    free(b->payload_pad);
    b->payload_pad = NULL;
}

static void pub_flush(struct bench *b, struct pubconn *p)
{
    while (p->out.off < p->out.len) {
        ssize_t n = write(p->fd, p->out.data + p->out.off, p->out.len - p->out.off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                bench_die("publisher write: %s", strerror(errno));
            break;
        }
        p->out.off += (size_t)n;
    }
    int want = p->out.off < p->out.len;
    if (want != p->want_out) {
        p->want_out = (uint8_t)want;
        bench_ep_mod(b, p->fd, EPOLLIN | (want ? EPOLLOUT : 0), p);
    }
}

/* Appends one message for a random channel (or the only one) to its connection. */
static void publish_one(struct bench *b, int64_t now)
{
    uint32_t ci = 0;
    if (b->nchans > 1) {
        b->rng ^= b->rng << 13;
        b->rng ^= b->rng >> 7;
        b->rng ^= b->rng << 17;
        ci = (uint32_t)(b->rng % (uint64_t)b->nchans);
    }
    struct chan *ch = &b->chans[ci];
    int64_t seq = ++ch->seq;

    char head[64], *h = head;
    h = PUT_LIT(h, "{\"s\":");
    h = put_u64(h, (uint64_t)seq);
    h = PUT_LIT(h, ",\"t\":");
    h = put_u64(h, (uint64_t)now);
    h = PUT_LIT(h, ",\"p\":\"");
    size_t hlen = (size_t)(h - head);
    size_t total = (size_t)b->o.size > hlen + 2 ? (size_t)b->o.size : hlen + 2;
    size_t pad = total - hlen - 2;

    /* One channel always goes through the same connection: nchan handles its
     * connections in parallel, so spreading a channel would reorder it. */
    struct pubconn *p;
    if (b->o.ncluster) {
        if (!ch->owner)
            ch->owner = (uint8_t)(1 + chan_owner(b, ch));
        p = &b->pubs[ch->owner - 1];
    } else {
        p = &b->pubs[ci % (uint32_t)b->npubs];
    }
    size_t plen = strlen(b->o.redis_prefix);
    obuf_reserve(&p->out, total + plen + ch->name_len + 200);
    char *d = p->out.data + p->out.len;
    if (b->o.target == TARGET_NCHAN) {
        d = PUT_LIT(d, "POST ");
        d = PUT_LIT(d, "/pub/");
        d = put_str(d, ch->name, ch->name_len);
        d = PUT_LIT(d, " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ");
        d = put_u64(d, total);
        d = PUT_LIT(d, "\r\n\r\n");
    } else {
        if (b->o.ncluster)
            d = PUT_LIT(d, "*3\r\n$8\r\nSPUBLISH\r\n$");
        else
            d = PUT_LIT(d, "*3\r\n$7\r\nPUBLISH\r\n$");
        d = put_u64(d, plen + ch->name_len);
        d = PUT_LIT(d, "\r\n");
        d = put_str(d, b->o.redis_prefix, plen);
        d = put_str(d, ch->name, ch->name_len);
        d = PUT_LIT(d, "\r\n$");
        d = put_u64(d, total);
        d = PUT_LIT(d, "\r\n");
    }
    d = put_str(d, head, hlen);
    d = put_str(d, b->payload_pad, pad);
    d = PUT_LIT(d, "\"}");
    if (b->o.target != TARGET_NCHAN)
        d = PUT_LIT(d, "\r\n");
    p->out.len = (size_t)(d - p->out.data);
    p->sent++;
    b->pub_count++;
}

void pub_start(struct bench *b, double rate)
{
    b->pub_rate = rate;
    b->pub_t0 = bench_now_us();
    b->pub_count = 0;
    b->publishing = rate > 0;
}

void pub_stop(struct bench *b)
{
    b->publishing = 0;
}

uint64_t pub_outstanding(const struct bench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->npubs; i++)
        n += b->pubs[i].sent - b->pubs[i].replies;
    return n;
}

size_t pub_backlog_bytes(const struct bench *b)
{
    size_t n = 0;
    for (int i = 0; i < b->npubs; i++)
        n += b->pubs[i].out.len - b->pubs[i].out.off;
    return n;
}

int pub_tick(struct bench *b, int64_t now)
{
    double elapsed = (double)(now - b->pub_t0) / 1e6;
    uint64_t due = (uint64_t)(elapsed * b->pub_rate);
    if (due > b->pub_count) {
        uint64_t n = due - b->pub_count;
        if ((double)n > b->pub_rate * 0.010 + 1)
            b->ph.sched_late++;
        if (n > PUB_MAX_PER_TICK)
            n = PUB_MAX_PER_TICK;
        for (uint64_t i = 0; i < n; i++)
            publish_one(b, now);
        for (int i = 0; i < b->npubs; i++)
            if (b->pubs[i].out.len > b->pubs[i].out.off)
                pub_flush(b, &b->pubs[i]);
        size_t backlog = pub_backlog_bytes(b);
        if (backlog > b->ph.max_pub_backlog_bytes)
            b->ph.max_pub_backlog_bytes = backlog;
        uint64_t outstanding = pub_outstanding(b);
        if (outstanding > b->ph.max_pub_outstanding)
            b->ph.max_pub_outstanding = outstanding;
    }
    double next_s = (double)(b->pub_count + 1) / b->pub_rate;
    int64_t wait_us = b->pub_t0 + (int64_t)(next_s * 1e6) - bench_now_us();
    return wait_us <= 0 ? 0 : (int)((wait_us + 999) / 1000);
}

/* RESP: PUBLISH and SPUBLISH answer an integer (receivers) or an error, one line each. */
static size_t parse_resp(struct bench *b, struct pubconn *p)
{
    size_t i = 0;
    for (;;) {
        char *nl = memchr(p->in + i, '\n', p->in_len - i);
        if (!nl)
            break;
        if (p->in[i] == ':') {
            p->receivers += strtoll(p->in + i + 1, NULL, 10);
        } else {
            if (++p->errors <= 3)
                bench_log(b, "Redis replied: %.*s", (int)(nl - (p->in + i)), p->in + i);
        }
        p->replies++;
        i = (size_t)(nl - p->in) + 1;
    }
    return i;
}

/* HTTP/1.1 responses to pipelined POSTs, in order; only status and length matter. */
static size_t parse_http(struct bench *b, struct pubconn *p)
{
    size_t i = 0;
    for (;;) {
        char *start = p->in + i;
        size_t avail = p->in_len - i;
        char *end = memmem(start, avail, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end - start) + 4;
        size_t clen = 0;
        for (char *l = start; l < end;) {
            char *eol = memmem(l, (size_t)(end - l) + 2, "\r\n", 2);
            if (!eol)
                break;
            if ((size_t)(eol - l) > 15 && strncasecmp(l, "Content-Length:", 15) == 0)
                clen = strtoull(l + 15, NULL, 10);
            l = eol + 2;
        }
        if (head + clen > avail)
            break;
        int status = avail > 12 ? atoi(start + 9) : 0;
        if (status < 200 || status >= 300) {
            if (++p->errors <= 3)
                bench_log(b, "nchan publisher replied: %.*s", (int)(memchr(start, '\r', head) ? (char *)memchr(start, '\r', head) - start : 0), start);
        }
        p->replies++;
        i += head + clen;
    }
    return i;
}

void pub_on_event(struct bench *b, struct pubconn *p, uint32_t events)
{
    if (events & EPOLLOUT)
        pub_flush(b, p);
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    for (;;) {
        if (p->in_len == PUB_INBUF)
            bench_die("publisher reply larger than %d bytes", PUB_INBUF);
        ssize_t n = read(p->fd, p->in + p->in_len, PUB_INBUF - p->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0)
            bench_die("the publisher connection was closed by the %s (%s)",
                      b->o.target == TARGET_NCHAN ? "nchan server" : "Redis server",
                      n < 0 ? strerror(errno) : "EOF");
        p->in_len += (size_t)n;
        size_t used = b->o.target == TARGET_NCHAN ? parse_http(b, p) : parse_resp(b, p);
        memmove(p->in, p->in + used, p->in_len - used);
        p->in_len -= used;
        if ((size_t)n < PUB_INBUF / 2)
            break;
    }
}
