/* Redis Cluster key slots, written from the cluster specification's text
 * (CRC16/XMODEM, hash tags), not from Redis' source. */
#include "slot.h"

#include <string.h>

uint16_t gw_slot_crc16(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint16_t crc = 0;

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
