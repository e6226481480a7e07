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

/* host[:port] or [v6][:port] in s[0..end), into a new *host and *port
 * (defport when absent). what names the part for the error text. */
static int parse_hostport(const char *s, const char *end, int defport, const char *what, char **host, int *port,
                          char *err, size_t errlen)
{
    const char *h = s, *hend, *p = NULL;
    long long v;

    if (*h == '[') {
        h++;
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend)
            return gw_text_err(err, errlen, "missing ']' after the IPv6 address in the %s", what);
        if (hend + 1 < end && hend[1] != ':')
            return gw_text_err(err, errlen, "unexpected text after ']' in the %s", what);
        p = hend + 1 < end ? hend + 2 : NULL;
    } else {
        hend = memchr(h, ':', (size_t)(end - h));
        if (hend)
            p = hend + 1;
        else
            hend = end;
    }
    if (hend == h)
        return gw_text_err(err, errlen, "empty host in the %s", what);
    *port = defport;
    if (p) {
        if (parse_uint(p, (size_t)(end - p), 65535, &v) != 0 || v == 0)
            return gw_text_err(err, errlen, "bad port \"%.*s\" in the %s (expected 1..65535)", (int)(end - p), p,
                               what);
        *port = (int)v;
    }
    *host = gw_xstrndup(h, (size_t)(hend - h));
    return 0;
}

/* The user info before the last '@' of s[0..aend): an unencoded '@' in a
 * password still works. Returns where the host part starts, or NULL. */
static const char *skip_userinfo(const char *s, const char *aend, struct gw_redis_addr *addr, char *err,
                                 size_t errlen)
{
    const char *at = NULL;

    for (const char *p = s; p < aend; p++) {
        if (*p == '@')
            at = p;
    }
    if (at && parse_userinfo(s, (size_t)(at - s), addr, err, errlen) != 0)
        return NULL;
    return at ? at + 1 : s;
}

static int parse_db_query(const char *q, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    long long v;

    if (strncmp(q, "db=", 3) != 0)
        return gw_text_err(err, errlen, "unknown query \"%.32s\" in the Redis URL (only db=N)", q);
    if (parse_uint(q + 3, strlen(q + 3), INT32_MAX, &v) != 0)
        return gw_text_err(err, errlen, "bad database \"%.32s\" in the Redis URL (expected a number)", q + 3);
    addr->db = (int)v;
    return 0;
}

static int parse_tcp_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    size_t alen = strcspn(s, "/?");
    const char *host, *aend = s + alen;
    long long v;

    if (!(host = skip_userinfo(s, aend, addr, err, errlen)))
        return -EINVAL;
    if (parse_hostport(host, aend, 6379, "Redis URL", &addr->host, &addr->port, err, errlen) != 0)
        return -EINVAL;
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

/* A master name as Sentinel knows it: printable, no space, '/', '?' or '@'. */
static bool master_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '@' || c == ',')
            return false;
    }
    return true;
}

static int parse_sentinel_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    const char *aend = s + strcspn(s, "/?"), *p, *name, *q;

    if (!(p = skip_userinfo(s, aend, addr, err, errlen)))
        return -EINVAL;
    addr->sentinels = gw_xcalloc(GW_ADDR_MAX_SENTINELS, sizeof *addr->sentinels);
    while (p < aend) {
        const char *comma = memchr(p, ',', (size_t)(aend - p));
        const char *end = comma ? comma : aend;
        struct gw_sentinel_addr *sa;

        if (addr->nsentinels == GW_ADDR_MAX_SENTINELS)
            return gw_text_err(err, errlen, "more than %d Sentinels in the Redis URL", GW_ADDR_MAX_SENTINELS);
        sa = &addr->sentinels[addr->nsentinels];
        if (parse_hostport(p, end, 26379, "Sentinel list", &sa->host, &sa->port, err, errlen) != 0)
            return -EINVAL;
        addr->nsentinels++;
        p = comma ? comma + 1 : aend;
        if (comma && p == aend)
            return gw_text_err(err, errlen, "empty host in the Sentinel list");
    }
    if (addr->nsentinels == 0)
        return gw_text_err(err, errlen, "no Sentinel address in the Redis URL");
    if (*aend != '/')
        return gw_text_err(err, errlen, "expected /<master-name> after the Sentinel list");
    name = aend + 1;
    q = strchr(name, '?');
    if (!master_name_ok(name, q ? (size_t)(q - name) : strlen(name)))
        return gw_text_err(err, errlen,
                           "expected a master name (1-128 printable bytes, no space , / ? @) after the Sentinels");
    addr->master_name = q ? gw_xstrndup(name, (size_t)(q - name)) : gw_xstrdup(name);
    return q ? parse_db_query(q + 1, addr, err, errlen) : 0;
}

static int parse_unix_url(const char *s, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    const char *at = strchr(s, '@');
    const char *path, *q;

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
    return q ? parse_db_query(q + 1, addr, err, errlen) : 0;
}

/* Error texts never echo the URL: it may carry a password. */
int gw_addr_parse_redis(const char *url, struct gw_redis_addr *addr, char *err, size_t errlen)
{
    int rc;

    memset(addr, 0, sizeof *addr);
    if (has_prefix_ci(url, "rediss+sentinel://")) {
        addr->tls = true;
        rc = parse_sentinel_url(url + strlen("rediss+sentinel://"), addr, err, errlen);
    } else if (has_prefix_ci(url, "redis+sentinel://"))
        rc = parse_sentinel_url(url + strlen("redis+sentinel://"), addr, err, errlen);
    else if (has_prefix_ci(url, "rediss://")) {
        addr->tls = true;
        rc = parse_tcp_url(url + strlen("rediss://"), addr, err, errlen);
    } else if (has_prefix_ci(url, "redis://"))
        rc = parse_tcp_url(url + strlen("redis://"), addr, err, errlen);
    else if (has_prefix_ci(url, "unix://"))
        rc = parse_unix_url(url + strlen("unix://"), addr, err, errlen);
    else
        rc = gw_text_err(err, errlen, "a Redis URL starts with redis://, rediss://, redis+sentinel://, rediss+sentinel:// or unix://");
    if (rc != 0)
        gw_addr_redis_deinit(addr);
    return rc;
}

void gw_addr_redis_deinit(struct gw_redis_addr *addr)
{
    free(addr->host);
    free(addr->unix_path);
    free(addr->username);
    free(addr->master_name);
    for (int i = 0; i < addr->nsentinels; i++)
        free(addr->sentinels[i].host);
    free(addr->sentinels);
    if (addr->password) {
        /* Do not leave the secret in freed heap memory. */
        memset(addr->password, 0, strlen(addr->password));
        free(addr->password);
    }
    memset(addr, 0, sizeof *addr);
}
