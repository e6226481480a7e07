/* Strict base64url decoder. Every token the gateway sees goes through it
 * before any signature check, so it refuses anything that is not the one
 * canonical spelling: two spellings of one token would defeat replay caches. */
#include "b64url.h"

#include <errno.h>
#include <stdint.h>

/* 0xff marks a byte outside the alphabet; '=' is outside on purpose. */
static const uint8_t dec[256] = {
#define R4(x) x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)
    R16(0xff), R16(0xff),
    /* 0x20 '-' */ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 62, 0xff, 0xff,
    /* 0x30 '0'..'9' */ 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    /* 0x40 '@','A'..'O' */ 0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    /* 0x50 'P'..'Z', '_' */ 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 0xff, 0xff, 0xff, 0xff, 63,
    /* 0x60 '`','a'..'o' */ 0xff, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    /* 0x70 'p'..'z' */ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 0xff, 0xff, 0xff, 0xff, 0xff,
    R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff),
#undef R16
#undef R4
};

int gw_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t full = len / 4 * 4, rem = len % 4, o = 0;
    uint8_t v[4];

    if (rem == 1)
        return -EINVAL;
    for (size_t i = 0; i < full; i += 4) {
        for (int k = 0; k < 4; k++) {
            v[k] = dec[s[i + k]];
            if (v[k] == 0xff)
                return -EINVAL;
        }
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        out[o++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
        out[o++] = (unsigned char)(v[2] << 6 | v[3]);
    }
    if (rem) {
        for (size_t k = 0; k < rem; k++) {
            v[k] = dec[s[full + k]];
            if (v[k] == 0xff)
                return -EINVAL;
        }
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (rem == 2) {
            if (v[1] & 0x0f)
                return -EINVAL;
        } else {
            out[o++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
            if (v[2] & 0x03)
                return -EINVAL;
        }
    }
    *out_len = o;
    return 0;
}
