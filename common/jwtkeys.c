/* JWS signature checks with OpenSSL 3 EVP. The key set, not the token
 * header, picks the algorithm family (RFC 8725 2.1, 3.1): "alg" only names a
 * hash and must agree with a configured key's type and curve. */
#include "jwtkeys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "alloc.h"
#include "text.h"

#define RSA_MIN_BITS 2048

enum key_kind { KEY_HMAC, KEY_RSA, KEY_EC_P256, KEY_EC_P384 };

struct key {
    enum key_kind kind;
    char *kid;             /* owned; NULL only for an HMAC secret without id */
    EVP_PKEY *pkey;        /* owned; RSA and EC */
    unsigned char *secret; /* owned; HMAC */
    size_t secret_len;
};

/* Written only while loading; read-only, so shareable, once verifying starts. */
struct gw_jwt_keys {
    struct key *v;
    size_t n, cap;
    bool has_hmac;
};

struct alg {
    const char *name;
    enum key_kind kind;
    const EVP_MD *(*md)(void);
    size_t ec_half; /* bytes of R (and of S) in a JOSE ECDSA signature */
};

static const struct alg algs[] = {
    {"HS256", KEY_HMAC, EVP_sha256, 0},     {"HS384", KEY_HMAC, EVP_sha384, 0},
    {"HS512", KEY_HMAC, EVP_sha512, 0},     {"RS256", KEY_RSA, EVP_sha256, 0},
    {"RS384", KEY_RSA, EVP_sha384, 0},      {"RS512", KEY_RSA, EVP_sha512, 0},
    {"ES256", KEY_EC_P256, EVP_sha256, 32}, {"ES384", KEY_EC_P384, EVP_sha384, 48},
};

struct gw_jwt_keys *gw_jwt_keys_new(void) { return gw_xcalloc(1, sizeof(struct gw_jwt_keys)); }

void gw_jwt_keys_free(struct gw_jwt_keys *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        struct key *k = &keys->v[i];

        free(k->kid);
        EVP_PKEY_free(k->pkey);
        if (k->secret)
            OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(keys->v);
    free(keys);
}

size_t gw_jwt_keys_count(const struct gw_jwt_keys *keys) { return keys->n; }

static int check_kid(const struct gw_jwt_keys *keys, const char *kid)
{
    size_t len = kid ? strlen(kid) : 0;

    if (len == 0 || len > GW_JWT_KID_MAX)
        return -EINVAL;
    for (size_t i = 0; i < keys->n; i++) {
        if (keys->v[i].kid && strcmp(keys->v[i].kid, kid) == 0)
            return -EEXIST;
    }
    return 0;
}

/* Appends a zeroed slot and returns it; the caller fills it in. */
static struct key *push_key(struct gw_jwt_keys *keys)
{
    if (keys->n == keys->cap) {
        keys->cap = keys->cap ? keys->cap * 2 : 4;
        keys->v = gw_xrealloc(keys->v, keys->cap * sizeof keys->v[0]);
    }
    memset(&keys->v[keys->n], 0, sizeof keys->v[0]);
    return &keys->v[keys->n++];
}

int gw_jwt_keys_set_hmac(struct gw_jwt_keys *keys, const char *kid, const void *secret,
                         size_t len)
{
    struct key *k;
    int rc;

    if (len < GW_JWT_HMAC_MIN || len > GW_JWT_KEYFILE_MAX)
        return -EINVAL;
    if (keys->has_hmac)
        return -EEXIST;
    if (kid && (rc = check_kid(keys, kid)) < 0)
        return rc;
    k = push_key(keys);
    k->kind = KEY_HMAC;
    k->kid = kid ? gw_xstrdup(kid) : NULL;
    k->secret = gw_xmalloc(len);
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    keys->has_hmac = true;
    return 0;
}

/* No PEM this module reads is encrypted; refuse rather than prompt on a tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) { return 0; }

int gw_jwt_keys_add_pem(struct gw_jwt_keys *keys, const char *kid, const char *pem,
                        size_t len)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    struct key *k;
    enum key_kind kind;
    char group[64];
    size_t glen;
    int rc, nid;

    if ((rc = check_kid(keys, kid)) < 0)
        return rc;
    if (len == 0 || len > GW_JWT_KEYFILE_MAX)
        return -EINVAL;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        rc = -ENOMEM;
        goto fail;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (!pkey) {
        rc = -EINVAL;
        goto fail;
    }
    /* Base id, not id: an RSA-PSS-only key is EVP_PKEY_RSA_PSS and refused. */
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
            rc = -ENOTSUP;
            goto fail;
        }
        kind = KEY_RSA;
        break;
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen)) {
            rc = -EINVAL;
            goto fail;
        }
        nid = OBJ_sn2nid(group);
        if (nid == NID_undef)
            nid = EC_curve_nist2nid(group);
        if (nid == NID_X9_62_prime256v1) {
            kind = KEY_EC_P256;
        } else if (nid == NID_secp384r1) {
            kind = KEY_EC_P384;
        } else {
            rc = -ENOTSUP;
            goto fail;
        }
        break;
    default:
        rc = -ENOTSUP;
        goto fail;
    }
    BIO_free(bio);
    k = push_key(keys);
    k->kind = kind;
    k->kid = gw_xstrdup(kid);
    k->pkey = pkey;
    return 0;

fail:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int gw_jwt_keys_set_hmac_file(struct gw_jwt_keys *keys, const char *path)
{
    char *buf;
    size_t len;
    int rc = gw_text_read_file(path, GW_JWT_KEYFILE_MAX, &buf, &len);

    if (rc < 0)
        return rc;
    if (len >= 1 && buf[len - 1] == '\n') {
        len--;
        if (len >= 1 && buf[len - 1] == '\r')
            len--;
    }
    rc = gw_jwt_keys_set_hmac(keys, NULL, buf, len);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return rc;
}

int gw_jwt_keys_add_pem_file(struct gw_jwt_keys *keys, const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot;
    char *buf, *kid;
    size_t len;
    int rc;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    /* ".pem" alone is a hidden file's name, not an extension. */
    kid = dot && dot != base ? gw_xstrndup(base, (size_t)(dot - base)) : gw_xstrdup(base);
    rc = gw_text_read_file(path, GW_JWT_KEYFILE_MAX, &buf, &len);
    if (rc == 0) {
        rc = gw_jwt_keys_add_pem(keys, kid, buf, len);
        free(buf); /* a public key: nothing to wipe */
    }
    free(kid);
    return rc;
}

/* ---- signature ---------------------------------------------------------- */

static bool verify_hmac(const struct key *k, const struct alg *a, const unsigned char *data,
                        size_t len, const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (!HMAC(a->md(), k->secret, (int)k->secret_len, data, len, mac, &maclen))
        return false;
    /* Constant time: a byte-by-byte early exit would leak the MAC. */
    return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

/* JOSE sends ECDSA as fixed-width R || S (RFC 7518 3.4); EVP wants DER. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *sig, size_t half, int *der_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    unsigned char *der = NULL;

    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    /* es now owns r and s. */
    *der_len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (*der_len <= 0) {
        OPENSSL_free(der);
        return NULL;
    }
    return der;
}

static bool verify_pkey(const struct key *k, const struct alg *a, const unsigned char *data,
                        size_t len, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char *der = NULL;
    int der_len = 0;
    bool ok = false;

    if (a->ec_half) {
        if (siglen != 2 * a->ec_half)
            return false;
        der = ecdsa_raw_to_der(sig, a->ec_half, &der_len);
        if (!der)
            goto out;
        sig = der;
        siglen = (size_t)der_len;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, a->md(), NULL, k->pkey) != 1)
        goto out;
    /* RSA keys default to PKCS #1 v1.5 padding, which RS* requires. */
    ok = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/* A kid restricts the candidates to that one key; without a kid every key of
 * the algorithm's family is tried, so keys can rotate without a kid. */
int gw_jwt_keys_verify(const struct gw_jwt_keys *keys, const char *alg, const char *kid,
                       const unsigned char *data, size_t len, const unsigned char *sig,
                       size_t siglen)
{
    const struct alg *a = NULL;
    bool kid_found = false, candidates = false;

    /* "none" is absent from algs[], so it is refused with any other name. */
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        if (strcmp(alg, algs[i].name) == 0)
            a = &algs[i];
    }
    if (!a)
        return -ENOTSUP;

    for (size_t i = 0; i < keys->n; i++) {
        const struct key *k = &keys->v[i];

        if (kid) {
            if (!k->kid || strcmp(k->kid, kid) != 0)
                continue;
            kid_found = true;
        }
        if (k->kind != a->kind)
            continue;
        candidates = true;
        if (k->kind == KEY_HMAC ? verify_hmac(k, a, data, len, sig, siglen)
                                : verify_pkey(k, a, data, len, sig, siglen))
            return 0;
    }
    if (kid && !kid_found)
        return -ENOKEY;
    return candidates ? -EBADMSG : -ENOENT;
}
