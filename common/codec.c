/* Protocol v1 codec, the parser: client messages are parsed with jansson.
 * Server frames are built in codec_out.c. */
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

/* The four whitespace bytes RFC 8259 allows around a value. */
static bool is_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

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
    { "history", 7, GW_REQ_HISTORY },
    { "presence", 8, GW_REQ_PRESENCE },
    { "presence_stats", 14, GW_REQ_PRESENCE_STATS },
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

/* "since": {"offset": N, "epoch": "E"}, the position a client stored. */
static int parse_since(json_t *root, struct gw_request *req)
{
    static const char msg[] = "\"since\" must be {\"offset\": integer 0..2^53-1, \"epoch\": string of at most 32 "
                              "bytes of 0-9 A-Z a-z _ -}";
    json_t *v = json_object_get(root, "since");
    json_t *off, *ep;
    const char *e;
    size_t n;

    if (!v)
        return 0;
    off = json_is_object(v) ? json_object_get(v, "offset") : NULL;
    ep = json_is_object(v) ? json_object_get(v, "epoch") : NULL;
    if (!json_is_integer(off) || json_integer_value(off) < 0 || json_integer_value(off) > SAFE_INT_MAX ||
        !json_is_string(ep) || json_string_length(ep) > GW_ENVELOPE_EPOCH_MAX)
        return fail(req, GW_ERR_BAD_REQUEST, "%s", msg);
    e = json_string_value(ep);
    n = json_string_length(ep);
    /* Empty: the position of a channel that had no history yet. */
    if (n > 0 && !gw_envelope_epoch_valid(e, n))
        return fail(req, GW_ERR_BAD_REQUEST, "%s", msg);
    req->has_since = true;
    req->recover = true;
    gw_position_set(&req->since, (uint64_t)json_integer_value(off), e, n);
    return 0;
}

static int parse_recover(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "recover");

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(req, GW_ERR_BAD_REQUEST, "\"recover\" must be true or false");
    req->recover = req->recover || json_is_true(v);
    return 0;
}

static int parse_presence_flag(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "presence");

    if (v && !json_is_boolean(v))
        return fail(req, GW_ERR_BAD_REQUEST, "\"presence\" must be true or false");
    req->presence_events = v && json_is_true(v);
    return 0;
}

static int parse_limit(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "limit");

    req->limit = GW_HISTORY_LIMIT_DEFAULT;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > GW_HISTORY_LIMIT_MAX)
        return fail(req, GW_ERR_BAD_REQUEST, "\"limit\" must be an integer 1..%d", GW_HISTORY_LIMIT_MAX);
    req->limit = (int)json_integer_value(v);
    return 0;
}

/* A presence page's "cursor": the decimal text the previous page gave
 * ("0" or absent: the first page). Text, because Redis' cursors use 64 bits. */
static int parse_cursor(json_t *root, struct gw_request *req)
{
    json_t *v = json_object_get(root, "cursor");
    const char *c;
    size_t n;

    strcpy(req->cursor, "0");
    if (!v)
        return 0;
    c = json_is_string(v) ? json_string_value(v) : "";
    n = json_is_string(v) ? json_string_length(v) : 0;
    if (n == 0 || n > GW_PRESENCE_CURSOR_MAX || strspn(c, "0123456789") != n)
        return fail(req, GW_ERR_BAD_REQUEST, "\"cursor\" must be the decimal string a presence reply gave");
    memcpy(req->cursor, c, n + 1);
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
                    "unknown type \"%.32s\"; expected subscribe, unsubscribe, publish, ping, auth, history, "
                    "presence or presence_stats",
                    json_string_value(v));
    if (req->type == GW_REQ_PING)
        return 0;
    if (req->type == GW_REQ_AUTH)
        return parse_token(root, req);
    rc = parse_channel(root, req);
    if (rc == 0 && req->type == GW_REQ_PUBLISH)
        rc = parse_data(root, req);
    if (rc == 0 && (req->type == GW_REQ_SUBSCRIBE || req->type == GW_REQ_HISTORY))
        rc = parse_since(root, req);
    if (rc == 0 && req->type == GW_REQ_SUBSCRIBE)
        rc = parse_recover(root, req);
    if (rc == 0 && req->type == GW_REQ_SUBSCRIBE)
        rc = parse_presence_flag(root, req);
    if (rc == 0 && (req->type == GW_REQ_HISTORY || req->type == GW_REQ_PRESENCE))
        rc = parse_limit(root, req);
    if (rc == 0 && req->type == GW_REQ_PRESENCE)
        rc = parse_cursor(root, req);
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
 * beyond int64 or a real beyond double), or an object repeats a key. That is
 * a bad request, not bad JSON.
 * No tree can be had, so the id is read from the text, so that a client
 * waiting for that id still gets its one reply. */
static int parse_out_of_range(const char *buf, size_t len, struct gw_request *req,
                              const char *why)
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
    return fail(req, GW_ERR_BAD_REQUEST, "%s", why);
}

/* Repeated keys are refused, at any depth: with last-wins a request could
 * show one channel to a reader of the first key and act on another
 * ({"channel":"__wsgate:hb:x","channel":"demo"}), and a subscriber's parser
 * need not agree with ours on which one a payload meant. */
#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)
#define DUP_MSG "an object repeats a key"

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
    root = json_loadb(buf ? buf : "", buf ? len : 0, LOAD_FLAGS, &jerr);
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow && loaded_text_valid(buf, len))
        return parse_out_of_range(buf, len, req, "numbers must fit in a 64-bit integer or a double");
    if (!root && json_error_code(&jerr) == json_error_duplicate_key && loaded_text_valid(buf, len))
        return parse_out_of_range(buf, len, req, DUP_MSG);
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
    root = json_loadb(buf ? buf : "", buf ? len : 0, LOAD_FLAGS, &jerr);
    if (!root && json_error_code(&jerr) == json_error_duplicate_key && loaded_text_valid(buf, len))
        return fail(req, GW_ERR_BAD_REQUEST, DUP_MSG);
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
