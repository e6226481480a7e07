/* API key file parsing and constant-time matching. */
#include "apikey.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "text.h"

#define KEYFILE_MAX (64 * 1024)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int add_key(struct gw_apikeys *k, const char *key, size_t len, int line, char *err, size_t errlen)
{
    if (len < GW_APIKEY_MIN || len > GW_APIKEY_MAX)
        return gw_text_err(err, errlen, "api key file line %d: a key must be %d..%d bytes, this one has %zu",
                           line, GW_APIKEY_MIN, GW_APIKEY_MAX, len);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return gw_text_err(err, errlen,
                               "api key file line %d: a key must be visible ASCII without spaces", line);
    }
    if (k->count == GW_APIKEYS_MAX)
        return gw_text_err(err, errlen, "api key file line %d: more than %d keys", line, GW_APIKEYS_MAX);
    k->keys = gw_xrealloc(k->keys, (k->count + 1) * sizeof(*k->keys));
    memset(k->keys[k->count], 0, GW_APIKEY_MAX);
    memcpy(k->keys[k->count], key, len);
    k->lens[k->count++] = len;
    return 0;
}

int gw_apikeys_parse(struct gw_apikeys *k, const char *text, size_t len, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    int line = 0;

    memset(k, 0, sizeof(*k));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;

        line++;
        p = nl ? nl + 1 : end;
        /* Leading blanks go too: a key never contains whitespace, so there
         * is nothing to lose and an indented file still works. */
        while (e > s && is_space(e[-1]))
            e--;
        while (s < e && is_space(*s))
            s++;
        if (s == e || *s == '#')
            continue;
        if (add_key(k, s, (size_t)(e - s), line, err, errlen) != 0)
            return -EINVAL;
    }
    if (k->count == 0)
        return gw_text_err(err, errlen, "api key file holds no key (blank lines and #comments are ignored)");
    return 0;
}

int gw_apikeys_load(struct gw_apikeys *k, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc;

    memset(k, 0, sizeof(*k));
    rc = gw_text_read_file(path, KEYFILE_MAX, &buf, &len);
    if (rc == -EFBIG)
        return gw_text_err(err, errlen, "api key file %s is larger than %d bytes", path, KEYFILE_MAX);
    if (rc < 0) {
        gw_text_err(err, errlen, "cannot open api key file %s: %s", path, strerror(-rc));
        return rc;
    }
    rc = gw_apikeys_parse(k, buf, len, err, errlen);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

bool gw_apikeys_match(const struct gw_apikeys *k, const char *key, size_t len)
{
    unsigned char given[GW_APIKEY_MAX];
    unsigned int found = 0;

    /* The limit is public, so refusing an oversized key early leaks nothing. */
    if (len == 0 || len > GW_APIKEY_MAX)
        return false;
    memset(given, 0, sizeof(given));
    memcpy(given, key, len);
    for (size_t i = 0; i < k->count; i++) {
        /* The padding bytes compare equal, so the length must be part of the
         * difference; both lengths are at most GW_APIKEY_MAX. */
        unsigned int diff = (unsigned int)(k->lens[i] ^ len);
        for (size_t j = 0; j < GW_APIKEY_MAX; j++)
            diff |= (unsigned int)(given[j] ^ k->keys[i][j]);
        found |= (unsigned int)(diff == 0);
    }
    explicit_bzero(given, sizeof(given));
    return found != 0;
}

void gw_apikeys_deinit(struct gw_apikeys *k)
{
    if (k->keys)
        explicit_bzero(k->keys, k->count * sizeof(*k->keys));
    free(k->keys);
    memset(k, 0, sizeof(*k));
}
