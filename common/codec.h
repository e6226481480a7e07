/* Protocol v1 codec (docs/PROTOCOL.md): parses one client text message into a
 * gw_request and builds server frames. Pure: no I/O, no globals, no threads.
 * Built frames are sealed: JSON text behind its WebSocket text-frame header. */
#ifndef GW_CODEC_H
#define GW_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "envelope.h"
#include "err.h"
#include "frame.h"

enum gw_req_type {
    GW_REQ_SUBSCRIBE = 1,
    GW_REQ_UNSUBSCRIBE,
    GW_REQ_PUBLISH,
    GW_REQ_PING,
    GW_REQ_AUTH,
    GW_REQ_HISTORY,
    GW_REQ_PRESENCE,       /* one page of a channel's members */
    GW_REQ_PRESENCE_STATS, /* a channel's connection and user counts */
};

#define GW_HISTORY_LIMIT_DEFAULT 100
#define GW_HISTORY_LIMIT_MAX 1000
/* Digits of a presence cursor (Redis HSCAN: an unsigned 64-bit integer). */
#define GW_PRESENCE_CURSOR_MAX 20

/* A parsed request. Owns data_json (malloc'd compact JSON of "data", publish
 * only) and token (auth only); release with gw_request_deinit(). */
struct gw_request {
    enum gw_req_type type;
    bool has_id;
    int64_t id;
    char channel[GW_CHANNEL_MAX + 1]; /* NUL-terminated, validated */
    size_t channel_len;
    char *data_json; /* publish: compact JSON text of data, owned */
    size_t data_len;
    char *token; /* auth: the "token" string, NUL-terminated, owned; not validated */
    size_t token_len;
    /* subscribe: "since" asks for recovery, "recover" only for the channel's
     * position; history: "since" picks the entries after it (else the latest). */
    bool recover; /* "recover": true, or "since" given */
    bool presence_events; /* subscribe: "presence": true (join/leave events) */
    bool has_since;
    struct gw_position since;
    int limit; /* history, presence: 1..GW_HISTORY_LIMIT_MAX, default GW_HISTORY_LIMIT_DEFAULT */
    char cursor[GW_PRESENCE_CURSOR_MAX + 1]; /* presence: decimal digits, "0" for the first page */
    /* On failure: */
    enum gw_err err;
    char errmsg[160];
};

/* Parses len bytes of one client text message. Returns 0 and fills *req on
 * success; on failure returns -EINVAL and sets req->err/errmsg (and has_id/id
 * when the request carried a usable id). req needs gw_request_deinit() in both
 * cases. Never keeps a pointer to buf. */
int gw_codec_parse(const char *buf, size_t len, struct gw_request *req);
void gw_request_deinit(struct gw_request *req);

/* Parses the body of an HTTP publish (POST /api/publish): a JSON object with
 * "channel" and "data" under the same rules as a client publish, other
 * members ignored. On success req->type is GW_REQ_PUBLISH and req holds the
 * channel and data_json; otherwise -EINVAL with err bad_json, bad_request or
 * bad_channel and errmsg. Same ownership as gw_codec_parse. */
int gw_codec_parse_publish_body(const char *buf, size_t len, struct gw_request *req);


/* Frame builders. Each returns a new frame (refcount 1) owned by the caller. */
struct gw_frame *gw_codec_ack(int64_t id);
/* The ack of an auth request: {"type":"ack","id":N,"sub":<sub>,"exp":<exp>};
 * "sub" is left out when sub is NULL (a token without a subject), and is
 * JSON-escaped here. */
struct gw_frame *gw_codec_ack_auth(int64_t id, const char *sub, int64_t exp);
struct gw_frame *gw_codec_pong(bool has_id, int64_t id);
/* {"type":"unsubscribe","channel":...,"reason":...}: a backend took the
 * client out of channel (POST /api/unsubscribe); reason is escaped here. */
struct gw_frame *gw_codec_unsubscribed(const char *channel, size_t channel_len, const char *reason);
/* message is human text; it is JSON-escaped here. */
struct gw_frame *gw_codec_error(enum gw_err err, bool has_id, int64_t id, const char *message);

/* The ack of a publish: with history (offset > 0) it carries the message's
 * "offset" and "epoch", else it is gw_codec_ack(id). */
struct gw_frame *gw_codec_ack_publish(int64_t id, const struct gw_position *at);

/* The ack of a subscribe that asked for recovery or its position:
 * {"type":"ack","id":N,"channel":C,"offset":O,"epoch":E[,"recovered":B]};
 * recovered < 0 leaves "recovered" out (no "since" was given). */
struct gw_frame *gw_codec_ack_position(int64_t id, const char *channel, size_t channel_len,
                                       const struct gw_position *at, int recovered);

/* {"type":"gap","channel":C,"epoch":E,"from":F,"to":T}: offsets from..to of
 * epoch will never reach this client. */
struct gw_frame *gw_codec_gap(const char *channel, size_t channel_len, const char *epoch, size_t epoch_len,
                              uint64_t from, uint64_t to);

/* The reply to a history request: {"type":"history","id":N,"channel":C,
 * "epoch":E,"offset":O,"complete":B,"messages":[{"offset":o,"data":d},...]};
 * each data follows gw_codec_message's rules. has_id false leaves "id" out. */
struct gw_frame *gw_codec_history(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                  const struct gw_position *at, bool complete, const struct gw_history_entry *e,
                                  size_t n);

/* One member of a presence page, as Redis holds it (borrowed). user_len 0:
 * anonymous (user null); info_len 0: no info. */
struct gw_presence_member {
    const char *client, *user, *info;
    size_t client_len, user_len, info_len;
};

/* The PUBLISH payload wsgate_presence_* emits on a channel (wsgate.lua:
 * 0xFE "wsgate-presence1" LF <JSON object starting {"type":">) as the client
 * frame {"type":...,"channel":C,...}, or NULL when payload is not one. */
#define GW_PRESENCE_EVENT_TAG "\xfewsgate-presence1\n"
struct gw_frame *gw_codec_presence_event(const char *channel, size_t channel_len, const char *payload, size_t len);

/* {"type":"presence_stats"[,"id":N],"channel":C,"connections":c,"users":u}
 * (codec_presence.c). */
struct gw_frame *gw_codec_presence_stats(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                         uint64_t connections, uint64_t users);
/* {"type":"presence"[,"id":N],"channel":C,"connections":c,"users":u,
 * "cursor":"<next page, \"0\" after the last>","members":[{"client":..,
 * "user":..|null[,"info":{..}]},..]}: strings escaped, an info that is not
 * valid JSON left out. Borrows m. */
struct gw_frame *gw_codec_presence(bool has_id, int64_t id, const char *channel, size_t channel_len,
                                   uint64_t connections, uint64_t users, const char *cursor,
                                   const struct gw_presence_member *m, size_t n);
/* Builds {"type":"message","channel":<channel>,"data":<payload>}. A payload
 * that is valid JSON (gw_json_valid) is embedded verbatim; any other payload
 * becomes a JSON string, invalid UTF-8 replaced by U+FFFD. channel must be a
 * valid channel name (not escaped). */
struct gw_frame *gw_codec_message(const char *channel, size_t channel_len,
                                  const char *payload, size_t payload_len);

/* As gw_codec_message, for a message with history: adds "offset" and
 * "epoch" (at->offset > 0) and stores the offset in frame->offset. */
struct gw_frame *gw_codec_message_at(const char *channel, size_t channel_len, const char *payload,
                                     size_t payload_len, const struct gw_position *at);

#endif
