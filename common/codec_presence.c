/* Server frames of the presence requests (docs/PROTOCOL.md "Presence"): a page
 * of a channel's members and its counts. Built on the bus thread from what
 * Redis returned, so every string is escaped and an info that is not valid
 * JSON is left out. The requests themselves are parsed in codec.c. */
#include "codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json.h"

/* A growing buffer: a page is at most a few hundred KiB (1000 members x 1 KiB info). */
struct buf {
    char *p;
    size_t len, cap;
};

static char *reserve(struct buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = gw_xrealloc(b->p, b->cap);
    }
    return b->p + b->len;
}

static void add(struct buf *b, const char *s, size_t n)
{
    memcpy(reserve(b, n), s, n);
    b->len += n;
}

static void add_str(struct buf *b, const char *s)
{
    add(b, s, strlen(s));
}

static void add_json_string(struct buf *b, const char *s, size_t n)
{
    size_t need = gw_json_escape_len(s, n);
    gw_json_escape(reserve(b, need), s, n);
    b->len += need;
}

/* {"type":T[,"id":N],"channel":C,"connections":c,"users":u */
static void add_head(struct buf *b, const char *type, bool has_id, int64_t id, const char *channel,
                     size_t channel_len, uint64_t connections, uint64_t users)
{
    char num[96];

    add_str(b, "{\"type\":\"");
    add_str(b, type);
    add_str(b, "\"");
    if (has_id) {
        snprintf(num, sizeof num, ",\"id\":%" PRId64, id);
        add_str(b, num);
    }
    add_str(b, ",\"channel\":");
    add_json_string(b, channel, channel_len);
    snprintf(num, sizeof num, ",\"connections\":%" PRIu64 ",\"users\":%" PRIu64, connections, users);
    add_str(b, num);
}

static struct gw_frame *to_frame(struct buf *b)
{
    struct gw_frame *f = gw_frame_new_copy(b->p, b->len);
    free(b->p);
    gw_frame_seal_ws_text(f);
    return f;
}

struct gw_frame *gw_codec_presence_event(const char *channel, size_t channel_len, const char *payload, size_t len)
{
    static const char tag[] = GW_PRESENCE_EVENT_TAG, head[] = "{\"type\":\"";
    struct buf b = { 0 };

    if (len < sizeof tag - 1 + sizeof head - 1 || memcmp(payload, tag, sizeof tag - 1) != 0)
        return NULL;
    payload += sizeof tag - 1;
    len -= sizeof tag - 1;
    if (memcmp(payload, head, sizeof head - 1) != 0 || !gw_json_valid(payload, len))
        return NULL;
    /* {"type":"join", ...}: the type stays first, the channel comes second. */
    const char *q = payload + sizeof head - 1, *end = payload + len;
    while (q < end && ((*q >= 'a' && *q <= 'z') || *q == '_'))
        q++;
    if (q == payload + sizeof head - 1 || q + 1 >= end || *q != '"' || (q[1] != ',' && q[1] != '}'))
        return NULL;
    size_t typed = (size_t)(q + 1 - payload);
    add(&b, payload, typed);
    add_str(&b, ",\"channel\":");
    add_json_string(&b, channel, channel_len);
    add(&b, payload + typed, len - typed);
    return to_frame(&b);
}

struct gw_frame *gw_codec_presence_stats(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                         uint64_t connections, uint64_t users)
{
    struct buf b = { 0 };
    add_head(&b, "presence_stats", has_id, id, channel, channel_len, connections, users);
    add(&b, "}", 1);
    return to_frame(&b);
}

struct gw_frame *gw_codec_presence(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                   uint64_t connections, uint64_t users, const char *cursor,
                                   const struct gw_presence_member *m, size_t n)
{
    struct buf b = { 0 };

    add_head(&b, "presence", has_id, id, channel, channel_len, connections, users);
    add_str(&b, ",\"cursor\":");
    add_json_string(&b, cursor, strlen(cursor));
    add_str(&b, ",\"members\":[");
    for (size_t i = 0; i < n; i++) {
        add_str(&b, i ? ",{\"client\":" : "{\"client\":");
        add_json_string(&b, m[i].client, m[i].client_len);
        add_str(&b, ",\"user\":");
        if (m[i].user_len)
            add_json_string(&b, m[i].user, m[i].user_len);
        else
            add_str(&b, "null");
        if (m[i].info_len && gw_json_valid(m[i].info, m[i].info_len)) {
            add_str(&b, ",\"info\":");
            add(&b, m[i].info, m[i].info_len);
        }
        add(&b, "}", 1);
    }
    add_str(&b, "]}");
    return to_frame(&b);
}
