/* libFuzzer harness for the request parsers (common/codec.[ch]): the input is
 * one client text message, and also an HTTP publish body. Properties checked
 * on every input: a parse that succeeds had strictly valid JSON, a valid
 * channel, a safe id and data the message builder embeds as the value; a
 * parse that fails names a real error code with human text; every frame
 * built from the result (error, ack, pong, auth ack, message, presence) is valid JSON
 * to the project's own validator. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "channel.h"
#include "codec.h"
#include "json.h"

#define SAFE_INT_MAX INT64_C(9007199254740991)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message frame nests one level deeper than its data. */
static void check_frame(struct gw_frame *f, size_t depth)
{
    if (!gw_json_valid_depth((const char *)gw_frame_payload(f), f->len, depth))
        abort();
    gw_frame_unref(f);
}

static void check(const char *buf, size_t size, const struct gw_request *req, int rc, bool body)
{
    if (rc != 0) {
        if (req->err <= GW_ERR_NONE || req->err >= GW_ERR__COUNT || req->errmsg[0] == '\0')
            abort();
        if (req->data_json || req->token)
            abort();
        check_frame(gw_codec_error(req->err, req->has_id, req->id, req->errmsg), GW_JSON_MAX_DEPTH);
        return;
    }
    if (req->err != GW_ERR_NONE || !gw_json_valid_depth(buf, size, GW_JSON_DEPTH_CAP))
        abort();
    if (req->has_id && (req->id > SAFE_INT_MAX || req->id < -SAFE_INT_MAX))
        abort();
    if (body && req->type != GW_REQ_PUBLISH)
        abort();
    switch (req->type) {
    case GW_REQ_SUBSCRIBE:
    case GW_REQ_UNSUBSCRIBE:
    case GW_REQ_PUBLISH:
    case GW_REQ_HISTORY:
    case GW_REQ_PRESENCE:
    case GW_REQ_PRESENCE_STATS:
        if (!gw_channel_valid(req->channel, req->channel_len) || strlen(req->channel) != req->channel_len)
            abort();
        break;
    case GW_REQ_PING:
    case GW_REQ_AUTH:
        break;
    default:
        abort();
    }
    /* A position is a safe integer and at most 32 epoch bytes, NUL-terminated. */
    if (req->has_since && (req->since.offset > (uint64_t)SAFE_INT_MAX || req->since.epoch_len > GW_ENVELOPE_EPOCH_MAX ||
                           strlen(req->since.epoch) != req->since.epoch_len || !req->recover))
        abort();
    if (req->type == GW_REQ_HISTORY && (req->limit < 1 || req->limit > GW_HISTORY_LIMIT_MAX))
        abort();
    if (req->type == GW_REQ_PRESENCE) {
        size_t n = strlen(req->cursor);
        /* The cursor goes to Redis as text: decimal digits only, bounded. */
        if (req->limit < 1 || req->limit > GW_HISTORY_LIMIT_MAX || n == 0 || n > GW_PRESENCE_CURSOR_MAX ||
            strspn(req->cursor, "0123456789") != n)
            abort();
        /* The reply, with the input itself as a member's user, client and info. */
        struct gw_presence_member m = { buf, buf, buf, size, size, size };
        check_frame(gw_codec_presence(req->has_id, req->id, req->channel, req->channel_len, 1, 1, req->cursor, &m, 1),
                    GW_JSON_MAX_DEPTH + 2);
    }
    if (req->type == GW_REQ_PRESENCE_STATS)
        check_frame(gw_codec_presence_stats(req->has_id, req->id, req->channel, req->channel_len, UINT64_MAX, 0),
                    GW_JSON_MAX_DEPTH);
    if (req->has_since && req->type == GW_REQ_SUBSCRIBE)
        check_frame(gw_codec_ack_position(req->id, req->channel, req->channel_len, &req->since, 1),
                    GW_JSON_MAX_DEPTH);
    if (req->type == GW_REQ_PUBLISH) {
        struct gw_frame *f;
        const char *p;

        if (!req->data_json || !gw_json_valid(req->data_json, req->data_len))
            abort();
        f = gw_codec_message(req->channel, req->channel_len, req->data_json, req->data_len);
        p = (const char *)gw_frame_payload(f);
        /* Embedded as the value, not escaped into a string. */
        if (f->len < req->data_len + 1 || memcmp(p + f->len - 1 - req->data_len, req->data_json, req->data_len) != 0)
            abort();
        check_frame(f, GW_JSON_MAX_DEPTH + 1);
    }
    if (req->type == GW_REQ_AUTH) {
        if (!req->token)
            abort();
        check_frame(gw_codec_ack_auth(req->id, req->token, INT64_MAX), GW_JSON_MAX_DEPTH);
    }
    check_frame(gw_codec_ack(req->id), GW_JSON_MAX_DEPTH);
    check_frame(gw_codec_pong(req->has_id, req->id), GW_JSON_MAX_DEPTH);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = gw_xmalloc(size ? size : 1); /* exactly sized, so ASan sees overreads */
    struct gw_request req;
    int rc;

    memcpy(buf, data, size);
    /* The input as a presence event from Redis: what comes out is JSON. */
    struct gw_frame *ev = gw_codec_presence_event("room", 4, buf, size);
    if (ev)
        check_frame(ev, GW_JSON_MAX_DEPTH + 1);
    rc = gw_codec_parse(buf, size, &req);
    check(buf, size, &req, rc, false);
    gw_request_deinit(&req);
    rc = gw_codec_parse_publish_body(buf, size, &req);
    check(buf, size, &req, rc, true);
    gw_request_deinit(&req);
    free(buf);
    if (gw_frame_live_count() != 0)
        abort();
    return 0;
}
