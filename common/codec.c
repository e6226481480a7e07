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
#include "json.h"

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
    [GW_ERR_UNAUTHORIZED] = "unauthorized",
    [GW_ERR_FORBIDDEN] = "forbidden",
};

const char *gw_err_slug(enum gw_err err)
{
    if ((unsigned)err >= GW_ERR__COUNT)
        return "unknown";
    return err_slugs[err];
}

/* ---- frame builders ---- */

static char *put(char *out, const void *data, size_t n)
{
    if (n)
        memcpy(out, data, n);
    return out + n;
}

/* The four whitespace bytes RFC 8259 allows around a value. */
static bool is_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Every server message is one WebSocket text frame: add its header once. */
static struct gw_frame *sealed(struct gw_frame *f)
{
    gw_frame_seal_ws_text(f);
    return f;
}

/* The fixed buffers below hold their longest text: every id and exp as wide
 * as an int64 can be, every slug as long as the longest. */
#define INT64_MIN_TEXT "-9223372036854775808"
_Static_assert(sizeof "{\"type\":\"ack\",\"id\":" INT64_MIN_TEXT "}" <= 64, "gw_codec_ack buffer");
_Static_assert(sizeof "{\"type\":\"pong\",\"id\":" INT64_MIN_TEXT "}" <= 64, "gw_codec_pong buffer");
_Static_assert(sizeof ",\"exp\":" INT64_MIN_TEXT "}" <= 48, "gw_codec_ack_auth tail");
_Static_assert(sizeof "{\"type\":\"error\",\"id\":" INT64_MIN_TEXT ",\"code\":\"too_many_subscriptions\","
               "\"message\":" <= 128, "gw_codec_error head");

struct gw_frame *gw_codec_ack(int64_t id)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%" PRId64 "}", id);

    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

struct gw_frame *gw_codec_ack_auth(int64_t id, const char *sub, int64_t exp)
{
    size_t slen = sub ? strlen(sub) : 0;
    char head[64], tail[48];
    int hn = snprintf(head, sizeof head, "{\"type\":\"ack\",\"id\":%" PRId64, id);
    int tn = snprintf(tail, sizeof tail, ",\"exp\":%" PRId64 "}", exp);
    size_t cap = (size_t)hn + (size_t)tn + (sub ? LIT_LEN(",\"sub\":") + gw_json_escape_len(sub, slen) : 0);
    struct gw_frame *f = gw_frame_new(cap);
    char *start, *o;

    start = o = (char *)gw_frame_payload(f);
    o = put(o, head, (size_t)hn);
    if (sub) {
        o = put(o, ",\"sub\":", LIT_LEN(",\"sub\":"));
        o += gw_json_escape(o, sub, slen);
    }
    o = put(o, tail, (size_t)tn);
    f->len = (size_t)(o - start);
    assert(f->len == f->cap);
    return sealed(f);
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
    f = gw_frame_new((size_t)hn + gw_json_escape_len(msg, mlen) + 1);
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
        while (body < body_end && is_json_ws(*body))
            body++;
        while (body_end > body && is_json_ws(body_end[-1]))
            body_end--;
        data_len = (size_t)(body_end - body);
    } else {
        /* Counting first costs a second pass over the payload but sizes the
         * frame exactly; a 6x worst-case capacity would be kept alive for as
         * long as the slowest subscriber holds the frame. */
        data_len = gw_json_escape_len(payload, payload_len);
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
    { "auth", 4, GW_REQ_AUTH },
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

/* One limit for what a client sends and what a subscriber receives. */
static int fail_too_deep(struct gw_request *req)
{
    return fail(req, GW_ERR_BAD_REQUEST, "JSON must not nest deeper than %d levels in \"data\"",
                GW_JSON_MAX_DEPTH);
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
    /* The message builder embeds only what gw_json_valid takes; anything
     * deeper would reach subscribers as a string, not as the value sent. */
    if (!gw_json_valid(req->data_json, n)) {
        free(req->data_json);
        req->data_json = NULL;
        return fail_too_deep(req);
    }
    req->data_len = n;
    return 0;
}

/* The token is copied as given: its size limit and every check belong to
 * the verifier, which knows the configured maximum. */
static int parse_token(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "token");

    if (!v)
        return fail(req, GW_ERR_BAD_REQUEST, "\"token\" is missing");
    if (!json_is_string(v))
        return fail(req, GW_ERR_BAD_REQUEST, "\"token\" must be a string");
    /* memcpy, not strndup: a "\u0000" inside must not shorten the copy
     * below token_len (the verifier then refuses the NUL as malformed). */
    req->token_len = json_string_length(v);
    req->token = gw_xmalloc(req->token_len + 1);
    memcpy(req->token, json_string_value(v), req->token_len);
    req->token[req->token_len] = '\0';
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
                    "unknown type \"%.32s\"; expected subscribe, unsubscribe, publish, ping or auth",
                    json_string_value(v));
    if (req->type == GW_REQ_PING)
        return 0;
    if (req->type == GW_REQ_AUTH)
        return parse_token(root, req);
    rc = parse_channel(root, req);
    if (rc == 0 && req->type == GW_REQ_PUBLISH)
        rc = parse_data(root, req);
    return rc;
}

/* A usable id written as JSON text: an integer literal in the safe range. */
static bool id_from_text(const char *s, size_t n, int64_t *id)
{
    size_t i = s[0] == '-';
    int64_t v = 0;

    if (n == i || n - i > 16)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > SAFE_INT_MAX)
        return false;
    *id = s[0] == '-' ? -v : v;
    return true;
}

/* buf is valid JSON, but jansson cannot hold one of its numbers (an integer
 * beyond int64 or a real beyond double). That is a bad request, not bad JSON.
 * No tree can be had, so the id is read from the text, so that a client
 * waiting for that id still gets its one reply. */
static int parse_out_of_range(const char *buf, size_t len, struct gw_request *req)
{
    const char *v, *p = buf;
    size_t vlen;
    int64_t id;

    while (p < buf + len && is_json_ws((unsigned char)*p))
        p++;
    if (*p != '{')
        return fail(req, GW_ERR_BAD_REQUEST, "request must be a JSON object");
    if (gw_json_member(buf, len, "id", &v, &vlen)) {
        if (!id_from_text(v, vlen, &id))
            return fail(req, GW_ERR_BAD_REQUEST, "%s", bad_id_msg);
        req->has_id = true;
        req->id = id;
    }
    return fail(req, GW_ERR_BAD_REQUEST, "numbers must fit in a 64-bit integer or a double");
}

/* jansson 2.14 stops reading at a raw NUL after a number or a literal and
 * accepts the text before it; the strict validator decides instead, with
 * jansson's own depth limit so that only syntax is judged here. */
static bool loaded_text_valid(const char *buf, size_t len)
{
    return gw_json_valid_depth(buf, len, GW_JSON_DEPTH_CAP);
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
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow && loaded_text_valid(buf, len))
        return parse_out_of_range(buf, len, req);
    /* Also valid JSON that jansson refuses; the id cannot be recovered. */
    if (!root && json_error_code(&jerr) == json_error_null_byte_in_key && loaded_text_valid(buf, len))
        return fail(req, GW_ERR_BAD_REQUEST, "object keys must not contain \\u0000");
    if (!root && json_error_code(&jerr) == json_error_stack_overflow)
        return fail_too_deep(req);
    if (!root)
        return fail(req, GW_ERR_BAD_JSON, "invalid JSON at byte %d: %s", jerr.position,
                    jerr.text);
    if (!loaded_text_valid(buf, len)) {
        json_decref(root);
        return fail(req, GW_ERR_BAD_JSON, "invalid JSON: bytes after a value, or a raw NUL");
    }
    rc = parse_object(root, req);
    json_decref(root);
    return rc;
}

int gw_codec_parse_publish_body(const char *buf, size_t len, struct gw_request *req)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(req, 0, sizeof *req);
    req->type = GW_REQ_PUBLISH;
    root = json_loadb(buf ? buf : "", buf ? len : 0, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    /* Valid JSON that jansson cannot hold is the sender's mistake in
     * content, not in syntax (see gw_codec_parse). */
    if (!root && buf && loaded_text_valid(buf, len))
        return fail(req, GW_ERR_BAD_REQUEST,
                    "numbers must fit in a 64-bit integer or a double, and keys must not contain \\u0000");
    if (!root && json_error_code(&jerr) == json_error_stack_overflow)
        return fail_too_deep(req);
    if (!root)
        return fail(req, GW_ERR_BAD_JSON, "invalid JSON at byte %d: %s", jerr.position, jerr.text);
    if (!loaded_text_valid(buf, len))
        rc = fail(req, GW_ERR_BAD_JSON, "invalid JSON: bytes after a value, or a raw NUL");
    else if (!json_is_object(root))
        rc = fail(req, GW_ERR_BAD_REQUEST, "body must be a JSON object with \"channel\" and \"data\"");
    else if ((rc = parse_channel(root, req)) == 0)
        rc = parse_data(root, req);
    json_decref(root);
    return rc;
}

void gw_request_deinit(struct gw_request *req)
{
    free(req->data_json);
    req->data_json = NULL;
    req->data_len = 0;
    free(req->token);
    req->token = NULL;
    req->token_len = 0;
}
