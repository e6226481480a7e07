/* The head of an HTTP/1.x request, judged before lws sees a byte of it
 * (docs/SECURITY.md, "HTTP edge"): request line, target, header fields and
 * the framing of a body. Strict on purpose: lws 4.1.6 rewrites the path it
 * hands on (%xx decoded, "//", "/./" and "/../" folded), so a request whose
 * raw path is not the canonical one it would route to is refused here, and
 * so is every framing two parsers could read two ways (Content-Length with
 * Transfer-Encoding, repeated or malformed Content-Length, folded lines),
 * and so is an Upgrade to anything but WebSocket (lws would switch to h2c).
 * Pure: no allocation, no I/O, any thread; the result points into the
 * caller's buffer. */
#ifndef GW_HTTPREQ_H
#define GW_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest head (request line and header fields, blank line included)
 * accepted; a longer one is 431. Also the most a caller needs to buffer. */
#define GW_HTTPREQ_HEAD_MAX 8192
/* The longest request target; a longer one is 414. */
#define GW_HTTPREQ_TARGET_MAX 4096
/* The most header fields; more is 431. */
#define GW_HTTPREQ_FIELDS_MAX 64

enum gw_httpreq_method {
    GW_HTTPREQ_GET,
    GW_HTTPREQ_HEAD,
    GW_HTTPREQ_POST,
    GW_HTTPREQ_PUT,
    GW_HTTPREQ_PATCH,
    GW_HTTPREQ_DELETE,
    GW_HTTPREQ_OPTIONS,
    GW_HTTPREQ_OTHER, /* any other token */
};

struct gw_httpreq {
    size_t head_len; /* bytes of the head, up to and including its blank line */
    enum gw_httpreq_method method;
    int minor; /* HTTP/1.minor: 0 or 1 */
    const char *path; /* the target up to '?', in the caller's buffer */
    size_t path_len;
    bool has_query;
    bool has_length; /* a Content-Length field */
    uint64_t length; /* its value */
    bool chunked; /* a Transfer-Encoding field (any value) */
    bool upgrade; /* Upgrade: websocket */
    /* Refused: the status to answer (400, 414, 431, 505) and why, a static string. */
    int status;
    const char *reason;
};

/* Judges the head at the start of buf[0..len). Returns 1 when a whole,
 * acceptable head is there (req filled in), 0 when more bytes are needed
 * (len < GW_HTTPREQ_HEAD_MAX and nothing wrong so far), or -EINVAL when it
 * is refused, with req->status and req->reason set. Bytes after the head
 * (a body, a pipelined request) are not looked at. */
int gw_httpreq_parse(const char *buf, size_t len, struct gw_httpreq *req);

/* True when path[0..len) is an origin-form path with nothing lws would
 * rewrite: it starts with '/', has no empty, "." or ".." segment, no '%',
 * no backslash, and only visible ASCII. */
bool gw_httpreq_path_canonical(const char *path, size_t len);

#endif
