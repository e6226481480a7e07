/* The socket under a Redis connection (rconn.h): resolving, connecting,
 * adopting a connected socket, the socket's events, pausing reads. The
 * bufferevent is made here and only here, so a TLS bufferevent
 * (bufferevent_openssl) replaces the plain one without rconn.c knowing.
 * Calls down into rconn.c (rconn_int.h), never the other way. */
#define GW_LOG_MODULE "redis"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "log.h"
#include "rconn_int.h"
#include "rtls.h"

static void on_event(struct bufferevent *bev, short what, void *arg);

/* The TCP connection is up: TLS starts on it, replacing the plain
 * bufferevent by a TLS one on the same socket, with what was queued. */
static void start_tls(struct gw_rconn *c)
{
    struct bufferevent *plain = c->bev, *tls;
    int fd = (int)bufferevent_getfd(plain);
    SSL *ssl = SSL_new(c->tls_ctx);

    if (!ssl || gw_rtls_prepare(ssl, c->tls_name) != 0) {
        gw_rtls_reason(NULL, ERR_get_error(), "OpenSSL refused the connection's settings", c->errstr,
                       sizeof c->errstr);
        SSL_free(ssl);
        rconn_fail(c, "TLS setup failed", c->errstr);
        return;
    }
    tls = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tls) {
        SSL_free(ssl);
        rconn_fail(c, "TLS setup failed", "libevent could not make a TLS bufferevent");
        return;
    }
    /* Redis may close without close_notify; that is an EOF, not an attack. */
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    bufferevent_setfd(plain, -1); /* the socket is tls's now: freeing plain must not close it */
    evbuffer_add_buffer(bufferevent_get_output(tls), bufferevent_get_output(plain));
    bufferevent_free(plain);
    c->bev = tls;
    c->tls_on = true;
    bufferevent_setcb(tls, rconn_on_read, NULL, on_event, c);
    bufferevent_enable(tls, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

static void connected(struct gw_rconn *c)
{
    if (c->tls_ctx && !c->tls_on) {
        start_tls(c);
        return;
    }
    rconn_move(c, GW_RCONN_SETUP, c->tls_on ? "TLS handshake done" : "connected");
    if (c->setup_due == 0)
        rconn_go_ready(c, "connected, nothing to set up");
}

/* One line on what went wrong with a TLS connection. */
static void tls_failed(struct gw_rconn *c, struct bufferevent *bev, const char *fallback)
{
    gw_rtls_reason(bufferevent_openssl_get_ssl(bev), bufferevent_get_openssl_error(bev), fallback, c->errstr,
                   sizeof c->errstr);
    rconn_fail(c, c->state == GW_RCONN_CONNECTING ? "TLS handshake failed" : "TLS error", c->errstr);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct gw_rconn *c = arg;
    rconn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        connected(c);
    } else if (what & BEV_EVENT_EOF) {
        /* What arrived before the close is still handed out first. */
        rconn_process_input(c);
        if (c->tls_on && c->state == GW_RCONN_CONNECTING)
            tls_failed(c, bev, "closed by Redis during the handshake");
        else
            rconn_fail(c, "connection closed by Redis", NULL);
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        if (c->tls_on)
            tls_failed(c, bev, e ? strerror(e) : "the TLS connection broke");
        else
            rconn_fail(c, c->state == GW_RCONN_CONNECTING ? "connect failed" : "socket error", strerror(e));
    }
    rconn_leave(c);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_rconn *c = arg;
    rconn_enter(c);
    if (c->connect_failed)
        rconn_fail(c, "connect failed", c->errstr);
    else if (c->state == GW_RCONN_CONNECTING)
        connected(c);
    rconn_leave(c);
}

static int take_socket(struct gw_rconn *c, int fd)
{
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        if (fd >= 0)
            close(fd);
        snprintf(c->errstr, sizeof c->errstr, "libevent could not take the socket");
        return -ENOMEM;
    }
    bufferevent_setcb(c->bev, rconn_on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
    return 0;
}

int gw_rconn_adopt(struct gw_rconn *c, int fd)
{
    if (c->state != GW_RCONN_IDLE) {
        close(fd);
        return -EINVAL;
    }
    evutil_make_socket_nonblocking(fd);
    int rc = take_socket(c, fd);
    if (rc != 0)
        return rc;
    rconn_move(c, GW_RCONN_SETUP, "adopted a connected socket");
    rconn_queue_setup(c);
    if (c->setup_due == 0)
        rconn_move(c, GW_RCONN_READY, "nothing to set up");
    return 0;
}

/* Starts a non-blocking connect of a new socket to sa. Returns the fd (with
 * *done when connect() already finished) or -errno. */
static int start_connect(const struct sockaddr *sa, socklen_t salen, bool *done)
{
    int one = 1, fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (sa->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* commands are small: no Nagle wait */
    int rc = connect(fd, sa, salen);
    int e = errno;
    *done = rc == 0;
    if (rc != 0 && e != EINPROGRESS) {
        close(fd);
        return -e;
    }
    return fd;
}

/* A non-blocking socket connecting to host:port or path: each address the
 * name resolves to in turn while connect() fails at once (localhost may
 * give ::1 first to a Redis bound to 127.0.0.1 only). Returns the fd and
 * whether connect() already finished, or -errno with errstr set. */
static int open_socket(struct gw_rconn *c, const char *host, int port, const char *path, bool *done)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int fd;

    if (path) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof un.sun_path) {
            snprintf(c->errstr, sizeof c->errstr, "unix socket path too long");
            return -EINVAL;
        }
        memcpy(un.sun_path, path, strlen(path) + 1);
        fd = start_connect((const struct sockaddr *)&un, sizeof un, done);
    } else {
        char ports[8];
        snprintf(ports, sizeof ports, "%d", port);
        int rc = getaddrinfo(host, ports, &hints, &ai);
        if (rc != 0) {
            snprintf(c->errstr, sizeof c->errstr, "cannot resolve the host: %s", gai_strerror(rc));
            return -EHOSTUNREACH;
        }
        fd = -EHOSTUNREACH;
        for (const struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
            fd = start_connect(a->ai_addr, a->ai_addrlen, done);
        freeaddrinfo(ai);
    }
    if (fd < 0)
        snprintf(c->errstr, sizeof c->errstr, "%s", strerror(-fd));
    return fd;
}

int gw_rconn_connect(struct gw_rconn *c, const char *host, int port, const char *path)
{
    bool done = false;

    if (c->state != GW_RCONN_IDLE)
        return -EINVAL;
    if (c->tls_ctx && !c->tls_name)
        c->tls_name = gw_xstrdup(host ? host : "localhost");
    c->kick = event_new(c->base, -1, 0, on_kick, c);
    if (!c->kick) {
        LOG_ERR("out of memory creating a redis connection");
        abort();
    }
    int fd = open_socket(c, host, port, path, &done);
    /* A socket that could not even start connecting still gets a buffer, so
     * commands queue as on any connecting socket; the failure is reported
     * from the loop like any other (one path for the owner). */
    int rc = take_socket(c, fd < 0 ? -1 : fd);
    if (rc != 0) {
        LOG_ERR("redis conn=%s libevent could not make a bufferevent", c->name);
        abort();
    }
    if (fd < 0) {
        c->connect_failed = true;
        rconn_move(c, GW_RCONN_CONNECTING, "connecting");
        event_active(c->kick, 0, 0);
    } else if (done) {
        /* A unix socket connects at once; the rest still comes from the loop. */
        rconn_move(c, GW_RCONN_CONNECTING, "connecting");
        event_active(c->kick, 0, 0);
    } else {
        rconn_move(c, GW_RCONN_CONNECTING, "connecting");
        if (bufferevent_socket_connect(c->bev, NULL, 0) != 0) {
            snprintf(c->errstr, sizeof c->errstr, "libevent could not watch the connect");
            c->connect_failed = true;
            event_active(c->kick, 0, 0);
        }
    }
    rconn_queue_setup(c);
    return 0;
}

void gw_rconn_pause(struct gw_rconn *c, bool pause)
{
    c->paused = pause;
    if (!c->bev)
        return;
    if (pause)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}


