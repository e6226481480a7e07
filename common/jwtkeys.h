/* The key set a JWT is verified against: one optional HMAC secret and any
 * number of RSA/EC public keys, each with an id. Owns the key material and
 * checks JWS signatures with OpenSSL 3 EVP; parses no token. Lives in gw_auth
 * (the one library linking libcrypto), not in gw_common. */
#ifndef GW_JWTKEYS_H
#define GW_JWTKEYS_H

#include <stddef.h>

/* The key set. Built once at startup, read-only afterwards: from then on any
 * number of threads may call gw_jwt_verify() with it concurrently. */
struct gw_jwt_keys;

/* Smallest HMAC secret accepted: RFC 7518 3.2 wants at least the hash size. */
#define GW_JWT_HMAC_MIN 32
/* Largest key file read by the _file loaders. */
#define GW_JWT_KEYFILE_MAX (64 * 1024)
/* Longest key id; ids are compared byte for byte with the token's "kid". */
#define GW_JWT_KID_MAX 128

/* Returns an empty key set; never NULL (aborts on OOM). */
struct gw_jwt_keys *gw_jwt_keys_new(void);
/* Frees the set and every key in it. NULL is a no-op. */
void gw_jwt_keys_free(struct gw_jwt_keys *keys);

/* Copies secret[0..len) as the one HMAC secret (HS256/384/512). kid may be
 * NULL (the secret then has no id, and tokens that carry a kid never reach
 * it) or an id that must not collide with a PEM key's. Returns 0, -EINVAL
 * when len is below GW_JWT_HMAC_MIN or above GW_JWT_KEYFILE_MAX or kid is
 * empty/too long, -EEXIST when a secret is already set or kid is taken. */
int gw_jwt_keys_set_hmac(struct gw_jwt_keys *keys, const char *kid, const void *secret,
                         size_t len);
/* Reads the secret from path, dropping one trailing "\n" or "\r\n" (what an
 * editor or `echo` leaves); other bytes, binary included, are kept. No kid.
 * Returns as gw_jwt_keys_set_hmac, or -errno of open/read, or -EFBIG when
 * the file exceeds GW_JWT_KEYFILE_MAX. */
int gw_jwt_keys_set_hmac_file(struct gw_jwt_keys *keys, const char *path);

/* Parses one PEM "PUBLIC KEY" (SubjectPublicKeyInfo) and adds it under kid
 * (copied). Accepts RSA of at least 2048 bits (RS256/384/512) and EC on
 * P-256 (ES256) or P-384 (ES384). Returns 0, -EINVAL for text that is not
 * such a PEM key or a bad (NULL, empty, too long) kid, -ENOTSUP for another key type, curve or a
 * short RSA key, -EEXIST when kid is taken. */
int gw_jwt_keys_add_pem(struct gw_jwt_keys *keys, const char *kid, const char *pem,
                        size_t len);
/* As gw_jwt_keys_add_pem, reading path; the kid is the file's base name
 * without its last extension ("/etc/wsgate/keys/2026-01.pem" -> "2026-01").
 * Also returns -errno of open/read or -EFBIG. */
int gw_jwt_keys_add_pem_file(struct gw_jwt_keys *keys, const char *path);

/* Number of keys in the set, the HMAC secret included. */
size_t gw_jwt_keys_count(const struct gw_jwt_keys *keys);

/* Checks the JWS signature sig[0..siglen) over data[0..len) for algorithm
 * alg (the header's "alg", e.g. "RS256") and key id kid (NULL when the token
 * has none). With a kid only that key is tried; without, every key whose
 * type and curve suit alg. Returns 0 when one verifies; -ENOTSUP when alg is
 * not one of HS256/384/512, RS256/384/512, ES256/384 ("none" included);
 * -ENOKEY when no key has that kid; -ENOENT when no tried key suits alg (the
 * family mismatch of RFC 8725 3.1); -EBADMSG when suitable keys exist but
 * none verifies. Thread-safe on a set that is no longer being loaded. */
int gw_jwt_keys_verify(const struct gw_jwt_keys *keys, const char *alg, const char *kid,
                       const unsigned char *data, size_t len, const unsigned char *sig,
                       size_t siglen);

#endif
