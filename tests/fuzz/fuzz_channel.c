/* libFuzzer harness for the channel-name rule (common/channel.[ch]) against
 * a reference written straight from docs/PROTOCOL.md ("Channel names"): 1 to
 * 128 bytes, each one of A-Z a-z 0-9 _ - : . @ / =. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool reference(const uint8_t *s, size_t n)
{
    static const char extra[] = "_-:.@/=";

    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        for (size_t k = 0; k < sizeof extra - 1; k++)
            ok = ok || c == (uint8_t)extra[k];
        if (!ok)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = gw_xmalloc(size ? size : 1);

    memcpy(buf, data, size);
    if (gw_channel_valid(buf, size) != reference(data, size))
        abort();
    free(buf);
    return 0;
}
