/* Channel grants carried in access tokens: exact names, a trailing '*' for a
 * prefix, and "{sub}" for the token's own subject. Pure functions, no
 * allocation, no knowledge of tokens or sessions. */
#ifndef GW_PATTERN_H
#define GW_PATTERN_H

#include <stdbool.h>

/* Longest pattern accepted; a few {sub} make it longer than a channel. */
#define GW_PATTERN_MAX 256

/* True when pattern is well formed: 1..GW_PATTERN_MAX bytes of channel-name
 * characters (channel.h) and "{sub}" placeholders, with at most one '*', and
 * that one only as the last byte. Any other '{', '}' or '*' is invalid. */
bool gw_pattern_valid(const char *pattern);

/* True when the NUL-terminated channel is granted by pattern for a token
 * whose subject is sub (NULL when the token has none). Each "{sub}" stands
 * for the bytes of sub taken literally: a '*' inside sub is never a wildcard.
 * Returns false when pattern is invalid, when channel is not a valid channel
 * name, or when pattern uses {sub} and sub is NULL, empty or holds a byte
 * that is illegal in a channel name. A trailing '*' matches zero or more
 * bytes. Thread-safe. */
bool gw_pattern_match(const char *pattern, const char *sub, const char *channel);

#endif
