/* Strict base64url (RFC 4648 section 5) decoding for JOSE: no padding, no
 * whitespace, canonical trailing bits only. Pure functions, no allocation. */
#ifndef GW_B64URL_H
#define GW_B64URL_H

#include <stddef.h>

/* Upper bound of the decoded size of len input characters. */
static inline size_t gw_b64url_decoded_max(size_t len) { return len / 4 * 3 + 2; }

/* Decodes in[0..len) into out, which must hold gw_b64url_decoded_max(len)
 * bytes, and stores the decoded length in *out_len. Returns 0, or -EINVAL
 * when the input holds a byte outside A-Z a-z 0-9 - _ (this includes '='
 * padding, which JOSE forbids), has a length of 1 mod 4, or has non-zero
 * unused bits in its last character (a second spelling of the same bytes).
 * On failure out holds garbage and *out_len is untouched. Empty input
 * decodes to zero bytes. Thread-safe. */
int gw_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len);

#endif
