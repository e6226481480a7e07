/* The server API's control requests: the JSON bodies of POST /api/disconnect,
 * /api/revoke and /api/unrevoke (docs/PROTOCOL.md, "Server API"), and the control messages the nodes
 * exchange over Redis to carry it out (the command on __wsgate:ctl, each
 * node's answer on __wsgate:ctl:<origin node id>).
 *
 * Pure: no sockets, no threads, no state. Every parser takes untrusted bytes
 * (a backend's body; whatever anyone PUBLISHes on the control channel),
 * keeps nothing of them, and sets an error once. Fuzzed by
 * tests/fuzz/fuzz_ctl.c. Any thread. */
#ifndef GW_CTL_H
#define GW_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "codec.h"
#include "err.h"

/* Redis channels of the control plane: outside every client prefix (clients
 * are refused `__wsgate:` names, docs/PROTOCOL.md "Channel names"). */
#define GW_CTL_CHANNEL "__wsgate:ctl"
#define GW_CTL_REPLY_PREFIX "__wsgate:ctl:"

/* A "sub" the API names: at most this many bytes (JWT subs are not bounded
 * by the verifier; a longer one cannot be disconnected by name). */
#define GW_CTL_USER_MAX 256
/* A close reason: RFC 6455 leaves 123 bytes of a close frame to it. */
#define GW_CTL_REASON_MAX 123
/* A node id inside a control message. */
#define GW_CTL_NODE_MAX 128

/* Close codes of a server-side disconnect (docs/PROTOCOL.md, "Close codes"). */
#define GW_CLOSE_DISCONNECT 4010        /* the client may reconnect */
#define GW_CLOSE_DISCONNECT_STOP 4011   /* the client must not reconnect by itself */
#define GW_CLOSE_APP_RECONNECT_MIN 4100 /* 4100..4299: application codes, reconnect */
#define GW_CLOSE_APP_STOP_MIN 4300      /* 4300..4499: application codes, do not reconnect */
#define GW_CLOSE_APP_MAX 4499

/* What a disconnect does; filled by gw_ctl_parse_disconnect_body and by
 * gw_ctl_parse for a GW_CTL_DISCONNECT. */
struct gw_ctl_disconnect {
    char user[GW_CTL_USER_MAX + 1]; /* NUL-terminated, holds no NUL */
    size_t user_len;
    int code;                           /* one of the codes above */
    char reason[GW_CTL_REASON_MAX + 1]; /* NUL-terminated close reason */
};

/* Parses a POST /api/disconnect body: {"user": string, "code"?: int,
 * "reason"?: string, "reconnect"?: bool}. Without "code", "reconnect"
 * (default true) picks 4010 or 4011; with both, they must agree (4100..4299
 * reconnect, 4300..4499 do not). Returns 0, or -EINVAL with *err set to
 * GW_ERR_BAD_JSON or GW_ERR_BAD_REQUEST and errmsg (NUL-terminated, at most
 * errlen bytes) saying why. buf may hold any bytes; it is not kept. */
int gw_ctl_parse_disconnect_body(const char *buf, size_t len, struct gw_ctl_disconnect *out, enum gw_err *err,
                                 char *errmsg, size_t errlen);

/* What a revocation does; filled by gw_ctl_parse_revoke_body. */
struct gw_ctl_revoke {
    char user[GW_CTL_USER_MAX + 1]; /* NUL-terminated, holds no NUL */
    size_t user_len;
    int64_t keep; /* seconds the record is kept: 1..keep_max */
};

/* Parses a POST /api/revoke body, {"user": string, "keep"?: int} (keep in
 * 1..keep_max, default keep_default), or with lift (POST /api/unrevoke)
 * {"user": string} alone. Returns as gw_ctl_parse_disconnect_body. */
int gw_ctl_parse_revoke_body(const char *buf, size_t len, bool lift, int64_t keep_default, int64_t keep_max,
                             struct gw_ctl_revoke *out, enum gw_err *err, char *errmsg, size_t errlen);

/* What a server-side unsubscribe does; filled by gw_ctl_parse_unsubscribe_body. */
struct gw_ctl_unsubscribe {
    char user[GW_CTL_USER_MAX + 1];
    size_t user_len;
    char channel[GW_CHANNEL_MAX + 1]; /* a valid channel name (channel.h) */
    size_t channel_len;
    char reason[GW_CTL_REASON_MAX + 1]; /* the push's "reason" */
};

/* Parses a POST /api/unsubscribe body, {"user": string, "channel": string,
 * "reason"?: string} (reason default "unsubscribed by the server"). Returns
 * as gw_ctl_parse_disconnect_body (GW_ERR_BAD_CHANNEL for a name that breaks
 * the channel rules). */
int gw_ctl_parse_unsubscribe_body(const char *buf, size_t len, struct gw_ctl_unsubscribe *out, enum gw_err *err,
                                  char *errmsg, size_t errlen);

/* GET /api/history's query (docs/PROTOCOL.md, "GET /api/history"). */
struct gw_ctl_history {
    char channel[GW_CHANNEL_MAX + 1];
    size_t channel_len;
    int limit;                /* 1..GW_HISTORY_LIMIT_MAX, default GW_HISTORY_LIMIT_DEFAULT */
    bool has_since;
    struct gw_position since; /* since=<offset>:<epoch> (epoch may be empty) */
};

/* Parses the query (the part after '?', already percent-decoded by the
 * HTTP layer; NULL/0 for none): channel=<name> (required), limit=<1..1000>,
 * since=<offset>:<epoch>, separated by '&', each at most once, nothing
 * else. Returns as gw_ctl_parse_disconnect_body (GW_ERR_BAD_CHANNEL for a
 * name that breaks the channel rules). */
int gw_ctl_parse_history_query(const char *q, size_t len, struct gw_ctl_history *out, enum gw_err *err,
                               char *errmsg, size_t errlen);

/* GET /api/channels's query (docs/PROTOCOL.md; served by gateway/bus_chans.c's
 * index). Channels are listed in byte
 * order of their names, so a cursor is simply the last name of the previous
 * page: the next page starts strictly after it, which stays correct while
 * channels come and go between pages (none is listed twice). */
#define GW_CHANNELS_LIMIT_DEFAULT 100
#define GW_CHANNELS_LIMIT_MAX 1000
struct gw_ctl_channels {
    char prefix[GW_CHANNEL_MAX + 1]; /* pattern without its '*'; may be empty */
    size_t prefix_len;
    bool wildcard;                   /* pattern ended in '*' (or was absent): a prefix match */
    char cursor[GW_CHANNEL_MAX + 1]; /* a valid channel name, or empty: the first page */
    size_t cursor_len;
    int limit;                       /* 1..GW_CHANNELS_LIMIT_MAX, default GW_CHANNELS_LIMIT_DEFAULT */
};

/* Parses the query (percent-decoded; NULL/0 for none): pattern=<name> (one
 * channel) or pattern=<prefix>* (channels starting with prefix; "*" is all,
 * the default), cursor=<channel name>, limit=<1..1000>, separated by '&',
 * each at most once, nothing else. The access-pattern "{sub}" has no subject
 * here and is refused. Returns as gw_ctl_parse_disconnect_body
 * (GW_ERR_BAD_CHANNEL for a pattern that breaks the channel rules). */
int gw_ctl_parse_channels_query(const char *q, size_t len, struct gw_ctl_channels *out, enum gw_err *err,
                                char *errmsg, size_t errlen);
/* True when the channel name[0..len) is one q's pattern selects. */
bool gw_ctl_channels_match(const struct gw_ctl_channels *q, const char *name, size_t len);

/* An idempotency key: 1..GW_CTL_IDEM_MAX bytes of visible ASCII. */
#define GW_CTL_IDEM_MAX 128

/* Reads the optional "idempotency_key" member of a POST /api/publish body
 * that the codec accepted (valid JSON). Returns 0 with *klen 0 when there is
 * none, 0 with the key in out (room for GW_CTL_IDEM_MAX + 1) and *klen, or
 * -EINVAL (GW_ERR_BAD_REQUEST in *err, errmsg says why). */
int gw_ctl_idempotency_key(const char *body, size_t len, char *out, size_t *klen, enum gw_err *err, char *errmsg,
                           size_t errlen);

/* The batch form of POST /api/publish: {"messages": [{channel, data,
 * idempotency_key?}, ...]}, 1..GW_CTL_BATCH_MAX entries. */
#define GW_CTL_BATCH_MAX 100

struct gw_ctl_batch {
    size_t n;
    char **items;     /* owned: each entry as compact JSON text, for the publish parser */
    size_t *lens;
};

/* True when a publish body (any bytes) is of the batch form: an object
 * with a top-level "messages" member. */
bool gw_ctl_is_batch(const char *buf, size_t len);
/* Parses the batch form: an object whose only member is "messages", an
 * array of 1..GW_CTL_BATCH_MAX values. Each entry is handed on as text
 * whatever it is (its own parse answers its own error). Returns 0 (out
 * filled; free with gw_ctl_batch_deinit), or -EINVAL as
 * gw_ctl_parse_disconnect_body (out empty). */
int gw_ctl_parse_batch(const char *buf, size_t len, struct gw_ctl_batch *out, enum gw_err *err, char *errmsg,
                       size_t errlen);
void gw_ctl_batch_deinit(struct gw_ctl_batch *b);

/* True when code closes a connection for good (the client does not
 * reconnect by itself): 4011 and 4300..4499. */
bool gw_ctl_code_stops(int code);

enum gw_ctl_op {
    GW_CTL_NONE = 0,
    GW_CTL_DISCONNECT, /* on GW_CTL_CHANNEL: close the user's connections */
    GW_CTL_DONE,       /* on a node's reply channel: how many one node closed */
    GW_CTL_REVOKE,     /* on GW_CTL_CHANNEL: user's tokens up to `at` are refused until `until` */
    GW_CTL_UNREVOKE,   /* on GW_CTL_CHANNEL: user's revocation is lifted (at: when; marker kept until `until`) */
    GW_CTL_UNSUBSCRIBE, /* on GW_CTL_CHANNEL: user's connections leave channel (answered with DONE) */
};

/* One control message. */
struct gw_ctl_msg {
    enum gw_ctl_op op;
    char from[GW_CTL_NODE_MAX + 1]; /* DISCONNECT: the origin node; DONE: the node answering */
    uint64_t req;                   /* the origin's request number */
    struct gw_ctl_disconnect dis;   /* DISCONNECT; REVOKE and UNREVOKE: user and user_len only */
    int64_t at, until;              /* REVOKE, UNREVOKE: seconds since the epoch, 0 <= at < until */
    struct gw_ctl_unsubscribe unsub; /* UNSUBSCRIBE */
    uint64_t closed;                /* DONE */
};

/* Parses a control message. Returns 0, or -EINVAL (not a control message
 * this version knows: the caller counts and drops it). */
int gw_ctl_parse(const char *buf, size_t len, struct gw_ctl_msg *out);

/* The JSON text of m (malloc'd, *len set; the caller frees), which
 * gw_ctl_parse reads back the same. Never fails (aborts on OOM). */
char *gw_ctl_format(const struct gw_ctl_msg *m, size_t *len);

#endif
