/* RFC 6455 checks on the handshake headers and the close body; see ws6455.h
 * for why they live outside lws. */
#include "ws6455.h"

#include <string.h>

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* The key is 16 bytes in base64: 22 symbols and "==" (RFC 6455 4.1, item 7). */
static bool key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64((unsigned char)key[i]))
            return false;
    }
    return true;
}

int gw_ws_upgrade_status(const char *key, size_t key_len, const char *version, size_t version_len)
{
    if (!key || !key_valid(key, key_len) || !version || version_len == 0)
        return 400;
    if (version_len != 2 || memcmp(version, "13", 2) != 0)
        return 426;
    return 0;
}

bool gw_ws_close_body_valid(const uint8_t *body, size_t len)
{
    unsigned code;

    if (len == 0)
        return true;
    if (len == 1)
        return false;
    code = (unsigned)body[0] << 8 | body[1];
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}
