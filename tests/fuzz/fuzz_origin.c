/* libFuzzer harness for the Origin allow-list (common/origin.[ch]). An input
 * is three lines: the --allowed-origins text, an Origin header, a Host
 * header. Beyond "no crash, no overread", it checks two properties that must
 * hold for every input: an Origin with a path is never allowed, and an
 * absent Origin always is. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "origin.h"

static const char *line(const char **p, const char *end, size_t *len)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));

    *len = (size_t)((nl ? nl : end) - s);
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size, *origin, *host;
    size_t llen, olen, hlen;
    const char *list_text = line(&p, end, &llen);
    struct gw_origin_list list = { NULL, 0 };
    char err[256];
    char *text;

    if (size > 4096)
        return 0;
    origin = line(&p, end, &olen);
    host = line(&p, end, &hlen);
    text = gw_xstrndup(list_text, llen);
    if (gw_origin_list_parse(&list, text, err, sizeof err) != 0 && err[0] == '\0')
        abort(); /* a refusal always says why */
    if (!gw_origin_allowed(&list, NULL, 0, host, hlen))
        abort();
    if (gw_origin_allowed(&list, origin, olen, host, hlen)) {
        /* Allowed, so well formed: the same origin with a path must not be. */
        char *with_path = gw_xmalloc(olen + 2);

        memcpy(with_path, origin, olen);
        memcpy(with_path + olen, "/", 2);
        if (gw_origin_allowed(&list, with_path, olen + 1, host, hlen))
            abort();
        free(with_path);
    }
    gw_origin_list_deinit(&list);
    free(text);
    return 0;
}
