/* libFuzzer harness for the Redis payload -> client message path
 * (gw_codec_message). For every payload the frame must be valid JSON (so
 * valid UTF-8: the validator takes only ASCII outside strings and checks
 * UTF-8 inside them) of the documented shape, and a payload that is JSON
 * must arrive as exactly that value, surrounding whitespace dropped. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "json.h"

static const char head[] = "{\"type\":\"message\",\"channel\":\"room:1\",\"data\":";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = gw_xmalloc(size ? size : 1);
    struct gw_frame *f;
    const char *out, *v;
    size_t hlen = sizeof head - 1, vlen;

    memcpy(buf, data, size);
    f = gw_codec_message("room:1", 6, buf, size);
    out = (const char *)gw_frame_payload(f);
    if (!gw_json_valid_depth(out, f->len, GW_JSON_MAX_DEPTH + 1))
        abort();
    if (f->len < hlen + 2 || memcmp(out, head, hlen) != 0 || out[f->len - 1] != '}')
        abort();
    v = out + hlen;
    vlen = f->len - hlen - 1;
    if (gw_json_valid(buf, size)) {
        const char *s = buf, *e = buf + size;

        while (s < e && ws(*s))
            s++;
        while (e > s && ws(e[-1]))
            e--;
        if (vlen != (size_t)(e - s) || memcmp(v, s, vlen) != 0)
            abort();
    } else if (v[0] != '"' || !gw_json_valid(v, vlen)) {
        abort();
    }
    gw_frame_unref(f);
    free(buf);
    return 0;
}
