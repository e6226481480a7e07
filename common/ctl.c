/* The server API's control requests and the nodes' control messages, parsed
 * and written with jansson (see ctl.h). */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "envelope.h"
#include "json.h"
#include "query.h"

/* Duplicate keys are refused: a body must mean one thing. */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
/* Counts fit in a JSON number any backend reads exactly: 2^53 - 1. */
#define SAFE_INT_MAX INT64_C(9007199254740991)

static int fail(enum gw_err *err, char *msg, size_t mlen, enum gw_err e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(enum gw_err *err, char *msg, size_t mlen, enum gw_err e, const char *fmt, ...)
{
    va_list ap;

    *err = e;
    if (mlen) {
        va_start(ap, fmt);
        vsnprintf(msg, mlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Copies string member v (1..max bytes, no NUL) into out (room for max + 1). */
static bool copy_str(json_t *v, size_t max, char *out, size_t *outlen, bool empty_ok)
{
    size_t n;

    if (!json_is_string(v))
        return false;
    n = json_string_length(v);
    if ((!n && !empty_ok) || n > max || memchr(json_string_value(v), '\0', n))
        return false;
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    if (outlen)
        *outlen = n;
    return true;
}

bool gw_ctl_code_stops(int code)
{
    return code == GW_CLOSE_DISCONNECT_STOP || (code >= GW_CLOSE_APP_STOP_MIN && code <= GW_CLOSE_APP_MAX);
}

static bool code_known(int code)
{
    return code == GW_CLOSE_DISCONNECT || code == GW_CLOSE_DISCONNECT_STOP ||
           (code >= GW_CLOSE_APP_RECONNECT_MIN && code <= GW_CLOSE_APP_MAX);
}

/* The members of a disconnect, from an API body or a control message. */
static int read_disconnect(json_t *root, struct gw_ctl_disconnect *out, enum gw_err *err, char *msg, size_t mlen)
{
    json_t *user = json_object_get(root, "user"), *code = json_object_get(root, "code"),
           *reason = json_object_get(root, "reason"), *rec = json_object_get(root, "reconnect");
    bool stops;

    if (!user)
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST, "\"user\" is missing");
    if (!copy_str(user, GW_CTL_USER_MAX, out->user, &out->user_len, false))
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST,
                    "\"user\" must be a string of 1..%d bytes without NUL (a token's \"sub\")", GW_CTL_USER_MAX);
    if (rec && !json_is_boolean(rec))
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST, "\"reconnect\" must be true or false");
    if (code) {
        json_int_t c = json_is_integer(code) ? json_integer_value(code) : 0;
        if (!code_known((int)c) || c != (int)c)
            return fail(err, msg, mlen, GW_ERR_BAD_REQUEST,
                        "\"code\" must be %d, %d, or an integer in %d..%d", GW_CLOSE_DISCONNECT,
                        GW_CLOSE_DISCONNECT_STOP, GW_CLOSE_APP_RECONNECT_MIN, GW_CLOSE_APP_MAX);
        out->code = (int)c;
        stops = gw_ctl_code_stops(out->code);
        if (rec && json_is_true(rec) == stops)
            return fail(err, msg, mlen, GW_ERR_BAD_REQUEST,
                        "\"code\" %d %s, which contradicts \"reconnect\"", out->code,
                        stops ? "tells the client not to reconnect" : "tells the client to reconnect");
    } else {
        stops = rec && json_is_false(rec);
        out->code = stops ? GW_CLOSE_DISCONNECT_STOP : GW_CLOSE_DISCONNECT;
    }
    if (reason) {
        if (!copy_str(reason, GW_CTL_REASON_MAX, out->reason, NULL, true))
            return fail(err, msg, mlen, GW_ERR_BAD_REQUEST, "\"reason\" must be a string of at most %d bytes",
                        GW_CTL_REASON_MAX);
    } else {
        snprintf(out->reason, sizeof out->reason, "%s", stops ? "disconnected, do not reconnect" : "disconnected");
    }
    return 0;
}

/* Loads an object body whose members are all in known[0..n). */
static json_t *load_object(const char *buf, size_t len, const char *const *known, size_t n, const char *what,
                           enum gw_err *err, char *errmsg, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *v;
    const char *key;

    *err = GW_ERR_NONE;
    if (errlen)
        errmsg[0] = '\0';
    root = json_loadb(buf ? buf : "", buf ? len : 0, LOAD_FLAGS, &jerr);
    if (!root && json_error_code(&jerr) == json_error_duplicate_key) {
        fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "a member appears twice: %s", jerr.text);
        return NULL;
    }
    if (!root) {
        fail(err, errmsg, errlen, GW_ERR_BAD_JSON, "invalid JSON at byte %d: %s", jerr.position, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "body must be a JSON object with %s", what);
        return NULL;
    }
    json_object_foreach(root, key, v) {
        bool ok = false;
        for (size_t i = 0; i < n; i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok) {
            char name[64];
            snprintf(name, sizeof name, "%s", key);
            json_decref(root);
            fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "unknown member \"%s\"", name);
            return NULL;
        }
    }
    return root;
}

int gw_ctl_parse_disconnect_body(const char *buf, size_t len, struct gw_ctl_disconnect *out, enum gw_err *err,
                                 char *errmsg, size_t errlen)
{
    /* An unknown member is most likely a typo ("reconect"); refusing it keeps
     * a ban from silently becoming a plain disconnect. */
    static const char *const known[] = { "user", "code", "reason", "reconnect" };
    json_t *root;
    int rc;

    memset(out, 0, sizeof *out);
    root = load_object(buf, len, known, 4, "\"user\"", err, errmsg, errlen);
    if (!root)
        return -EINVAL;
    rc = read_disconnect(root, out, err, errmsg, errlen);
    json_decref(root);
    return rc;
}

int gw_ctl_parse_revoke_body(const char *buf, size_t len, bool lift, int64_t keep_default, int64_t keep_max,
                             struct gw_ctl_revoke *out, enum gw_err *err, char *errmsg, size_t errlen)
{
    static const char *const known[] = { "user", "keep" };
    json_t *root, *user, *keep;
    int rc = 0;

    memset(out, 0, sizeof *out);
    root = load_object(buf, len, known, lift ? 1 : 2, "\"user\"", err, errmsg, errlen);
    if (!root)
        return -EINVAL;
    user = json_object_get(root, "user");
    keep = json_object_get(root, "keep");
    out->keep = keep_default;
    if (!user)
        rc = fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"user\" is missing");
    else if (!copy_str(user, GW_CTL_USER_MAX, out->user, &out->user_len, false))
        rc = fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST,
                  "\"user\" must be a string of 1..%d bytes without NUL (a token's \"sub\")", GW_CTL_USER_MAX);
    else if (keep && (!json_is_integer(keep) || json_integer_value(keep) < 1 || json_integer_value(keep) > keep_max))
        rc = fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"keep\" must be an integer number of seconds in 1..%" PRId64,
                  keep_max);
    else if (keep)
        out->keep = json_integer_value(keep);
    json_decref(root);
    return rc;
}

/* The members of an unsubscribe, from an API body or a control message. */
static int read_unsubscribe(json_t *root, struct gw_ctl_unsubscribe *out, enum gw_err *err, char *msg, size_t mlen)
{
    json_t *user = json_object_get(root, "user"), *ch = json_object_get(root, "channel"),
           *reason = json_object_get(root, "reason");

    if (!user || !copy_str(user, GW_CTL_USER_MAX, out->user, &out->user_len, false))
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST,
                    "\"user\" must be a string of 1..%d bytes without NUL (a token's \"sub\")", GW_CTL_USER_MAX);
    if (!ch || !json_is_string(ch))
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST, "\"channel\" must be a string");
    if (!copy_str(ch, GW_CHANNEL_MAX, out->channel, &out->channel_len, false) ||
        !gw_channel_valid(out->channel, out->channel_len))
        return fail(err, msg, mlen, GW_ERR_BAD_CHANNEL,
                    "channel name must be 1..128 bytes of A-Z a-z 0-9 _ - : . @ / =");
    if (reason && !copy_str(reason, GW_CTL_REASON_MAX, out->reason, NULL, true))
        return fail(err, msg, mlen, GW_ERR_BAD_REQUEST, "\"reason\" must be a string of at most %d bytes",
                    GW_CTL_REASON_MAX);
    if (!reason)
        snprintf(out->reason, sizeof out->reason, "unsubscribed by the server");
    return 0;
}

int gw_ctl_parse_unsubscribe_body(const char *buf, size_t len, struct gw_ctl_unsubscribe *out, enum gw_err *err,
                                  char *errmsg, size_t errlen)
{
    static const char *const known[] = { "user", "channel", "reason" };
    json_t *root;
    int rc;

    memset(out, 0, sizeof *out);
    root = load_object(buf, len, known, 3, "\"user\" and \"channel\"", err, errmsg, errlen);
    if (!root)
        return -EINVAL;
    rc = read_unsubscribe(root, out, err, errmsg, errlen);
    json_decref(root);
    return rc;
}

static void oom(void) __attribute__((noreturn));

/* Strict decimal in s[0..len) into *v, at most max. */
static bool read_uint(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t n = 0;

    if (!len || len > 16)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    *v = n;
    return n <= max;
}

/* A query parameter neither parser knows: its name (cut at 48 bytes) in the
 * message. Returns -EINVAL. */
static int unknown_param(const char *name, size_t nlen, enum gw_err *err, char *errmsg, size_t errlen)
{
    return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "unknown query parameter \"%.*s\"",
                (int)(nlen < 48 ? nlen : 48), name);
}

int gw_ctl_parse_history_query(const char *q, size_t len, struct gw_ctl_history *out, enum gw_err *err,
                               char *errmsg, size_t errlen)
{
    bool seen_limit = false;
    struct gw_query it;
    const char *p, *v;
    size_t nlen, vlen;
    int rc;

    memset(out, 0, sizeof *out);
    out->limit = GW_HISTORY_LIMIT_DEFAULT;
    *err = GW_ERR_NONE;
    if (errlen)
        errmsg[0] = '\0';
    gw_query_init(&it, q, len);
    while ((rc = gw_query_next(&it, &p, &nlen, &v, &vlen)) > 0) {
        uint64_t n;

        if (nlen == 7 && memcmp(p, "channel", 7) == 0) {
            if (out->channel_len)
                return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"channel\" given twice");
            if (vlen > GW_CHANNEL_MAX || !gw_channel_valid(v, vlen))
                return fail(err, errmsg, errlen, GW_ERR_BAD_CHANNEL,
                            "channel name must be 1..128 bytes of A-Z a-z 0-9 _ - : . @ / =");
            memcpy(out->channel, v, vlen);
            out->channel_len = vlen;
        } else if (nlen == 5 && memcmp(p, "limit", 5) == 0) {
            if (seen_limit || !read_uint(v, vlen, GW_HISTORY_LIMIT_MAX, &n) || n < 1)
                return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"limit\" must be an integer 1..%d, once",
                            GW_HISTORY_LIMIT_MAX);
            seen_limit = true;
            out->limit = (int)n;
        } else if (nlen == 5 && memcmp(p, "since", 5) == 0) {
            const char *colon = memchr(v, ':', vlen);
            size_t elen = colon ? vlen - (size_t)(colon + 1 - v) : 0;
            if (out->has_since || !colon || !read_uint(v, (size_t)(colon - v), (uint64_t)SAFE_INT_MAX, &n) ||
                (elen && !gw_envelope_epoch_valid(colon + 1, elen)))
                return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST,
                            "\"since\" must be <offset>:<epoch> (the epoch may be empty), once");
            out->has_since = true;
            gw_position_set(&out->since, n, colon + 1, elen);
        } else {
            return unknown_param(p, nlen, err, errmsg, errlen);
        }
    }
    if (rc < 0)
        return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "query parts must be name=value");
    if (!out->channel_len)
        return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"channel\" is missing");
    return 0;
}

bool gw_ctl_channels_match(const struct gw_ctl_channels *q, const char *name, size_t len)
{
    if (len < q->prefix_len || memcmp(name, q->prefix, q->prefix_len) != 0)
        return false;
    return q->wildcard || len == q->prefix_len;
}

int gw_ctl_parse_channels_query(const char *q, size_t len, struct gw_ctl_channels *out, enum gw_err *err,
                                char *errmsg, size_t errlen)
{
    bool seen_limit = false, seen_pattern = false, seen_cursor = false;
    struct gw_query it;
    const char *p, *v;
    size_t nlen, vlen;
    int rc;

    memset(out, 0, sizeof *out);
    out->limit = GW_CHANNELS_LIMIT_DEFAULT;
    out->wildcard = true;
    *err = GW_ERR_NONE;
    if (errlen)
        errmsg[0] = '\0';
    gw_query_init(&it, q, len);
    while ((rc = gw_query_next(&it, &p, &nlen, &v, &vlen)) > 0) {
        uint64_t n;

        if (nlen == 7 && memcmp(p, "pattern", 7) == 0) {
            bool star = vlen && v[vlen - 1] == '*';
            size_t plen = star ? vlen - 1 : vlen;
            /* The prefix before a '*' may be any start of a name, empty too;
             * without '*' it is a whole name. */
            if (seen_pattern || plen > GW_CHANNEL_MAX || (!star && !plen) ||
                (plen && !gw_channel_valid(v, plen)))
                return fail(err, errmsg, errlen, GW_ERR_BAD_CHANNEL,
                            "\"pattern\" must be a channel name, or a prefix of one followed by '*', once");
            seen_pattern = true;
            memcpy(out->prefix, v, plen);
            out->prefix_len = plen;
            out->wildcard = star;
        } else if (nlen == 6 && memcmp(p, "cursor", 6) == 0) {
            if (seen_cursor || vlen > GW_CHANNEL_MAX || (vlen && !gw_channel_valid(v, vlen)))
                return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST,
                            "\"cursor\" must be the \"next\" of a previous page (a channel name), once");
            seen_cursor = true;
            memcpy(out->cursor, v, vlen);
            out->cursor_len = vlen;
        } else if (nlen == 5 && memcmp(p, "limit", 5) == 0) {
            if (seen_limit || !read_uint(v, vlen, GW_CHANNELS_LIMIT_MAX, &n) || n < 1)
                return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "\"limit\" must be an integer 1..%d, once",
                            GW_CHANNELS_LIMIT_MAX);
            seen_limit = true;
            out->limit = (int)n;
        } else {
            return unknown_param(p, nlen, err, errmsg, errlen);
        }
    }
    if (rc < 0)
        return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST, "query parts must be name=value");
    return 0;
}

int gw_ctl_idempotency_key(const char *body, size_t len, char *out, size_t *klen, enum gw_err *err, char *errmsg,
                           size_t errlen)
{
    const char *v;
    size_t vlen;
    json_t *j;
    bool ok;

    *klen = 0;
    *err = GW_ERR_NONE;
    if (!gw_json_member(body, len, "idempotency_key", &v, &vlen))
        return 0;
    j = json_loadb(v, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    ok = json_is_string(j) && json_string_length(j) >= 1 && json_string_length(j) <= GW_CTL_IDEM_MAX;
    for (size_t i = 0; ok && i < json_string_length(j); i++)
        ok = json_string_value(j)[i] > 0x20 && json_string_value(j)[i] < 0x7f;
    if (ok) {
        *klen = json_string_length(j);
        memcpy(out, json_string_value(j), *klen);
        out[*klen] = '\0';
    }
    json_decref(j);
    if (!ok)
        return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST,
                    "\"idempotency_key\" must be a string of 1..%d visible ASCII bytes", GW_CTL_IDEM_MAX);
    return 0;
}

bool gw_ctl_is_batch(const char *buf, size_t len)
{
    /* Read by jansson, as the batch parser and the publish parser do. */
    json_t *root = json_loadb(buf ? buf : "", buf ? len : 0, JSON_ALLOW_NUL, NULL);
    bool batch = json_is_object(root) && json_object_get(root, "messages") != NULL;

    json_decref(root);
    return batch;
}

int gw_ctl_parse_batch(const char *buf, size_t len, struct gw_ctl_batch *out, enum gw_err *err, char *errmsg,
                       size_t errlen)
{
    static const char *const known[] = { "messages" };
    json_t *root, *arr;
    size_t n;

    memset(out, 0, sizeof *out);
    root = load_object(buf, len, known, 1, "\"messages\"", err, errmsg, errlen);
    if (!root)
        return -EINVAL;
    arr = json_object_get(root, "messages");
    n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (n < 1 || n > GW_CTL_BATCH_MAX) {
        json_decref(root);
        return fail(err, errmsg, errlen, GW_ERR_BAD_REQUEST,
                    "\"messages\" must be an array of 1..%d {channel, data} objects", GW_CTL_BATCH_MAX);
    }
    out->items = gw_xcalloc(n, sizeof *out->items);
    out->lens = gw_xcalloc(n, sizeof *out->lens);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        out->items[i] = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!out->items[i])
            oom();
        out->lens[i] = strlen(out->items[i]);
    }
    json_decref(root);
    return 0;
}

void gw_ctl_batch_deinit(struct gw_ctl_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i]);
    free(b->items);
    free(b->lens);
    memset(b, 0, sizeof *b);
}

int gw_ctl_parse(const char *buf, size_t len, struct gw_ctl_msg *out)
{
    json_error_t jerr;
    json_t *root, *op, *req;
    enum gw_err err;
    int rc = -EINVAL;

    memset(out, 0, sizeof *out);
    root = json_loadb(buf ? buf : "", buf ? len : 0, LOAD_FLAGS, &jerr);
    if (!root)
        return -EINVAL;
    op = json_object_get(root, "op");
    req = json_object_get(root, "req");
    if (!json_is_object(root) || !json_is_string(op) || !json_is_integer(req) || json_integer_value(req) < 0 ||
        json_integer_value(req) > SAFE_INT_MAX ||
        !copy_str(json_object_get(root, "from"), GW_CTL_NODE_MAX, out->from, NULL, false))
        goto out;
    out->req = (uint64_t)json_integer_value(req);
    if (strcmp(json_string_value(op), "disconnect") == 0) {
        if (read_disconnect(root, &out->dis, &err, NULL, 0) == 0) {
            out->op = GW_CTL_DISCONNECT;
            rc = 0;
        }
    } else if (strcmp(json_string_value(op), "revoke") == 0 || strcmp(json_string_value(op), "unrevoke") == 0) {
        json_t *at = json_object_get(root, "at"), *until = json_object_get(root, "until");
        if (copy_str(json_object_get(root, "user"), GW_CTL_USER_MAX, out->dis.user, &out->dis.user_len, false) &&
            json_is_integer(at) && json_is_integer(until) && json_integer_value(at) >= 0 &&
            json_integer_value(until) > json_integer_value(at) && json_integer_value(until) <= SAFE_INT_MAX) {
            out->at = json_integer_value(at);
            out->until = json_integer_value(until);
            out->op = strcmp(json_string_value(op), "revoke") == 0 ? GW_CTL_REVOKE : GW_CTL_UNREVOKE;
            rc = 0;
        }
    } else if (strcmp(json_string_value(op), "unsubscribe") == 0) {
        if (read_unsubscribe(root, &out->unsub, &err, NULL, 0) == 0) {
            out->op = GW_CTL_UNSUBSCRIBE;
            rc = 0;
        }
    } else if (strcmp(json_string_value(op), "done") == 0) {
        json_t *closed = json_object_get(root, "closed");
        if (json_is_integer(closed) && json_integer_value(closed) >= 0 && json_integer_value(closed) <= SAFE_INT_MAX) {
            out->closed = (uint64_t)json_integer_value(closed);
            out->op = GW_CTL_DONE;
            rc = 0;
        }
    }
out:
    json_decref(root);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* jansson fails here only when out of memory: fatal, as in alloc.h. */
static void oom(void)
{
    static const char msg[] = "wsgate: out of memory building a control message\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing left to report to */
    }
    abort();
}

static void set_new(json_t *o, const char *key, json_t *v)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        oom();
}

char *gw_ctl_format(const struct gw_ctl_msg *m, size_t *len)
{
    json_t *o = json_object();
    char *text;

    if (!o)
        oom();
    static const char *const ops[] = { "", "disconnect", "done", "revoke", "unrevoke", "unsubscribe" };

    set_new(o, "op", json_string(ops[m->op]));
    set_new(o, "from", json_string(m->from));
    set_new(o, "req", json_integer((json_int_t)(m->req & (uint64_t)SAFE_INT_MAX)));
    if (m->op == GW_CTL_DONE) {
        set_new(o, "closed", json_integer((json_int_t)(m->closed & (uint64_t)SAFE_INT_MAX)));
    } else if (m->op == GW_CTL_UNSUBSCRIBE) {
        set_new(o, "user", json_stringn(m->unsub.user, m->unsub.user_len));
        set_new(o, "channel", json_stringn(m->unsub.channel, m->unsub.channel_len));
        set_new(o, "reason", json_string(m->unsub.reason));
    } else if (m->op == GW_CTL_REVOKE || m->op == GW_CTL_UNREVOKE) {
        set_new(o, "user", json_stringn(m->dis.user, m->dis.user_len));
        set_new(o, "at", json_integer((json_int_t)m->at));
        set_new(o, "until", json_integer((json_int_t)m->until));
    } else {
        set_new(o, "user", json_stringn(m->dis.user, m->dis.user_len));
        set_new(o, "code", json_integer(m->dis.code));
        set_new(o, "reason", json_string(m->dis.reason));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        oom();
    *len = strlen(text);
    return text;
}
