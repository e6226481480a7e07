/* Channel-name rules of protocol v1. A lookup table keeps the check one load
 * per byte; it runs for every subscribe and publish. */
#include "channel.h"

#include <string.h>

static const unsigned char allowed[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
    ['_'] = 1, ['-'] = 1, [':'] = 1, ['.'] = 1, ['@'] = 1, ['/'] = 1, ['='] = 1,
};

bool gw_channel_valid(const char *name, size_t len)
{
    if (len == 0 || len > GW_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!allowed[(unsigned char)name[i]])
            return false;
    }
    return true;
}

/* Compares the reserved prefix against the Redis name without building it:
 * part of it may lie in the configured prefix, the rest in the client's name. */
bool gw_channel_reserved(const char *prefix, size_t prefix_len, const char *name, size_t len)
{
    static const char reserved[] = GW_CHANNEL_RESERVED;
    const size_t rlen = sizeof reserved - 1;
    size_t inpre = prefix_len < rlen ? prefix_len : rlen;

    if (memcmp(prefix, reserved, inpre) != 0)
        return false;
    return inpre == rlen || (len >= rlen - inpre && memcmp(name, reserved + inpre, rlen - inpre) == 0);
}
