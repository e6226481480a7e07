/* TLS to Redis (rediss://): the client SSL_CTX built from the configuration,
 * and the one-line reason a TLS connection failed. It owns nothing past the
 * context it returns and opens no sockets (rconn_net.c runs the TLS
 * bufferevents). Any thread; no state. */
#ifndef GW_RTLS_H
#define GW_RTLS_H

#include <stddef.h>

#include "config.h"

struct ssl_ctx_st;
struct ssl_st;

/* Builds the client context for cfg: TLS 1.2 or newer; the peer verified
 * against --redis-tls-ca-file or the system CA store, unless
 * --redis-tls-insecure; the client certificate and key when given (checked
 * against each other). Returns 0 with *out a new context the caller frees
 * (SSL_CTX_free), or -EINVAL with *out NULL and a one-line reason in err
 * (file and OpenSSL's words). */
int gw_rtls_ctx_new(const struct gw_config *cfg, struct ssl_ctx_st **out, char *err, size_t errlen);

/* Prepares ssl (not yet connected) for host: SNI when host is a name, and,
 * when its context verifies peers, the name (or IP address) the certificate
 * must carry. Returns 0 or -EINVAL (OpenSSL refused the name). */
int gw_rtls_prepare(struct ssl_st *ssl, const char *host);

/* Why a TLS connection failed, for one log line: the certificate
 * verification result when it failed, else OpenSSL's first error (err, from
 * the connection's error queue; 0 when none), else fallback. */
void gw_rtls_reason(const struct ssl_st *ssl, unsigned long err, const char *fallback, char *buf, size_t len);

#endif
