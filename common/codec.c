/* Protocol v1 codec. Client messages are parsed with jansson; server frames
 * are written by hand into exactly sized frames, because the outbound path
 * runs once per Redis message and must not build a JSON tree. */
#include "codec.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"

#define JSON_MAX_DEPTH 512
/* Largest integer a JavaScript client can hold exactly: 2^53 - 1. */
#define SAFE_INT_MAX INT64_C(9007199254740991)
#define LIT_LEN(s) (sizeof(s) - 1)

static const char *const err_slugs[GW_ERR__COUNT] = {
    [GW_ERR_NONE] = "none",
    [GW_ERR_BAD_JSON] = "bad_json",
    [GW_ERR_BAD_REQUEST] = "bad_request",
    [GW_ERR_UNKNOWN_TYPE] = "unknown_type",
    [GW_ERR_BAD_CHANNEL] = "bad_channel",
    [GW_ERR_TOO_MANY_SUBSCRIPTIONS] = "too_many_subscriptions",
    [GW_ERR_MESSAGE_TOO_LARGE] = "message_too_large",
    [GW_ERR_BINARY_NOT_SUPPORTED] = "binary_not_supported",
    [GW_ERR_UNAVAILABLE] = "unavailable",
    [GW_ERR_RATE_LIMITED] = "rate_limited",
};

const char *gw_err_slug(enum gw_err err)
{
    if ((unsigned)err >= GW_ERR__COUNT)
        return "unknown";
    return err_slugs[err];
}

/* ---- UTF-8 and string escaping ---- */

/* Returns the length (1..4) of the well-formed UTF-8 sequence at s[0..n), or
 * 0 when it is ill-formed; then *bad is the length of its maximal ill-formed
 * subpart (Unicode 15, section 3.9), so that each such subpart becomes one
 * U+FFFD exactly as a browser's TextDecoder would do it. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return need + 1;
}

/* Escapes s[0..len) without quotes into out, or only counts the bytes when
 * out is NULL, so callers can size a frame exactly before writing it. */
static size_t escape_body(char *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0, i = 0;

    while (i < len) {
        unsigned char c = s[i];
        char short_esc = 0;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t bad = 0, n = utf8_seq(s + i, len - i, &bad);

            if (n) {
                if (out)
                    memcpy(out + o, s + i, n);
                o += n;
                i += n;
            } else {
                if (out)
                    memcpy(out + o, "\\ufffd", 6);
                o += 6;
                i += bad;
            }
            continue;
        }
        switch (c) {
        case '"': short_esc = '"'; break;
        case '\\': short_esc = '\\'; break;
        case '\b': short_esc = 'b'; break;
        case '\f': short_esc = 'f'; break;
        case '\n': short_esc = 'n'; break;
        case '\r': short_esc = 'r'; break;
        case '\t': short_esc = 't'; break;
        default: break;
        }
        if (short_esc) {
            if (out) {
                out[o] = '\\';
                out[o + 1] = short_esc;
            }
            o += 2;
        } else {
            if (out) {
                memcpy(out + o, "\\u00", 4);
                out[o + 4] = hex[c >> 4];
                out[o + 5] = hex[c & 15];
            }
            o += 6;
        }
        i++;
    }
    return o;
}

size_t gw_json_escape(char *out, const char *s, size_t len)
{
    size_t n = escape_body(out + 1, s, len);

    out[0] = '"';
    out[n + 1] = '"';
    return n + 2;
}

/* ---- strict JSON validator ---- */

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Value of four hex digits at p (caller checked they exist), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* p is at the opening quote. Returns the byte after the closing quote, or
 * NULL. Lone or mismatched \u surrogates are rejected, as jansson and
 * RFC 8259's "interoperable" subset do. */
static const unsigned char *scan_string(const unsigned char *p, const unsigned char *end)
{
    for (p++; p < end;) {
        unsigned char c = *p;

        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c >= 0x80) {
            size_t bad, n = utf8_seq(p, (size_t)(end - p), &bad);

            if (!n)
                return NULL;
            p += n;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (end - p < 2)
            return NULL;
        if (p[1] != 'u') {
            if (p[1] == '\0' || !strchr("\"\\/bfnrt", p[1]))
                return NULL;
            p += 2;
            continue;
        }
        long cp = end - p >= 6 ? hex4(p + 2) : -1;

        if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
            return NULL;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            long low;

            if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                return NULL;
            low = hex4(p + 2);
            if (low < 0xdc00 || low > 0xdfff)
                return NULL;
            p += 6;
        }
    }
    return NULL;
}

static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end)
{
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return NULL;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return NULL;
        while (is_digit(p, end))
            p++;
    }
    return p;
}

static const unsigned char *scan_literal(const unsigned char *p, const unsigned char *end,
                                         const char *lit, size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
        return NULL;
    return p + n;
}

/* Iterative so that hostile nesting costs a fixed 512-byte stack, never
 * recursion depth. */
bool gw_json_valid(const char *buf, size_t len)
{
    enum { EXPECT_VALUE, EXPECT_KEY, AFTER_VALUE } state = EXPECT_VALUE;
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end = p + len;
    unsigned char open[JSON_MAX_DEPTH]; /* '{' or '[' per enclosing container */
    size_t depth = 0;

    for (;;) {
        p = skip_ws(p, end);
        if (state == AFTER_VALUE) {
            unsigned char close;

            if (depth == 0)
                return p == end;
            if (p == end)
                return false;
            close = open[depth - 1] == '{' ? '}' : ']';
            if (*p == close) {
                depth--;
                p++;
            } else if (*p == ',') {
                p++;
                state = open[depth - 1] == '{' ? EXPECT_KEY : EXPECT_VALUE;
            } else {
                return false;
            }
            continue;
        }
        if (state == EXPECT_KEY) {
            if (p == end || *p != '"' || !(p = scan_string(p, end)))
                return false;
            p = skip_ws(p, end);
            if (p == end || *p != ':')
                return false;
            p++;
            state = EXPECT_VALUE;
            continue;
        }
        if (p == end)
            return false;
        switch (*p) {
        case '{':
        case '[':
            if (depth == JSON_MAX_DEPTH)
                return false;
            open[depth++] = *p;
            p = skip_ws(p + 1, end);
            if (p < end && *p == (open[depth - 1] == '{' ? '}' : ']')) {
                depth--;
                p++;
                state = AFTER_VALUE;
            } else {
                state = open[depth - 1] == '{' ? EXPECT_KEY : EXPECT_VALUE;
            }
            continue;
        case '"': p = scan_string(p, end); break;
        case 't': p = scan_literal(p, end, "true", 4); break;
        case 'f': p = scan_literal(p, end, "false", 5); break;
        case 'n': p = scan_literal(p, end, "null", 4); break;
        default: p = scan_number(p, end); break;
        }
        if (!p)
            return false;
        state = AFTER_VALUE;
    }
}

/* ---- frame builders ---- */

static char *put(char *out, const void *data, size_t n)
{
    if (n)
        memcpy(out, data, n);
    return out + n;
}

/* Every server message is one WebSocket text frame: add its header once. */
static struct gw_frame *sealed(struct gw_frame *f)
{
    gw_frame_seal_ws_text(f);
    return f;
}

struct gw_frame *gw_codec_ack(int64_t id)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%" PRId64 "}", id);

    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

struct gw_frame *gw_codec_pong(bool has_id, int64_t id)
{
    char buf[64];
    int n;

    if (has_id)
        n = snprintf(buf, sizeof buf, "{\"type\":\"pong\",\"id\":%" PRId64 "}", id);
    else
        n = snprintf(buf, sizeof buf, "{\"type\":\"pong\"}");
    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

struct gw_frame *gw_codec_error(enum gw_err err, bool has_id, int64_t id, const char *message)
{
    const char *msg = message ? message : "";
    size_t mlen = strlen(msg);
    char head[128];
    int hn;
    struct gw_frame *f;
    char *start, *o;

    if (has_id)
        hn = snprintf(head, sizeof head,
                      "{\"type\":\"error\",\"id\":%" PRId64 ",\"code\":\"%s\",\"message\":", id,
                      gw_err_slug(err));
    else
        hn = snprintf(head, sizeof head, "{\"type\":\"error\",\"code\":\"%s\",\"message\":",
                      gw_err_slug(err));
    assert(hn > 0 && (size_t)hn < sizeof head);
    f = gw_frame_new((size_t)hn + escape_body(NULL, msg, mlen) + 3);
    start = o = (char *)gw_frame_payload(f);
    o = put(o, head, (size_t)hn);
    o += gw_json_escape(o, msg, mlen);
    *o++ = '}';
    f->len = (size_t)(o - start);
    assert(f->len == f->cap);
    return sealed(f);
}

static const char msg_head[] = "{\"type\":\"message\",\"channel\":\"";
static const char msg_data[] = "\",\"data\":";

struct gw_frame *gw_codec_message(const char *channel, size_t channel_len,
                                  const char *payload, size_t payload_len)
{
    const unsigned char *body = (const unsigned char *)payload;
    const unsigned char *body_end = body + payload_len;
    bool verbatim = gw_json_valid(payload, payload_len);
    size_t data_len;
    struct gw_frame *f;
    char *start, *o;

    assert(gw_channel_valid(channel, channel_len));
    if (verbatim) {
        /* Surrounding whitespace (e.g. the newline of `redis-cli -x`) is
         * not part of the value; dropping it keeps frames compact. */
        body = skip_ws(body, body_end);
        while (body_end > body && (body_end[-1] == ' ' || body_end[-1] == '\t' ||
                                   body_end[-1] == '\n' || body_end[-1] == '\r'))
            body_end--;
        data_len = (size_t)(body_end - body);
    } else {
        /* Counting first costs a second pass over the payload but sizes the
         * frame exactly; a 6x worst-case capacity would be kept alive for as
         * long as the slowest subscriber holds the frame. */
        data_len = escape_body(NULL, payload, payload_len) + 2;
    }
    f = gw_frame_new(LIT_LEN(msg_head) + channel_len + LIT_LEN(msg_data) + data_len + 1);
    start = o = (char *)gw_frame_payload(f);
    o = put(o, msg_head, LIT_LEN(msg_head));
    o = put(o, channel, channel_len);
    o = put(o, msg_data, LIT_LEN(msg_data));
    if (verbatim)
        o = put(o, body, data_len);
    else
        o += gw_json_escape(o, payload, payload_len);
    *o++ = '}';
    f->len = (size_t)(o - start);
    assert(f->len == f->cap);
    return sealed(f);
}

/* ---- request parser ---- */

static int fail(struct gw_request *req, enum gw_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct gw_request *req, enum gw_err err, const char *fmt, ...)
{
    va_list ap;

    req->err = err;
    va_start(ap, fmt);
    vsnprintf(req->errmsg, sizeof req->errmsg, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const struct {
    const char *name;
    size_t len;
    enum gw_req_type type;
} req_types[] = {
    { "subscribe", 9, GW_REQ_SUBSCRIBE },
    { "unsubscribe", 11, GW_REQ_UNSUBSCRIBE },
    { "publish", 7, GW_REQ_PUBLISH },
    { "ping", 4, GW_REQ_PING },
};

/* Returns the request type named by s[0..len) (which may hold NUL bytes), or
 * 0 when there is none. */
static enum gw_req_type lookup_type(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof req_types / sizeof req_types[0]; i++) {
        if (req_types[i].len == len && memcmp(req_types[i].name, s, len) == 0)
            return req_types[i].type;
    }
    return 0;
}

static int parse_channel(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "channel");
    const char *name;
    size_t len;

    if (!v)
        return fail(req, GW_ERR_BAD_REQUEST, "\"channel\" is missing");
    if (!json_is_string(v))
        return fail(req, GW_ERR_BAD_REQUEST, "\"channel\" must be a string");
    name = json_string_value(v);
    len = json_string_length(v);
    if (!gw_channel_valid(name, len))
        return fail(req, GW_ERR_BAD_CHANNEL,
                    "channel name must be 1..128 bytes of A-Z a-z 0-9 _ - : . @ / =");
    memcpy(req->channel, name, len);
    req->channel[len] = '\0';
    req->channel_len = len;
    return 0;
}

static int parse_data(json_t *root, struct gw_request *req)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    json_t *v = json_object_get(root, "data");
    size_t n;

    if (!v)
        return fail(req, GW_ERR_BAD_REQUEST, "\"data\" is missing");
    /* Two json_dumpb() passes so that the buffer comes from gw_xmalloc and
     * is released with plain free() regardless of jansson's allocator. */
    n = json_dumpb(v, NULL, 0, flags);
    if (n == 0)
        return fail(req, GW_ERR_BAD_REQUEST, "\"data\" could not be encoded");
    req->data_json = gw_xmalloc(n + 1);
    if (json_dumpb(v, req->data_json, n, flags) != n)
        return fail(req, GW_ERR_BAD_REQUEST, "\"data\" could not be encoded");
    req->data_json[n] = '\0';
    req->data_len = n;
    return 0;
}

static const char bad_id_msg[] = "\"id\" must be an integer between -(2^53-1) and 2^53-1";

/* The id is checked before anything else so that every later error can
 * carry it (PROTOCOL.md, "Error codes"). */
static int parse_object(json_t *root, struct gw_request *req)
{
    json_t *v;
    int rc;

    if (!json_is_object(root))
        return fail(req, GW_ERR_BAD_REQUEST, "request must be a JSON object");
    v = json_object_get(root, "id");
    if (v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : 0;

        if (!json_is_integer(v) || id > SAFE_INT_MAX || id < -SAFE_INT_MAX)
            return fail(req, GW_ERR_BAD_REQUEST, "%s", bad_id_msg);
        req->has_id = true;
        req->id = id;
    }
    v = json_object_get(root, "type");
    if (!v)
        return fail(req, GW_ERR_BAD_REQUEST, "\"type\" is missing");
    if (!json_is_string(v))
        return fail(req, GW_ERR_BAD_REQUEST, "\"type\" must be a string");
    req->type = lookup_type(json_string_value(v), json_string_length(v));
    if (!req->type)
        return fail(req, GW_ERR_UNKNOWN_TYPE,
                    "unknown type \"%.32s\"; expected subscribe, unsubscribe, publish or ping",
                    json_string_value(v));
    if (req->type == GW_REQ_PING)
        return 0;
    rc = parse_channel(root, req);
    if (rc == 0 && req->type == GW_REQ_PUBLISH)
        rc = parse_data(root, req);
    return rc;
}

/* buf is valid JSON, but jansson cannot hold one of its numbers (an integer
 * beyond int64 or a real beyond double). That is a bad request, not bad JSON.
 * It is re-read with integers as reals only to recover a usable id, so that
 * a client waiting for that id still gets its one reply (on this rare path an
 * integral real id such as 5.0 is taken as 5). */
static int parse_out_of_range(const char *buf, size_t len, struct gw_request *req)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, flags, &jerr);
    json_t *id = json_is_object(root) ? json_object_get(root, "id") : NULL;
    int rc;

    if (root && !json_is_object(root)) {
        rc = fail(req, GW_ERR_BAD_REQUEST, "request must be a JSON object");
    } else if (id && !(json_is_real(id) && json_real_value(id) >= (double)-SAFE_INT_MAX &&
                       json_real_value(id) <= (double)SAFE_INT_MAX &&
                       json_real_value(id) == (double)(int64_t)json_real_value(id))) {
        rc = fail(req, GW_ERR_BAD_REQUEST, "%s", bad_id_msg);
    } else {
        if (id) {
            req->has_id = true;
            req->id = (int64_t)json_real_value(id);
        }
        rc = fail(req, GW_ERR_BAD_REQUEST,
                  "numbers must fit in a 64-bit integer or a double");
    }
    json_decref(root);
    return rc;
}

int gw_codec_parse(const char *buf, size_t len, struct gw_request *req)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(req, 0, sizeof *req);
    /* DECODE_ANY so that a valid non-object ("5", "[]") is reported as
     * bad_request rather than bad_json. */
    root = json_loadb(buf ? buf : "", buf ? len : 0, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow && gw_json_valid(buf, len))
        return parse_out_of_range(buf, len, req);
    /* Also valid JSON that jansson refuses; the id cannot be recovered. */
    if (!root && json_error_code(&jerr) == json_error_null_byte_in_key && gw_json_valid(buf, len))
        return fail(req, GW_ERR_BAD_REQUEST, "object keys must not contain \\u0000");
    if (!root)
        return fail(req, GW_ERR_BAD_JSON, "invalid JSON at byte %d: %s", jerr.position,
                    jerr.text);
    rc = parse_object(root, req);
    json_decref(root);
    return rc;
}

void gw_request_deinit(struct gw_request *req)
{
    free(req->data_json);
    req->data_json = NULL;
    req->data_len = 0;
}
