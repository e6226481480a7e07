/* TLS to Redis: the client context and the reasons of failures (rtls.h). */
#include "rtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "text.h"

/* OpenSSL's first queued error as text (and the queue emptied). */
static const char *ssl_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e)
        return "no detail from OpenSSL";
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

int gw_rtls_ctx_new(const struct gw_config *cfg, struct ssl_ctx_st **out, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    *out = NULL;
    if (!ctx) {
        gw_text_err(err, errlen, "cannot create a TLS context: %s", ssl_error(why, sizeof why));
        return -EINVAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (cfg->redis_tls_insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->redis_tls_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->redis_tls_ca_file, NULL) != 1
                                   : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            gw_text_err(err, errlen, "--redis-tls-ca-file %s: %s",
                        cfg->redis_tls_ca_file ? cfg->redis_tls_ca_file : "(system store)",
                        ssl_error(why, sizeof why));
            goto fail;
        }
    }
    if (cfg->redis_tls_cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_tls_cert_file) != 1) {
            gw_text_err(err, errlen, "--redis-tls-cert-file %s: %s", cfg->redis_tls_cert_file,
                        ssl_error(why, sizeof why));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->redis_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            gw_text_err(err, errlen, "--redis-tls-key-file %s: %s", cfg->redis_tls_key_file,
                        ssl_error(why, sizeof why));
            goto fail;
        }
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -EINVAL;
}

static bool is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int gw_rtls_prepare(struct ssl_st *ssl, const char *host)
{
    bool ip = is_ip(host);

    /* RFC 6066: SNI carries names only, never addresses. */
    if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
        return -EINVAL;
    if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
        return 0;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -EINVAL;
    /* No partial wildcards ("r*.example"): what browsers accept too. */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, host) == 1 ? 0 : -EINVAL;
}

void gw_rtls_reason(const struct ssl_st *ssl, unsigned long err, const char *fallback, char *buf, size_t len)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char e[256];

    if (v != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return;
    }
    if (err) {
        ERR_error_string_n(err, e, sizeof e);
        snprintf(buf, len, "%s", e);
        return;
    }
    snprintf(buf, len, "%s", fallback);
}
