/* ideal-fanout: the reference point the issue describes, a hand-written epoll fan-out
 * server with no protocol logic beyond what wsbench needs (wsgate protocol v1
 * subscribe + ack, message envelope). Each Redis message becomes one refcounted frame;
 * every client gets a pointer to it, and each client is written with one writev per
 * wake-up. It is not a product: it shows how close the machine lets a gateway get to
 * the kernel's cost, and where wsbench itself saturates.
 *
 *   ideal-fanout --port 9000 --redis-port 6379 [--prefix gw:]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_CHANS_PER_CLIENT 8
#define QUEUE_MAX 4096 /* frames per client; beyond that the client is dropped */
#define IOV_MAX_BATCH 64
#define CIN_MAX 4096

static void die(const char *what)
{
    fprintf(stderr, "ideal-fanout: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    if (!(p = realloc(p, n)))
        die("realloc");
    return p;
}

struct frame {
    uint32_t refs;
    uint32_t len;
    char data[];
};

static void frame_unref(struct frame *f)
{
    if (--f->refs == 0)
        free(f);
}

struct chan;

struct client {
    int fd;
    int ws;      /* upgrade done */
    int dirty;   /* on the flush list */
    int want_out;
    struct chan *chans[MAX_CHANS_PER_CLIENT];
    uint32_t slot[MAX_CHANS_PER_CLIENT]; /* index in chan->subs */
    int nchans;
    struct frame **q; /* ring */
    uint32_t qhead, qlen, qcap, qoff;
    char in[CIN_MAX];
    size_t inlen;
    struct client *next_dirty;
};

struct chan {
    char *name;
    size_t nlen;
    int live; /* Redis confirmed the SUBSCRIBE */
    struct client **subs;
    uint32_t nsubs, cap;
    struct { struct client *c; long long id; } *acks; /* waiting for live */
    uint32_t nacks, ackcap;
};

static struct chan **table; /* open addressing, power-of-two size */
static size_t tcap = 1024, tcount;
static int epfd, rfd;
static const char *prefix = "gw:";
static char *rout;
static size_t routlen, routcap;
static struct client *dirty_list;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct chan *chan_find(const char *name, size_t n, int create)
{
    if (!table)
        table = calloc(tcap, sizeof *table);
    size_t i = hash(name, n) & (tcap - 1);
    for (; table[i]; i = (i + 1) & (tcap - 1))
        if (table[i]->nlen == n && !memcmp(table[i]->name, name, n))
            return table[i];
    if (!create)
        return NULL;
    if ((tcount + 1) * 2 > tcap) {
        struct chan **old = table;
        size_t ocap = tcap;
        tcap *= 2;
        table = calloc(tcap, sizeof *table);
        for (size_t k = 0; k < ocap; k++)
            if (old[k]) {
                size_t j = hash(old[k]->name, old[k]->nlen) & (tcap - 1);
                while (table[j])
                    j = (j + 1) & (tcap - 1);
                table[j] = old[k];
            }
        free(old);
        return chan_find(name, n, create);
    }
    struct chan *c = calloc(1, sizeof *c);
    c->name = malloc(n + 1);
    memcpy(c->name, name, n);
    c->name[n] = 0;
    c->nlen = n;
    table[i] = c;
    tcount++;
    /* SUBSCRIBE once per channel; channels are never unsubscribed (a benchmark run is short) */
    char hdr[64];
    size_t pl = strlen(prefix);
    int h = snprintf(hdr, sizeof hdr, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n", pl + n);
    size_t need = (size_t)h + pl + n + 2;
    if (routlen + need > routcap)
        rout = xrealloc(rout, routcap = (routlen + need) * 2);
    memcpy(rout + routlen, hdr, (size_t)h);
    memcpy(rout + routlen + h, prefix, pl);
    memcpy(rout + routlen + h + pl, name, n);
    memcpy(rout + routlen + h + pl + n, "\r\n", 2);
    routlen += need;
    return c;
}

static void flush_redis(void)
{
    while (routlen) {
        ssize_t w = write(rfd, rout, routlen);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("redis write"); /* commands are tiny; a full buffer means Redis is gone */
        }
        memmove(rout, rout + w, routlen - (size_t)w);
        routlen -= (size_t)w;
    }
}

/* Unmasked server frame: header, then payload. */
static struct frame *frame_new(const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen)
{
    size_t n = alen + blen + clen, h = n < 126 ? 2 : n < 65536 ? 4 : 10;
    struct frame *f = malloc(sizeof *f + h + n);
    f->refs = 1;
    f->len = (uint32_t)(h + n);
    unsigned char *p = (unsigned char *)f->data;
    p[0] = 0x81;
    if (h == 2) {
        p[1] = (unsigned char)n;
    } else if (h == 4) {
        p[1] = 126;
        p[2] = (unsigned char)(n >> 8);
        p[3] = (unsigned char)n;
    } else {
        p[1] = 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    memcpy(p + h, a, alen);
    memcpy(p + h + alen, b, blen);
    memcpy(p + h + alen + blen, c, clen);
    return f;
}

static void client_close(struct client *c);

static void mark_dirty(struct client *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->next_dirty = dirty_list;
        dirty_list = c;
    }
}

static void enqueue(struct client *c, struct frame *f)
{
    if (c->fd < 0)
        return;
    if (c->qlen == c->qcap) {
        if (c->qcap >= QUEUE_MAX) {
            client_close(c);
            return;
        }
        uint32_t ncap = c->qcap ? c->qcap * 2 : 16;
        struct frame **nq = malloc(ncap * sizeof *nq);
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % (c->qcap ? c->qcap : 1)];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    f->refs++;
    c->q[(c->qhead + c->qlen++) % c->qcap] = f;
    mark_dirty(c);
}

static void send_small(struct client *c, const char *json, size_t n)
{
    struct frame *f = frame_new(json, n, "", 0, "", 0);
    enqueue(c, f);
    frame_unref(f);
}

static void ack(struct client *c, long long id)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%lld}", id);
    send_small(c, buf, (size_t)n);
}

static void flush_client(struct client *c)
{
    while (c->qlen) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (uint32_t i = 0; i < c->qlen && n < IOV_MAX_BATCH; i++) {
            struct frame *f = c->q[(c->qhead + i) % c->qcap];
            size_t off = i == 0 ? c->qoff : 0;
            iov[n].iov_base = f->data + off;
            iov[n++].iov_len = f->len - off;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            client_close(c);
            return;
        }
        size_t left = (size_t)w;
        while (left && c->qlen) {
            struct frame *f = c->q[c->qhead];
            size_t rest = f->len - c->qoff;
            if (left < rest) {
                c->qoff += (uint32_t)left;
                break;
            }
            left -= rest;
            c->qoff = 0;
            frame_unref(f);
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
        }
        if ((size_t)w < iov[0].iov_len)
            break;
    }
    int want = c->qlen > 0;
    if (want != c->want_out) {
        c->want_out = want;
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void flush_dirty(void)
{
    while (dirty_list) {
        struct client *c = dirty_list;
        dirty_list = c->next_dirty;
        c->dirty = 0;
        if (c->fd >= 0)
            flush_client(c);
        else
            free(c);
    }
}

static void client_close(struct client *c)
{
    if (c->fd < 0)
        return;
    for (int i = 0; i < c->nchans; i++) {
        struct chan *ch = c->chans[i];
        uint32_t s = c->slot[i];
        struct client *last = ch->subs[--ch->nsubs];
        ch->subs[s] = last;
        for (int k = 0; k < last->nchans; k++)
            if (last->chans[k] == ch)
                last->slot[k] = s;
        for (uint32_t k = 0; k < ch->nacks; k++)
            if (ch->acks[k].c == c)
                ch->acks[k--] = ch->acks[--ch->nacks];
    }
    while (c->qlen) {
        frame_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->q);
    close(c->fd);
    c->fd = -1;
    mark_dirty(c); /* freed from the flush list, never inside a callback */
}

static void subscribe(struct client *c, const char *name, size_t n, long long id)
{
    if (c->nchans == MAX_CHANS_PER_CLIENT)
        return;
    struct chan *ch = chan_find(name, n, 1);
    if (ch->nsubs == ch->cap)
        ch->subs = xrealloc(ch->subs, (ch->cap = ch->cap ? ch->cap * 2 : 8) * sizeof *ch->subs);
    c->chans[c->nchans] = ch;
    c->slot[c->nchans++] = ch->nsubs;
    ch->subs[ch->nsubs++] = c;
    if (ch->live) {
        ack(c, id);
    } else {
        if (ch->nacks == ch->ackcap)
            ch->acks = xrealloc(ch->acks, (ch->ackcap = ch->ackcap ? ch->ackcap * 2 : 8) * sizeof *ch->acks);
        ch->acks[ch->nacks].c = c;
        ch->acks[ch->nacks++].id = id;
    }
}

/* The only request wsbench sends: {"type":"subscribe","channel":"NAME","id":N}. */
static void on_text(struct client *c, const char *p, size_t n)
{
    const char *k = memmem(p, n, "\"channel\":\"", 11);
    if (!k || !memmem(p, n, "\"subscribe\"", 11))
        return;
    k += 11;
    const char *e = memchr(k, '"', n - (size_t)(k - p));
    if (!e)
        return;
    const char *idp = memmem(p, n, "\"id\":", 5);
    subscribe(c, k, (size_t)(e - k), idp ? strtoll(idp + 5, NULL, 10) : 0);
}

static const char RESPONSE[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static void on_client_read(struct client *c)
{
    ssize_t r = read(c->fd, c->in + c->inlen, CIN_MAX - c->inlen);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        client_close(c);
        return;
    }
    c->inlen += (size_t)r;
    size_t used = 0;
    if (!c->ws) {
        /* wsbench sends a fixed key, so the accept value is fixed too: a real
         * server would compute SHA-1; this one only serves the benchmark */
        char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!e) {
            if (c->inlen == CIN_MAX)
                client_close(c);
            return;
        }
        c->ws = 1;
        used = (size_t)(e - c->in) + 4;
        if (write(c->fd, RESPONSE, sizeof RESPONSE - 1) != (ssize_t)(sizeof RESPONSE - 1)) {
            client_close(c);
            return;
        }
    }
    for (;;) {
        unsigned char *f = (unsigned char *)c->in + used;
        size_t avail = c->inlen - used;
        if (avail < 6)
            break;
        size_t len = f[1] & 0x7f, h = 6;
        if (len == 126) {
            if (avail < 8)
                break;
            len = (size_t)f[2] << 8 | f[3];
            h = 8;
        } else if (len == 127) {
            client_close(c);
            return;
        }
        if (avail < h + len)
            break;
        unsigned char *mask = f + h - 4, *p = f + h;
        for (size_t i = 0; i < len; i++)
            p[i] ^= mask[i & 3];
        int op = f[0] & 0x0f;
        if (op == 1)
            on_text(c, (char *)p, len);
        else if (op == 8) {
            client_close(c);
            return;
        }
        used += h + len;
    }
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
    if (c->inlen == CIN_MAX)
        client_close(c);
}

/* RESP push messages on the subscriber connection:
 * *3 $9 subscribe $N chan :n   and   *3 $7 message $N chan $M payload */
static char *rin;
static size_t rinlen, rincap = 1 << 20;

static int bulk(const char **pp, const char *end, const char **s, size_t *n)
{
    const char *p = *pp;
    if (p >= end || *p != '$')
        return 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    size_t len = strtoul(p + 1, NULL, 10);
    if ((size_t)(end - (nl + 1)) < len + 2)
        return 0;
    *s = nl + 1;
    *n = len;
    *pp = nl + 1 + len + 2;
    return 1;
}

static void on_redis_read(void)
{
    ssize_t r = read(rfd, rin + rinlen, rincap - rinlen);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        fprintf(stderr, "ideal-fanout: Redis connection lost\n");
        exit(1);
    }
    rinlen += (size_t)r;
    const char *p = rin, *end = rin + rinlen;
    size_t pl = strlen(prefix);
    for (;;) {
        const char *q = p, *kind, *name, *payload;
        size_t klen, nlen, plen;
        if (q >= end || q[0] != '*')
            break;
        const char *star = memchr(q, '\n', (size_t)(end - q));
        if (!star)
            break;
        q = star + 1;
        if (!bulk(&q, end, &kind, &klen) || !bulk(&q, end, &name, &nlen))
            break;
        if (klen == 7 && !memcmp(kind, "message", 7)) {
            if (!bulk(&q, end, &payload, &plen))
                break;
            struct chan *ch = nlen >= pl ? chan_find(name + pl, nlen - pl, 0) : NULL;
            if (ch && ch->nsubs) {
                char head[256];
                int hn = snprintf(head, sizeof head, "{\"type\":\"message\",\"channel\":\"%.*s\",\"data\":",
                                  (int)(nlen - pl), name + pl);
                struct frame *f = frame_new(head, (size_t)hn, payload, plen, "}", 1);
                for (uint32_t i = 0; i < ch->nsubs; i++)
                    enqueue(ch->subs[i], f);
                frame_unref(f);
            }
        } else {
            const char *nl = memchr(q, '\n', (size_t)(end - q)); /* :count */
            if (!nl)
                break;
            q = nl + 1;
            struct chan *ch = nlen >= pl ? chan_find(name + pl, nlen - pl, 0) : NULL;
            if (ch && klen == 9 && !memcmp(kind, "subscribe", 9)) {
                ch->live = 1;
                for (uint32_t k = 0; k < ch->nacks; k++)
                    ack(ch->acks[k].c, ch->acks[k].id);
                ch->nacks = 0;
            }
        }
        p = q;
    }
    memmove(rin, p, (size_t)(end - p));
    rinlen = (size_t)(end - p);
    if (rinlen == rincap)
        rin = xrealloc(rin, rincap *= 2);
}

int main(int argc, char **argv)
{
    int port = 0, rport = 6379;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis-port"))
            rport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
    }
    if (!port) {
        fprintf(stderr, "usage: ideal-fanout --port P [--redis-port P] [--prefix gw:]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    rin = malloc(rincap);

    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)rport) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((rfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(rfd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect to Redis");
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_port = htons((uint16_t)port);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0)
        die("listen");
    epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    static int rtag;
    ev.data.ptr = &rtag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, rfd, &ev);
    fprintf(stderr, "ideal-fanout listening on 127.0.0.1:%d\n", port);

    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(epfd, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (!p) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct client *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
                }
            } else if (p == &rtag) {
                on_redis_read();
            } else {
                struct client *c = p;
                if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                    mark_dirty(c);
                if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    on_client_read(c);
            }
        }
        flush_redis();
        flush_dirty();
    }
}
