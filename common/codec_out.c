/* Server frames of protocol v1, written by hand into exactly sized frames:
 * the outbound path runs once per Redis message and must not build a JSON
 * tree. The parser is codec.c. */
#include "codec.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json.h"

#define LIT_LEN(s) (sizeof(s) - 1)

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

struct gw_frame *gw_codec_unsubscribed(const char *channel, size_t channel_len, const char *reason)
{
    static const char head[] = "{\"type\":\"unsubscribe\",\"channel\":", mid[] = ",\"reason\":";
    size_t rlen = strlen(reason);
    size_t cap = LIT_LEN(head) + gw_json_escape_len(channel, channel_len) + LIT_LEN(mid) +
                 gw_json_escape_len(reason, rlen) + 1;
    struct gw_frame *f = gw_frame_new(cap);
    char *start, *o;

    start = o = (char *)gw_frame_payload(f);
    o = put(o, head, LIT_LEN(head));
    o += gw_json_escape(o, channel, channel_len);
    o = put(o, mid, LIT_LEN(mid));
    o += gw_json_escape(o, reason, rlen);
    o = put(o, "}", 1);
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

/* How one payload becomes a "data" value: valid JSON is embedded verbatim
 * (surrounding whitespace dropped), anything else as an escaped string. */
struct data_plan {
    const char *body;
    size_t len; /* bytes written by put_data */
    size_t payload_len;
    bool verbatim;
};

static struct data_plan plan_data(const char *payload, size_t payload_len)
{
    const unsigned char *body = (const unsigned char *)payload;
    const unsigned char *body_end = body + payload_len;
    struct data_plan d = { payload, 0, payload_len, gw_json_valid(payload, payload_len) };

    if (d.verbatim) {
        /* Surrounding whitespace (e.g. the newline of `redis-cli -x`) is
         * not part of the value; dropping it keeps frames compact. */
        while (body < body_end && is_json_ws(*body))
            body++;
        while (body_end > body && is_json_ws(body_end[-1]))
            body_end--;
        d.body = (const char *)body;
        d.len = (size_t)(body_end - body);
    } else {
        /* Counting first costs a second pass over the payload but sizes the
         * frame exactly; a 6x worst-case capacity would be kept alive for as
         * long as the slowest subscriber holds the frame. */
        d.len = gw_json_escape_len(payload, payload_len);
    }
    return d;
}

static char *put_data(char *o, const struct data_plan *d)
{
    if (d->verbatim)
        return put(o, d->body, d->len);
    return o + gw_json_escape(o, d->body, d->payload_len);
}

static const char msg_head[] = "{\"type\":\"message\",\"channel\":\"";
static const char msg_data[] = "\",\"data\":";

struct gw_frame *gw_codec_message(const char *channel, size_t channel_len,
                                  const char *payload, size_t payload_len)
{
    return gw_codec_message_at(channel, channel_len, payload, payload_len, NULL);
}

struct gw_frame *gw_codec_message_at(const char *channel, size_t channel_len, const char *payload,
                                     size_t payload_len, const struct gw_position *at)
{
    struct data_plan d = plan_data(payload, payload_len);
    char tail[96];
    int tn = 0;
    struct gw_frame *f;
    char *start, *o;

    assert(gw_channel_valid(channel, channel_len));
    if (at && at->offset) {
        /* The epoch needs no escaping: envelope.h allows only [0-9A-Za-z_-]. */
        tn = snprintf(tail, sizeof tail, ",\"offset\":%" PRIu64 ",\"epoch\":\"%s\"", at->offset, at->epoch);
        assert(tn > 0 && (size_t)tn < sizeof tail);
    }
    f = gw_frame_new(LIT_LEN(msg_head) + channel_len + LIT_LEN(msg_data) + d.len + (size_t)tn + 1);
    start = o = (char *)gw_frame_payload(f);
    o = put(o, msg_head, LIT_LEN(msg_head));
    o = put(o, channel, channel_len);
    o = put(o, msg_data, LIT_LEN(msg_data));
    o = put_data(o, &d);
    o = put(o, tail, (size_t)tn);
    *o++ = '}';
    f->len = (size_t)(o - start);
    f->offset = at ? at->offset : 0;
    assert(f->len == f->cap);
    return sealed(f);
}

struct gw_frame *gw_codec_ack_publish(int64_t id, const struct gw_position *at)
{
    char buf[160];
    int n;

    if (!at || !at->offset)
        return gw_codec_ack(id);
    n = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%" PRId64 ",\"offset\":%" PRIu64 ",\"epoch\":\"%s\"}",
                 id, at->offset, at->epoch);
    assert(n > 0 && (size_t)n < sizeof buf);
    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

struct gw_frame *gw_codec_ack_position(int64_t id, const char *channel, size_t channel_len,
                                       const struct gw_position *at, int recovered)
{
    char buf[GW_CHANNEL_MAX + 224];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"ack\",\"id\":%" PRId64 ",\"channel\":\"%.*s\",\"offset\":%" PRIu64
                     ",\"epoch\":\"%s\"%s}",
                     id, (int)channel_len, channel, at->offset, at->epoch,
                     recovered < 0 ? "" : recovered ? ",\"recovered\":true" : ",\"recovered\":false");

    assert(n > 0 && (size_t)n < sizeof buf);
    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

struct gw_frame *gw_codec_gap(const char *channel, size_t channel_len, const char *epoch, size_t epoch_len,
                              uint64_t from, uint64_t to)
{
    char buf[GW_CHANNEL_MAX + 160];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"gap\",\"channel\":\"%.*s\",\"epoch\":\"%.*s\",\"from\":%" PRIu64
                     ",\"to\":%" PRIu64 "}",
                     (int)channel_len, channel, (int)epoch_len, epoch, from, to);

    assert(n > 0 && (size_t)n < sizeof buf);
    return sealed(gw_frame_new_copy(buf, (size_t)n));
}

static const char hist_entry_head[] = "{\"offset\":";
static const char hist_entry_data[] = ",\"data\":";

struct gw_frame *gw_codec_history(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                  const struct gw_position *at, bool complete, const struct gw_history_entry *e,
                                  size_t n)
{
    char head[GW_CHANNEL_MAX + 224], num[24];
    int hn;
    size_t cap;
    struct gw_frame *f;
    char *start, *o;

    if (has_id)
        hn = snprintf(head, sizeof head, "{\"type\":\"history\",\"id\":%" PRId64, id);
    else
        hn = snprintf(head, sizeof head, "{\"type\":\"history\"");
    hn += snprintf(head + hn, sizeof head - (size_t)hn,
                   ",\"channel\":\"%.*s\",\"epoch\":\"%s\",\"offset\":%" PRIu64 ",\"complete\":%s,\"messages\":[",
                   (int)channel_len, channel, at->epoch, at->offset, complete ? "true" : "false");
    assert(hn > 0 && (size_t)hn < sizeof head);
    /* Each payload is judged (JSON or not) once: the plans size the frame
     * and then fill it. */
    struct data_plan *plans = gw_xmalloc(sizeof(*plans) * (n ? n : 1));
    cap = (size_t)hn + 2;
    for (size_t i = 0; i < n; i++) {
        plans[i] = plan_data(e[i].payload, e[i].len);
        cap += (i ? 1 : 0) + LIT_LEN(hist_entry_head) + (size_t)snprintf(num, sizeof num, "%" PRIu64, e[i].offset) +
               LIT_LEN(hist_entry_data) + plans[i].len + 1;
    }
    f = gw_frame_new(cap);
    start = o = (char *)gw_frame_payload(f);
    o = put(o, head, (size_t)hn);
    for (size_t i = 0; i < n; i++) {
        int nn = snprintf(num, sizeof num, "%" PRIu64, e[i].offset);

        if (i)
            *o++ = ',';
        o = put(o, hist_entry_head, LIT_LEN(hist_entry_head));
        o = put(o, num, (size_t)nn);
        o = put(o, hist_entry_data, LIT_LEN(hist_entry_data));
        o = put_data(o, &plans[i]);
        *o++ = '}';
    }
    free(plans);
    *o++ = ']';
    *o++ = '}';
    f->len = (size_t)(o - start);
    assert(f->len == f->cap);
    return sealed(f);
}

/* ---- request parser ---- */
