/* The wsgate Function library's calls as both Redis links make them: the
 * single-Redis link (link_cmd.c, which implements these) and the cluster
 * link (clink_cmd.c). Pure: keys into buffers, replies into structs; no
 * connection, no state. Any thread. */
#ifndef GW_FNREPLY_H
#define GW_FNREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct redisReply;

/* deploy/redis/wsgate.lua, embedded by gateway/CMakeLists.txt. */
extern const unsigned char gw_redis_function[];
extern const size_t gw_redis_function_len;

/* VERSION of the embedded library (aborts when the file has none). */
long long gw_link_fn_version(void);

/* Room for "{" key "}:stream" of the longest key a node uses. */
#define GW_FN_KEY_MAX 512

/* The two keys of channel key's history: {key}:meta and {key}:stream (each
 * GW_FN_KEY_MAX bytes of room), sharing key's cluster slot. Returns false
 * when key is too long. */
bool gw_fn_history_keys(const char *key, size_t klen, char *meta, size_t *mlen, char *stream, size_t *slen);

/* The argv of one history read, FCALL_RO wsgate_history 2 meta stream key
 * since limit max_bytes, with the room its strings need: filled by
 * gw_fn_history_call, valid while the struct lives (argv points into it and
 * at key, which the caller keeps until the command is sent). */
struct gw_fn_history_call {
    char meta[GW_FN_KEY_MAX], stream[GW_FN_KEY_MAX], since[24], limit[16], bytes[24];
    const char *argv[9];
    size_t lens[9];
};

/* Fills *c for a read of key's history after since (latest: the newest
 * entries). Returns false when key is too long. Both links call it. */
bool gw_fn_history_call(struct gw_fn_history_call *c, const char *key, size_t klen, bool latest, uint64_t since,
                        int limit, size_t max_bytes);

/* The argv of one epoch retire, FCALL wsgate_retire_epoch 2 meta stream key
 * epoch below ("" for below 0), as gw_fn_history_call's: valid while the
 * struct lives, pointing at key and epoch, which the caller keeps. */
struct gw_fn_retire_call {
    char meta[GW_FN_KEY_MAX], stream[GW_FN_KEY_MAX], below[24];
    const char *argv[8];
    size_t lens[8];
};

/* Fills *c to retire key's epoch (elen bytes) below offset below. Returns
 * false when key is too long. Both links call it. */
bool gw_fn_retire_call(struct gw_fn_retire_call *c, const char *key, size_t klen, const char *epoch, size_t elen,
                       uint64_t below);

/* wsgate_publish's reply { offset, epoch, receivers } into *at. Returns false
 * for any other shape (an error reply included). reply borrowed. */
bool gw_fn_parse_published(const struct redisReply *reply, struct gw_position *at);

/* wsgate_history's reply into page, its entries in a new array (*entries,
 * the caller frees) pointing into reply. Returns false for another shape. */
bool gw_fn_parse_history(const struct redisReply *r, struct gw_history_page *page,
                         struct gw_history_entry **entries);

#endif
