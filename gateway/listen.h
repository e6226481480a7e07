/* The worker's own listening socket. lws 4.1.6 on Debian does not set
 * SO_REUSEPORT for LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE, so each worker opens
 * its own socket here (SO_REUSEPORT when there are several workers, so the
 * kernel spreads connections), lws watches it as a raw descriptor, and every
 * accepted connection is handed to lws with lws_adopt_socket_vhost(). */
#ifndef GW_LISTEN_H
#define GW_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

/* Binds and listens on host:port ("0.0.0.0", "::", a literal address or a
 * name). Returns the non-blocking fd (caller owns it), or -errno with a reason
 * in err. */
int gw_listen_open(const char *host, int port, bool reuseport, char *err, size_t errlen);

/* Accepts one pending connection as a non-blocking socket. nodelay turns
 * Nagle off (--tcp-nodelay): frames are written whole, so Nagle only trades
 * latency under load for fewer packets. sndbuf > 0 caps the kernel send
 * buffer (--socket-sndbuf): a client that stops reading otherwise parks up to
 * tcp_wmem's maximum (4 MiB) in the kernel before its own queue sees
 * anything. Socket options are best effort. Returns the fd, or -errno
 * (-EAGAIN when nothing is pending). */
int gw_listen_accept(int listen_fd, bool nodelay, int sndbuf);

/* Accepts up to max pending connections (bounded, so a connect storm cannot
 * starve the clients already connected) and hands each fd to adopt(ctx, fd),
 * which then owns it. Returns how many were accepted, or -errno when accept
 * failed for another reason than "nothing pending" (the caller logs it). */
int gw_listen_accept_batch(int listen_fd, bool nodelay, int sndbuf, int max, void (*adopt)(void *ctx, int fd),
                           void *ctx);

#endif
