/* JWT (RFC 7519, JWS compact form) verification against a configured key set,
 * following RFC 8725: the key decides the algorithm family, never the token.
 * Owns the claims it returns to the caller; the keys live in jwtkeys.h.
 * Knows nothing of sockets, channels or metrics. Lives in gw_auth. */
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwt_reason.h"
#include "jwtkeys.h"

/* Static string: "ok", "bad_signature", "expired", ... */
const char *gw_jwt_reason_label(enum gw_jwt_reason reason);

struct gw_jwt_error {
    enum gw_jwt_reason reason;
    char msg[160]; /* for logs; never contains key material */
};

#define GW_JWT_MAX_LEN_DEFAULT 8192

/* What the verifier checks besides the signature. Borrowed for the call. */
struct gw_jwt_policy {
    const char *issuer;   /* NULL: "iss" is not checked (but must be a string) */
    const char *audience; /* NULL: "aud" is not checked (but must be well typed) */
    int64_t leeway;       /* seconds of clock skew allowed, clamped to 0..86400 */
    size_t max_len;       /* longer tokens are malformed before any parsing;
                           * 0 means GW_JWT_MAX_LEN_DEFAULT */
};

/* What a verified token grants. Owned by the caller of gw_jwt_verify. */
struct gw_jwt_claims {
    char *sub; /* NULL when the token has no "sub": {sub} patterns then match nothing */
    int64_t exp;
    bool has_iat; /* the token carries "iat" (rounded up to a second) */
    int64_t iat;
    char **channels; /* "channels" claim: patterns (pattern.h) to subscribe */
    size_t n_channels;
    char **publish; /* "publish" claim: patterns to publish to */
    size_t n_publish;
    char *info; /* "info" claim: compact JSON object (presence), NULL when absent */
    char **presence; /* "presence" claim: patterns whose presence it may read */
    size_t n_presence;
    bool has_presence; /* the claim is there (absent: the subscribe rights decide alone) */
};

/* The largest "info" claim, in bytes of compact JSON. */
#define GW_JWT_INFO_MAX 1024

/* Frees the claims and everything they hold. NULL is a no-op. */
void gw_jwt_claims_free(struct gw_jwt_claims *claims);

/* Verifies token[0..len) at time now (seconds since the epoch) against keys
 * and pol. On success returns 0 and gives *out to the caller (free it with
 * gw_jwt_claims_free). On failure returns -EACCES, leaves *out NULL and fills
 * *err (err may be NULL). The signature is checked before any claim, so an
 * unsigned token is never told which claim it got wrong. Never calls back,
 * keeps no pointer. Thread-safe with a read-only key set. */
int gw_jwt_verify(const struct gw_jwt_keys *keys, const struct gw_jwt_policy *pol,
                  const char *token, size_t len, int64_t now, struct gw_jwt_claims **out,
                  struct gw_jwt_error *err);

#endif
