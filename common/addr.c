/* Address parsers for the two endpoints a node has: the address it listens on
 * and the Redis server it talks to. Pure string work; the only allocations are
 * the owned strings handed back. */
#include "addr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "text.h"



/* ---- listen address ---- */

int gw_addr_parse_listen(const char *s, char **host, int *port, char *err, size_t errlen)
{
    const char *h, *hend, *p;
    long long v;

    *host = NULL;
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (!hend || hend == h)
            return gw_text_err(err, errlen, "bad IPv6 address in \"%s\" (expected [v6]:port)", s);
        if (hend[1] != ':')
            return gw_text_err(err, errlen, "expected [v6]:port, got \"%s\"", s);
        p = hend + 2;
    } else {
        h = s;
        hend = strrchr(s, ':');
        if (!hend)
            return gw_text_err(err, errlen, "expected host:port, [v6]:port or :port, got \"%s\"",
                           s);
        if (memchr(h, ':', (size_t)(hend - h)))
            return gw_text_err(err, errlen, "IPv6 addresses need brackets, e.g. [::1]:8080");
        p = hend + 1;
    }
    if (gw_text_parse_ll(p, &v) != 0 || v < 1 || v > 65535)
        return gw_text_err(err, errlen, "expected a port in 1..65535, got \"%s\"", p);
    *port = (int)v;
    *host = hend == h ? gw_xstrdup("0.0.0.0") : gw_xstrndup(h, (size_t)(hend - h));
    return 0;
}

/* ---- Redis URL ---- */

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new string, or returns NULL when the
 * encoding is broken or decodes to a NUL byte. */
static char *pct_decode(const char *s, size_t len)
{
    char *out = gw_xmalloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* s[0..len) is "[user]:password" (the part before '@'). */
static int parse_userinfo(const char *s, size_t len, struct gw_redis_addr *addr, char *err,
                          size_t errlen)
{
    const char *colon = memchr(s, ':', len);
    size_t ulen, plen;

    if (!colon)
        return gw_text_err(err, errlen,
                       "expected [user]:password@ before the host (a password needs a ':')");
    ulen = (size_t)(colon - s);
    plen = len - ulen - 1;
    if (ulen && !(addr->username = pct_decode(s, ulen)))
        return gw_text_err(err, errlen, "bad percent-encoding in the Redis user name");
    if (plen && !(addr->password = pct_decode(colon + 1, plen)))
        return gw_text_err(err, errlen, "bad percent-encoding in the Redis password");
    if (addr->username && !addr->password)
        return gw_text_err(err, errlen, "a Redis user name needs a password");
    return 0;
}

static int parse_uint(const char *s, size_t len, long long max, long long *out)
{
    char buf[24];

    if (len == 0 || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == '-' || gw_text_parse_ll(buf, out) != 0 || *out > max)
        return -EINVAL;
    return 0;
}

static int parse_tcp_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    size_t alen = strcspn(s, "/?");
    const char *at = NULL, *host, *hend, *port = NULL, *aend = s + alen;
    long long v;

    for (const char *p = s; p < aend; p++) {
        if (*p == '@')
            at = p; /* the last '@': an unencoded '@' in a password still works */
    }
    if (at && parse_userinfo(s, (size_t)(at - s), addr, err, errlen) != 0)
        return -EINVAL;
    host = at ? at + 1 : s;
    if (*host == '[') {
        host++;
        hend = memchr(host, ']', (size_t)(aend - host));
        if (!hend)
            return gw_text_err(err, errlen, "missing ']' after the IPv6 address in the Redis URL");
        if (hend + 1 < aend && hend[1] != ':')
            return gw_text_err(err, errlen, "unexpected text after ']' in the Redis URL");
        port = hend + 1 < aend ? hend + 2 : NULL;
    } else {
        hend = memchr(host, ':', (size_t)(aend - host));
        if (hend)
            port = hend + 1;
        else
            hend = aend;
    }
    if (hend == host)
        return gw_text_err(err, errlen, "empty host in the Redis URL");
    addr->port = 6379;
    if (port) {
        if (parse_uint(port, (size_t)(aend - port), 65535, &v) != 0 || v == 0)
            return gw_text_err(err, errlen, "bad port \"%.*s\" in the Redis URL (expected 1..65535)",
                           (int)(aend - port), port);
        addr->port = (int)v;
    }
    addr->host = gw_xstrndup(host, (size_t)(hend - host));
    if (*aend == '?')
        return gw_text_err(err, errlen, "query parameters are not supported in redis:// URLs");
    if (*aend == '/' && aend[1] != '\0') {
        if (parse_uint(aend + 1, strlen(aend + 1), INT32_MAX, &v) != 0)
            return gw_text_err(err, errlen,
                           "bad database \"%.32s\" in the Redis URL (expected a number)",
                           aend + 1);
        addr->db = (int)v;
    }
    return 0;
}

/* One "host[:port]" or "[v6][:port]" of a cluster URL's seed list: h[0..len). */
static int parse_seed(const char *h, size_t len, struct gw_redis_seed *seed, char *err, size_t errlen)
{
    const char *end = h + len, *hend, *port = NULL;
    long long v;

    if (len && *h == '[') {
        h++;
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend)
            return gw_text_err(err, errlen, "missing ']' after an IPv6 seed in the Redis URL");
        if (hend + 1 < end && hend[1] != ':')
            return gw_text_err(err, errlen, "unexpected text after ']' in the Redis URL");
        port = hend + 1 < end ? hend + 2 : NULL;
    } else {
        hend = memchr(h, ':', len);
        if (hend)
            port = hend + 1;
        else
            hend = end;
    }
    if (hend == h)
        return gw_text_err(err, errlen, "empty seed host in the Redis cluster URL");
    seed->port = 6379;
    if (port) {
        if (parse_uint(port, (size_t)(end - port), 65535, &v) != 0 || v == 0)
            /* Not echoed: a password missing its '@' would look like a port. */
            return gw_text_err(err, errlen, "bad seed port in the Redis cluster URL (expected 1..65535)");
        seed->port = (int)v;
    }
    seed->host = gw_xstrndup(h, (size_t)(hend - h));
    return 0;
}

/* The part after "redis+cluster://": [userinfo@]seed[,seed...][/[0]]. */
static int parse_cluster_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    size_t alen = strcspn(s, "/?");
    const char *at = NULL, *p, *aend = s + alen;

    for (p = s; p < aend; p++) {
        if (*p == '@')
            at = p;
    }
    if (at && parse_userinfo(s, (size_t)(at - s), addr, err, errlen) != 0)
        return -EINVAL;
    addr->cluster = true;
    for (p = at ? at + 1 : s; p <= aend; p++) {
        const char *comma = memchr(p, ',', (size_t)(aend - p));
        const char *e = comma ? comma : aend;
        if (addr->n_seeds == GW_ADDR_MAX_SEEDS)
            return gw_text_err(err, errlen, "more than %d seeds in the Redis cluster URL", GW_ADDR_MAX_SEEDS);
        addr->seeds = gw_xrealloc(addr->seeds, (addr->n_seeds + 1) * sizeof *addr->seeds);
        addr->seeds[addr->n_seeds] = (struct gw_redis_seed){ NULL, 0 };
        if (parse_seed(p, (size_t)(e - p), &addr->seeds[addr->n_seeds++], err, errlen) != 0)
            return -EINVAL;
        p = e;
    }
    addr->host = gw_xstrdup(addr->seeds[0].host);
    addr->port = addr->seeds[0].port;
    if (*aend == '?')
        return gw_text_err(err, errlen, "query parameters are not supported in Redis cluster URLs");
    if (*aend == '/' && aend[1] != '\0' && strcmp(aend + 1, "0") != 0)
        return gw_text_err(err, errlen, "a Redis Cluster has only database 0 (no /db in a cluster URL)");
    return 0;
}

static int parse_unix_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    const char *at = strchr(s, '@');
    const char *path, *q;
    long long v;

    /* Only an '@' before the path's first '/' starts user info. */
    if (at && (!strchr(s, '/') || at < strchr(s, '/'))) {
        if (parse_userinfo(s, (size_t)(at - s), addr, err, errlen) != 0)
            return -EINVAL;
        s = at + 1;
    }
    path = s;
    if (*path != '/')
        return gw_text_err(err, errlen, "the socket path must be absolute: unix:///path/to.sock");
    q = strchr(path, '?');
    if ((q ? (size_t)(q - path) : strlen(path)) < 2)
        return gw_text_err(err, errlen, "empty socket path in the Redis URL");
    addr->unix_path = q ? gw_xstrndup(path, (size_t)(q - path)) : gw_xstrdup(path);
    if (q) {
        if (strncmp(q + 1, "db=", 3) != 0)
            return gw_text_err(err, errlen, "unknown query \"%.32s\" in the Redis URL (only db=N)",
                           q + 1);
        if (parse_uint(q + 4, strlen(q + 4), INT32_MAX, &v) != 0)
            return gw_text_err(err, errlen,
                           "bad database \"%.32s\" in the Redis URL (expected a number)", q + 4);
        addr->db = (int)v;
    }
    return 0;
}

/* Error texts never echo the URL: it may carry a password. */
int gw_addr_parse_redis(const char *url, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    int rc;

    memset(addr, 0, sizeof *addr);
    if (has_prefix_ci(url, "rediss+cluster://")) {
        addr->tls = true;
        rc = parse_cluster_url(url + strlen("rediss+cluster://"), addr, err, errlen);
    } else if (has_prefix_ci(url, "redis+cluster://")) {
        rc = parse_cluster_url(url + strlen("redis+cluster://"), addr, err, errlen);
    } else if (has_prefix_ci(url, "rediss://")) {
        addr->tls = true;
        rc = parse_tcp_url(url + strlen("rediss://"), addr, err, errlen);
    } else if (has_prefix_ci(url, "redis://"))
        rc = parse_tcp_url(url + strlen("redis://"), addr, err, errlen);
    else if (has_prefix_ci(url, "unix://"))
        rc = parse_unix_url(url + strlen("unix://"), addr, err, errlen);
    else
        rc = gw_text_err(err, errlen, "a Redis URL starts with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://");
    if (rc != 0)
        gw_addr_redis_deinit(addr);
    return rc;
}

void gw_addr_redis_deinit(struct gw_redis_addr *addr)
{
    free(addr->host);
    free(addr->unix_path);
    free(addr->username);
    for (size_t i = 0; i < addr->n_seeds; i++)
        free(addr->seeds[i].host);
    free(addr->seeds);
    if (addr->password) {
        /* Do not leave the secret in freed heap memory. */
        memset(addr->password, 0, strlen(addr->password));
        free(addr->password);
    }
    memset(addr, 0, sizeof *addr);
}
