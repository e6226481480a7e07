/* Strict HTTP/1.x request-head judge; see httpreq.h for what and why. */
#include "httpreq.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int refuse(struct gw_httpreq *req, int status, const char *reason)
{
    req->status = status;
    req->reason = reason;
    return -EINVAL;
}

bool gw_httpreq_path_canonical(const char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        /* lws decodes %xx, splits at ';' and '&', and '#' never belongs. */
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == '\\' || c == ';' || c == '&' || c == '#')
            return false;
        if (c != '/')
            continue;
        /* The segment after this '/': not empty (unless the path is "/"),
         * not "." and not "..". */
        size_t s = i + 1, e = s;
        while (e < len && path[e] != '/')
            e++;
        if (e == s && !(len == 1))
            return false;
        if ((e - s == 1 && path[s] == '.') || (e - s == 2 && path[s] == '.' && path[s + 1] == '.'))
            return false;
    }
    return true;
}

static enum gw_httpreq_method method_of(const char *m, size_t n)
{
    static const struct {
        const char *name;
        enum gw_httpreq_method m;
    } known[] = {
        { "GET", GW_HTTPREQ_GET },         { "HEAD", GW_HTTPREQ_HEAD },   { "POST", GW_HTTPREQ_POST },
        { "PUT", GW_HTTPREQ_PUT },         { "PATCH", GW_HTTPREQ_PATCH }, { "DELETE", GW_HTTPREQ_DELETE },
        { "OPTIONS", GW_HTTPREQ_OPTIONS },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, m, n) == 0)
            return known[i].m;
    return GW_HTTPREQ_OTHER;
}

/* Request line: method SP target SP HTTP/1.x, at line[0..n). */
static int request_line(const char *line, size_t n, struct gw_httpreq *req)
{
    size_t i = 0, t0, t1;

    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i > 16 || i >= n || line[i] != ' ')
        return refuse(req, 400, "malformed request line");
    req->method = method_of(line, i);
    t0 = ++i;
    while (i < n && line[i] != ' ')
        i++;
    t1 = i;
    if (t1 == t0 || i >= n)
        return refuse(req, 400, "malformed request line");
    if (t1 - t0 > GW_HTTPREQ_TARGET_MAX)
        return refuse(req, 414, "request target too long");
    i++;
    if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0)
        return refuse(req, 400, "malformed request line");
    if (line[i + 7] != '0' && line[i + 7] != '1')
        return refuse(req, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    req->minor = line[i + 7] - '0';
    /* The target: origin form, the path canonical, the query visible ASCII. */
    const char *q = memchr(line + t0, '?', t1 - t0);
    req->path = line + t0;
    req->path_len = q ? (size_t)(q - (line + t0)) : t1 - t0;
    req->has_query = q != NULL;
    if (!gw_httpreq_path_canonical(req->path, req->path_len))
        return refuse(req, 400, "request path is not canonical (no %xx, //, /./, /../, ; or &)");
    for (const char *c = q; c && c < line + t1; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '#')
            return refuse(req, 400, "malformed query");
    return 0;
}

/* Content-Length: 1 to 19 digits, nothing else (RFC 9110 8.6; a list, even
 * of equal values, is refused). */
static int content_length(const char *v, size_t n, struct gw_httpreq *req)
{
    uint64_t x = 0;

    if (req->has_length)
        return refuse(req, 400, "more than one Content-Length");
    if (n == 0 || n > 19)
        return refuse(req, 400, "malformed Content-Length");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return refuse(req, 400, "malformed Content-Length");
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    req->has_length = true;
    req->length = x;
    return 0;
}

/* One header field at line[0..n): name ":" OWS value OWS. */
static int field(const char *line, size_t n, struct gw_httpreq *req, bool *host)
{
    size_t i = 0, v0, v1;

    if (n && (line[0] == ' ' || line[0] == '\t'))
        return refuse(req, 400, "folded header line");
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ':')
        return refuse(req, 400, "malformed header field");
    v0 = i + 1;
    while (v0 < n && (line[v0] == ' ' || line[v0] == '\t'))
        v0++;
    v1 = n;
    while (v1 > v0 && (line[v1 - 1] == ' ' || line[v1 - 1] == '\t'))
        v1--;
    for (size_t k = v0; k < v1; k++) {
        unsigned char c = (unsigned char)line[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return refuse(req, 400, "control character in a header value");
    }
    if (i == 14 && strncasecmp(line, "content-length", 14) == 0)
        return content_length(line + v0, v1 - v0, req);
    if (i == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
        req->chunked = true;
        return 0;
    }
    if (i == 4 && strncasecmp(line, "host", 4) == 0) {
        if (*host)
            return refuse(req, 400, "more than one Host");
        *host = true;
        return 0;
    }
    if (i == 7 && strncasecmp(line, "upgrade", 7) == 0) {
        /* lws would take h2c (an HTTP/2 connection nothing here serves or
         * times out) or answer other protocols itself. */
        if (req->upgrade || v1 - v0 != 9 || strncasecmp(line + v0, "websocket", 9) != 0)
            return refuse(req, 400, "only one Upgrade: websocket is served");
        req->upgrade = true;
    }
    return 0;
}

int gw_httpreq_parse(const char *buf, size_t len, struct gw_httpreq *req)
{
    size_t pos = 0, nfields = 0, scan = len < GW_HTTPREQ_HEAD_MAX ? len : GW_HTTPREQ_HEAD_MAX;
    bool host = false;
    int rc;

    memset(req, 0, sizeof(*req));
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', scan - pos);
        size_t n;

        if (!nl) {
            if (len >= GW_HTTPREQ_HEAD_MAX)
                return refuse(req, 431, "request head too large");
            /* Refuse what is already wrong without waiting for the line's end. */
            if (memchr(buf + pos, '\0', scan - pos))
                return refuse(req, 400, "NUL byte in the request head");
            return 0;
        }
        n = (size_t)(nl - (buf + pos));
        if (n == 0 || buf[pos + n - 1] != '\r')
            return refuse(req, 400, "lines must end in CRLF");
        n--;
        if (memchr(buf + pos, '\0', n))
            return refuse(req, 400, "NUL byte in the request head");
        if (pos == 0) {
            if ((rc = request_line(buf, n, req)) != 0)
                return rc;
        } else if (n == 0) {
            req->head_len = pos + 2;
            break;
        } else {
            if (++nfields > GW_HTTPREQ_FIELDS_MAX)
                return refuse(req, 431, "too many header fields");
            if ((rc = field(buf + pos, n, req, &host)) != 0)
                return rc;
        }
        pos = (size_t)(nl - buf) + 1;
    }
    if (req->has_length && req->chunked)
        return refuse(req, 400, "both Content-Length and Transfer-Encoding");
    if (!host && req->minor == 1)
        return refuse(req, 400, "an HTTP/1.1 request needs a Host");
    return 1;
}
