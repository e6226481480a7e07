/* Redis Cluster key slots, written from the cluster specification's text
 * (CRC16/XMODEM, hash tags), not from Redis' source. */
#include "slot.h"

#include <string.h>

static uint16_t crc16_update(uint16_t crc, const void *p, size_t len)
{
    const unsigned char *b = p;

    /* Bit at a time, most significant bit first (XMODEM is not reflected).
     * Eight shifts per byte: the keys hashed here are channel names, and a
     * 512-byte table would buy nothing measurable against the Redis round
     * trip that every hashed key is on its way to. */
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(b[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t gw_slot_crc16(const void *p, size_t len)
{
    return crc16_update(0, p, len);
}

void gw_slot_tag(const char *key, size_t len, size_t *off, size_t *n)
{
    const char *open = len ? memchr(key, '{', len) : NULL;

    *off = 0;
    *n = len;
    if (!open)
        return;
    /* Only the first '{' opens a tag; the first '}' after it closes it. An
     * empty tag ("{}") means the whole key is hashed, not the empty string. */
    size_t start = (size_t)(open - key) + 1;
    const char *close = memchr(key + start, '}', len - start);
    if (!close || close == key + start)
        return;
    *off = start;
    *n = (size_t)(close - (key + start));
}

uint16_t gw_slot_of(const char *key, size_t len)
{
    size_t off, n;

    gw_slot_tag(key, len, &off, &n);
    return gw_slot_crc16(key + off, n) & (GW_SLOT_COUNT - 1);
}

/* The slot of "{" C "}" suffix, computed in pieces (no copy). */
static uint16_t history_key_slot(const char *c, size_t len, const char *suffix)
{
    const char *close = len ? memchr(c, '}', len) : NULL;
    uint16_t crc;

    if (!close && len) /* the tag is C itself */
        crc = crc16_update(0, c, len);
    else if (!close) /* C is empty: "{}" is no tag, the whole key is hashed */
        crc = crc16_update(crc16_update(0, "{}", 2), suffix, strlen(suffix));
    else if (close > c) /* the tag ends at C's first '}' */
        crc = crc16_update(0, c, (size_t)(close - c));
    else { /* C starts with '}': an empty tag, the whole key is hashed */
        crc = crc16_update(0, "{", 1);
        crc = crc16_update(crc, c, len);
        crc = crc16_update(crc, "}", 1);
        crc = crc16_update(crc, suffix, strlen(suffix));
    }
    return crc & (GW_SLOT_COUNT - 1);
}

bool gw_slot_channel_colocated(const char *c, size_t len)
{
    uint16_t s = gw_slot_of(c, len);

    return history_key_slot(c, len, ":meta") == s && history_key_slot(c, len, ":stream") == s;
}
