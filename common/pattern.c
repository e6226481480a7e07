/* Channel-pattern matching for token grants. The subject is untrusted text
 * from the issuer; it is compared byte for byte and never parsed, so a
 * subject of "*" or "a:*" cannot widen what a pattern grants. */
#include "pattern.h"

#include <string.h>

#include "channel.h"

#define SUB_TOKEN "{sub}"
#define SUB_TOKEN_LEN (sizeof SUB_TOKEN - 1)

bool gw_pattern_valid(const char *pattern)
{
    size_t len;

    if (!pattern)
        return false;
    len = strlen(pattern);
    if (len == 0 || len > GW_PATTERN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (pattern[i] == '*') {
            if (i != len - 1)
                return false;
        } else if (pattern[i] == '{') {
            if (strncmp(pattern + i, SUB_TOKEN, SUB_TOKEN_LEN) != 0)
                return false;
            i += SUB_TOKEN_LEN - 1;
        } else if (!gw_channel_valid(pattern + i, 1)) {
            return false; /* includes a stray '}' */
        }
    }
    return true;
}

bool gw_pattern_match(const char *pattern, const char *sub, const char *channel)
{
    size_t clen, sublen = 0, c = 0;
    bool sub_ok;

    if (!gw_pattern_valid(pattern) || !channel)
        return false;
    clen = strlen(channel);
    if (!gw_channel_valid(channel, clen))
        return false;
    /* A subject that could not appear in a channel name never matches, even
     * through a trailing '*': a grant for "user:{sub}*" must not reach
     * "user:x" because the subject was "x?". */
    sub_ok = sub && (sublen = strlen(sub)) > 0 && gw_channel_valid(sub, sublen);
    for (const char *p = pattern; *p; p++) {
        if (*p == '*')
            return true; /* valid() put it last; any rest of channel matches */
        if (*p == '{') {
            if (!sub_ok || clen - c < sublen || memcmp(channel + c, sub, sublen) != 0)
                return false;
            c += sublen;
            p += SUB_TOKEN_LEN - 1;
            continue;
        }
        if (c == clen || channel[c] != *p)
            return false;
        c++;
    }
    return c == clen;
}
