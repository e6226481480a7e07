/* Redis Cluster key slots: which of the 16384 slots a key (or a sharded
 * pub/sub channel) belongs to. CRC16/XMODEM of the key, or of its hash tag,
 * modulo 16384, as the Redis Cluster specification defines it.
 *
 * Pure functions: no state, no allocation, any thread. Knows nothing of
 * nodes or connections (common/topo.h maps slots to masters). */
#ifndef GW_SLOT_H
#define GW_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SLOT_COUNT 16384

/* CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final
 * xor) of len bytes at p. p may be NULL when len is 0. Cannot fail. */
uint16_t gw_slot_crc16(const void *p, size_t len);

/* The part of a key that is hashed: the whole key, unless it holds a '{'
 * followed later by a '}' with at least one byte between them, in which case
 * only the bytes between the first '{' and the first '}' after it count.
 * Sets *off and *n to that part of key[0..len). Cannot fail. */
void gw_slot_tag(const char *key, size_t len, size_t *off, size_t *n);

/* The slot (0..16383) of the len-byte key (binary safe: NULs count). */
uint16_t gw_slot_of(const char *key, size_t len);

/* Whether sharded channel C (len bytes) and its history keys "{C}:meta" and
 * "{C}:stream" (deploy/redis/wsgate.lua) are in one slot, so that one FCALL
 * can touch both keys and SPUBLISH to C on one master. True for every non-empty name
 * without a '}'; a name with one may split them (for "a{b}c" the channel
 * hashes "b", the keys "a{b"; for "}x" even the two keys differ), unless
 * the hashed bytes happen to agree. Cannot fail. */
bool gw_slot_channel_colocated(const char *c, size_t len);

#endif
