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
#include <event2/event.h>

#include "log.h"
#include "rconn_int.h"

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct gw_rconn *c = arg;
    rconn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        rconn_move(c, GW_RCONN_SETUP, "connected");
        if (c->setup_due == 0)
            rconn_go_ready(c, "connected, nothing to set up");
    } else if (what & BEV_EVENT_EOF) {
        /* What arrived before the close is still handed out first. */
        rconn_process_input(c);
        rconn_fail(c, "connection closed by Redis", NULL);
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
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
    else if (c->state == GW_RCONN_SETUP && c->setup_due == 0)
        rconn_go_ready(c, "connected, nothing to set up");
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

/* A non-blocking socket connecting to host:port or path; returns the fd and
 * whether connect() already finished, or -errno with errstr set. */
static int open_socket(struct gw_rconn *c, const char *host, int port, const char *path, bool *done)
{
    struct sockaddr_un un;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    const struct sockaddr *sa;
    socklen_t salen;
    int fd, rc, one = 1;

    if (path) {
        if (strlen(path) >= sizeof un.sun_path) {
            snprintf(c->errstr, sizeof c->errstr, "unix socket path too long");
            return -EINVAL;
        }
        memset(&un, 0, sizeof un);
        un.sun_family = AF_UNIX;
        memcpy(un.sun_path, path, strlen(path) + 1);
        sa = (const struct sockaddr *)&un;
        salen = sizeof un;
    } else {
        char ports[8];
        snprintf(ports, sizeof ports, "%d", port);
        rc = getaddrinfo(host, ports, &hints, &ai);
        if (rc != 0) {
            snprintf(c->errstr, sizeof c->errstr, "cannot resolve the host: %s", gai_strerror(rc));
            return -EHOSTUNREACH;
        }
        sa = ai->ai_addr;
        salen = ai->ai_addrlen;
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && !path)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* commands are small: no Nagle wait */
    rc = fd < 0 ? -1 : connect(fd, sa, salen);
    int e = errno;
    if (ai)
        freeaddrinfo(ai);
    *done = rc == 0;
    if (rc != 0 && (fd < 0 || e != EINPROGRESS)) {
        snprintf(c->errstr, sizeof c->errstr, "%s", strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    return fd;
}

int gw_rconn_connect(struct gw_rconn *c, const char *host, int port, const char *path)
{
    bool done = false;

    if (c->state != GW_RCONN_IDLE)
        return -EINVAL;
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
        /* A unix socket connects at once; on_ready still comes from the loop. */
        rconn_move(c, GW_RCONN_SETUP, "connected");
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


