/* libFuzzer harness for the address parsers (common/addr.[ch]). The first
 * byte picks the parser (even: listen address, odd: Redis URL), the rest is
 * the text, NUL-terminated at its first NUL. Properties: success gives the
 * documented fields in range (one of host, socket path or Sentinel master), failure gives no fields and a reason, and a
 * refused Redis URL is never repeated in the reason (it may hold a password). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SCHEMES "redis://, rediss://, redis+sentinel://, rediss+sentinel:// or unix://"

static void listen_case(const char *s)
{
    char err[256] = "";
    char *host = (char *)1;
    int port = -1;
    int rc = gw_addr_parse_listen(s, &host, &port, err, sizeof err);

    if (rc == 0) {
        if (!host || port < 1 || port > 65535)
            abort();
        free(host);
    } else if (host || err[0] == '\0') {
        abort();
    }
}

static void redis_case(const char *s)
{
    char err[256] = "";
    struct gw_redis_addr a;
    int rc = gw_addr_parse_redis(s, &a, err, sizeof err);

    if (rc == 0) {
        if ((a.host != NULL) + (a.unix_path != NULL) + (a.master_name != NULL) != 1 || a.db < 0)
            abort();
        if (a.host && (a.port < 1 || a.port > 65535))
            abort();
        if (!a.master_name != !a.nsentinels || a.nsentinels > GW_ADDR_MAX_SENTINELS)
            abort();
        for (int i = 0; i < a.nsentinels; i++) {
            if (!a.sentinels[i].host || !a.sentinels[i].host[0] || a.sentinels[i].port < 1 ||
                a.sentinels[i].port > 65535)
                abort();
        }
    } else {
        if (a.host || a.unix_path || a.username || a.password || a.master_name || a.sentinels ||
            err[0] == '\0')
            abort();
        /* A bare scheme ("redis+sentinel:") may appear in the list of
         * schemes the reason gives; anything longer must not. */
        if (strlen(s) >= 12 && strstr(err, s) && !strstr(SCHEMES, s))
            abort();
    }
    gw_addr_redis_deinit(&a);
    if (a.host || a.password || a.sentinels || a.master_name)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size == 0 || size > 4096)
        return 0;
    s = gw_xstrndup((const char *)data + 1, size - 1);
    if (data[0] & 1)
        redis_case(s);
    else
        listen_case(s);
    free(s);
    return 0;
}
