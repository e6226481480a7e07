/* Listening socket setup; see listen.h for why lws does not do it. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

int gw_listen_open(const char *host, int port, bool reuseport, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    int one = 1, fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : "0.0.0.0", portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen host %s: %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0)
        goto fail;
    freeaddrinfo(res);
    return fd;

fail:
    rc = -errno;
    snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

int gw_listen_accept_batch(int listen_fd, bool nodelay, int sndbuf, int max, void (*adopt)(void *ctx, int fd),
                           void *ctx)
{
    int n = 0;
    for (; n < max; n++) {
        int fd = gw_listen_accept(listen_fd, nodelay, sndbuf);
        if (fd < 0)
            return fd == -EAGAIN || fd == -EINTR || fd == -ECONNABORTED ? n : fd;
        adopt(ctx, fd);
    }
    return n;
}

int gw_listen_accept(int listen_fd, bool nodelay, int sndbuf)
{
    int one = 1;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    /* Best effort: a socket that refuses it still works, only slower. */
    if (nodelay)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (sndbuf > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    return fd;
}
