/* The history envelope (issue 10): what deploy/redis/wsgate.lua's
 * wsgate_publish PUBLISHes instead of the bare payload, so a node learns the
 * message's offset and epoch. This module recognises and parses one, and
 * writes the header for tests and for a later in-gateway publisher.
 * Pure: no allocation, no globals, no threads; any thread.
 *
 * Exact form (docs/PROTOCOL.md, "Publishing with history (FCALL)"):
 *   0xFF "wsgate1" SP offset SP epoch LF payload
 *   offset   decimal, 1..18446744073709551615, no sign, no leading zero
 *   epoch    1..GW_ENVELOPE_EPOCH_MAX bytes of [0-9A-Za-z_-]
 *   payload  every remaining byte, possibly none, never inspected
 * A PUBLISH payload whose first byte is 0xFF or 0xFE (bytes valid UTF-8
 * never contains, so no JSON or text payload starts with one) is reserved:
 * it is an envelope or it is malformed, never a plain payload. */
#ifndef GW_ENVELOPE_H
#define GW_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GW_ENVELOPE_EPOCH_MAX 32
/* 1 + "wsgate1" + SP + 20 digits + SP + epoch + LF */
#define GW_ENVELOPE_HEADER_MAX (1 + 7 + 1 + 20 + 1 + GW_ENVELOPE_EPOCH_MAX + 1)

/* A place in a channel's history (envelope.h): the last offset a client
 * has of epoch. An empty epoch with offset 0 is the position of a channel
 * that had no history when it was taken. */
struct gw_position {
    uint64_t offset;
    char epoch[GW_ENVELOPE_EPOCH_MAX + 1]; /* NUL-terminated */
    size_t epoch_len;
};

/* pos := offset in epoch (epoch_len bytes, need not be NUL-terminated). */
static inline void gw_position_set(struct gw_position *pos, uint64_t offset, const char *epoch, size_t epoch_len)
{
    pos->offset = offset;
    pos->epoch_len = epoch_len;
    memcpy(pos->epoch, epoch, epoch_len);
    pos->epoch[epoch_len] = '\0';
}

/* True when pos is in epoch (epoch_len bytes). */
static inline bool gw_position_in(const struct gw_position *pos, const char *epoch, size_t epoch_len)
{
    return pos->epoch_len == epoch_len && memcmp(pos->epoch, epoch, epoch_len) == 0;
}

/* True when len bytes at s are a valid epoch: 1..GW_ENVELOPE_EPOCH_MAX bytes
 * of [0-9A-Za-z_-]. */
bool gw_envelope_epoch_valid(const char *s, size_t len);

/* One stored message of a channel's stream. */
struct gw_history_entry {
    uint64_t offset;
    const char *payload; /* borrowed */
    size_t len;
};

/* One page of a channel's stream as deploy/redis/wsgate.lua's
 * wsgate_history answers it; everything borrowed from the reply. */
struct gw_history_page {
    const char *epoch; /* "" (epoch_len 0) when the channel has no metadata */
    size_t epoch_len;
    uint64_t current; /* the last offset given out */
    bool reachable; /* the entries start right after the offset asked for */
    const struct gw_history_entry *entries; /* oldest first */
    size_t n;
};

struct gw_envelope {
    uint64_t offset;
    char epoch[GW_ENVELOPE_EPOCH_MAX + 1]; /* NUL-terminated copy */
    size_t epoch_len;
    const char *payload; /* borrowed: points into the parsed buffer */
    size_t payload_len;
};

/* Judges the raw bytes of one PUBLISH payload (need not be NUL-terminated;
 * buf may be NULL when len is 0). Returns:
 *    1            an envelope; *env filled, env->payload points into buf
 *    0            not reserved (first byte neither 0xFF nor 0xFE, or empty):
 *                 a plain payload, deliver it as today; *env untouched
 *   -EPROTONOSUPPORT  0xFF "wsgate" followed by a version other than 1
 *   -EBADMSG     any other reserved payload: a malformed envelope
 * On a negative return *env is untouched. Never reads past buf + len. */
int gw_envelope_parse(const void *buf, size_t len, struct gw_envelope *env);

/* Writes the header (everything before the payload) for offset and epoch
 * into out, which has room for GW_ENVELOPE_HEADER_MAX bytes; not
 * NUL-terminated. Returns its length, or -EINVAL (nothing written) when
 * offset is 0 or epoch is not 1..GW_ENVELOPE_EPOCH_MAX bytes of the set. */
int gw_envelope_header(char *out, uint64_t offset, const char *epoch, size_t epoch_len);

#endif
