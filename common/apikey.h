/* Keys of the HTTP publish API (--api-key-file): parsed from a key file, one
 * key per line, and matched in constant time. Several keys may be valid at
 * once, so a key can be rotated without downtime. Filled once at startup and
 * read-only afterwards: any thread may match. No lws, no OpenSSL. */
#ifndef GW_APIKEY_H
#define GW_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#define GW_APIKEY_MIN 16 /* bytes; shorter keys are refused at startup */
#define GW_APIKEY_MAX 256
#define GW_APIKEYS_MAX 64

struct gw_apikeys {
    size_t count;
    size_t lens[GW_APIKEYS_MAX];
    /* count entries, each zero-padded to GW_APIKEY_MAX bytes so that every
     * comparison reads the same number of bytes; owned, wiped on deinit. */
    unsigned char (*keys)[GW_APIKEY_MAX];
};

/* Parses text[0..len): one key per line; blank lines and lines whose first
 * non-blank character is '#' are ignored; trailing whitespace (CR included)
 * is stripped. A key is GW_APIKEY_MIN..GW_APIKEY_MAX bytes of visible ASCII
 * (0x21..0x7e), so it can travel in an Authorization header as is. At least
 * one key is required. Returns 0, or -EINVAL with a reason in err naming the
 * line, never the key; k needs gw_apikeys_deinit() in both cases. Does not
 * keep text. */
int gw_apikeys_parse(struct gw_apikeys *k, const char *text, size_t len, char *err, size_t errlen);

/* Reads path (at most 64 KiB) and parses it as above. Returns 0, -EINVAL
 * or the -errno of the failed read, with a reason in err. The file's bytes
 * are wiped from memory once parsed. */
int gw_apikeys_load(struct gw_apikeys *k, const char *path, char *err, size_t errlen);

/* True when key[0..len) equals one of the keys. Takes the same time whatever
 * the bytes of key and of the keys are: every key is compared over
 * GW_APIKEY_MAX bytes, without an early exit. */
bool gw_apikeys_match(const struct gw_apikeys *k, const char *key, size_t len);

/* Wipes and frees the keys. Safe on a zeroed or already deinit'd struct. */
void gw_apikeys_deinit(struct gw_apikeys *k);

#endif
