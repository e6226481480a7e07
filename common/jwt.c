/* JWT (JWS compact) parsing and claim checks with jansson. The signature is
 * checked by jwtkeys.c before any claim is read. */
#include "jwt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "b64url.h"
#include "pattern.h"

/* NumericDate bound: beyond 2^53 a JSON number is no longer exact, and the
 * bound keeps exp + leeway far from int64 overflow. */
#define TIME_ABS_MAX ((int64_t)1 << 53)
#define LEEWAY_MAX 86400

static const char *const labels[] = {
    [GW_JWT_OK] = "ok",
    [GW_JWT_BAD_SIGNATURE] = "bad_signature",
    [GW_JWT_EXPIRED] = "expired",
    [GW_JWT_NOT_YET_VALID] = "not_yet_valid",
    [GW_JWT_WRONG_AUDIENCE] = "wrong_audience",
    [GW_JWT_WRONG_ISSUER] = "wrong_issuer",
    [GW_JWT_MALFORMED] = "malformed",
    [GW_JWT_UNKNOWN_KEY] = "unknown_key",
    [GW_JWT_REVOKED] = "revoked",
};

const char *gw_jwt_reason_label(enum gw_jwt_reason reason)
{
    if ((unsigned)reason >= sizeof labels / sizeof labels[0])
        return "unknown";
    return labels[reason];
}

__attribute__((format(printf, 3, 4))) static int fail(struct gw_jwt_error *err,
                                                      enum gw_jwt_reason reason,
                                                      const char *fmt, ...)
{
    va_list ap;

    err->reason = reason;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -EACCES;
}

/* ---- parsing and claims ------------------------------------------------ */

/* Decodes one base64url segment as a JSON object. Returns NULL when either
 * layer is invalid; duplicate member names are invalid too, since two
 * parsers could otherwise read two different "alg"s or "sub"s. */
static json_t *decode_object(const char *seg, size_t len)
{
    unsigned char *buf = gw_xmalloc(gw_b64url_decoded_max(len));
    json_t *j = NULL;
    size_t n;

    if (gw_b64url_decode(seg, len, buf, &n) == 0)
        j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Reads NumericDate `name`. Fractions round towards refusal: exp down,
 * nbf and iat up. Returns 1 when present, 0 when absent, -1 when not a
 * number or out of range. */
static int get_time(json_t *obj, const char *name, bool round_up, int64_t *v)
{
    json_t *j = json_object_get(obj, name);
    double d;

    if (!j)
        return 0;
    if (json_is_integer(j)) {
        *v = json_integer_value(j);
    } else if (json_is_real(j)) {
        d = json_real_value(j);
        d = round_up ? ceil(d) : floor(d);
        if (!(fabs(d) <= (double)TIME_ABS_MAX))
            return -1;
        *v = (int64_t)d;
    } else {
        return -1;
    }
    return *v >= -TIME_ABS_MAX && *v <= TIME_ABS_MAX ? 1 : -1;
}

/* Copies an optional array of pattern strings. Returns false when the claim
 * is present but not an array of valid patterns. */
static bool get_patterns(json_t *obj, const char *name, char ***out, size_t *n)
{
    json_t *arr = json_object_get(obj, name), *v;
    size_t i;

    *out = NULL;
    *n = 0;
    if (!arr)
        return true;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || !gw_pattern_valid(json_string_value(v)))
            return false;
    }
    *n = json_array_size(arr);
    *out = gw_xcalloc(*n ? *n : 1, sizeof **out);
    json_array_foreach(arr, i, v)(*out)[i] = gw_xstrdup(json_string_value(v));
    return true;
}

static bool aud_has(json_t *aud, const char *want)
{
    json_t *v;
    size_t i;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v) {
        if (strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

/* Type checks come first so that a wrongly typed claim is always malformed,
 * whatever the clock says. */
static int check_claims(json_t *c, const struct gw_jwt_policy *pol, int64_t now,
                        struct gw_jwt_claims **out, struct gw_jwt_error *err)
{
    json_t *iss = json_object_get(c, "iss"), *aud = json_object_get(c, "aud");
    json_t *sub = json_object_get(c, "sub"), *info = json_object_get(c, "info"), *v;
    int64_t leeway = pol->leeway < 0 ? 0 : pol->leeway > LEEWAY_MAX ? LEEWAY_MAX : pol->leeway;
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp, has_nbf, has_iat;
    struct gw_jwt_claims *cl;
    size_t i;

    has_exp = get_time(c, "exp", false, &exp);
    has_nbf = get_time(c, "nbf", true, &nbf);
    has_iat = get_time(c, "iat", true, &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return fail(err, GW_JWT_MALFORMED, "exp, nbf or iat is not a NumericDate");
    if (!has_exp)
        return fail(err, GW_JWT_MALFORMED, "exp is required");
    if (iss && !json_is_string(iss))
        return fail(err, GW_JWT_MALFORMED, "iss is not a string");
    if (sub && !json_is_string(sub))
        return fail(err, GW_JWT_MALFORMED, "sub is not a string");
    if (info && !json_is_object(info))
        return fail(err, GW_JWT_MALFORMED, "info is not an object");
    if (aud && !json_is_string(aud)) {
        if (!json_is_array(aud))
            return fail(err, GW_JWT_MALFORMED, "aud is neither a string nor an array");
        json_array_foreach(aud, i, v) {
            if (!json_is_string(v))
                return fail(err, GW_JWT_MALFORMED, "aud holds a non-string");
        }
    }
    cl = gw_xcalloc(1, sizeof *cl);
    if (!get_patterns(c, "channels", &cl->channels, &cl->n_channels) ||
        !get_patterns(c, "publish", &cl->publish, &cl->n_publish) ||
        !get_patterns(c, "presence", &cl->presence, &cl->n_presence)) {
        gw_jwt_claims_free(cl);
        return fail(err, GW_JWT_MALFORMED, "channels, publish or presence is not an array of patterns");
    }
    cl->has_presence = json_object_get(c, "presence") != NULL;
    if (info) {
        /* Presence shows it to every reader of a channel: bounded, stored compact. */
        cl->info = json_dumps(info, JSON_COMPACT);
        if (!cl->info || strlen(cl->info) > GW_JWT_INFO_MAX) {
            gw_jwt_claims_free(cl);
            return fail(err, GW_JWT_MALFORMED, "info is over 1024 bytes of compact JSON");
        }
    }
    /* RFC 7519 4.1.4: valid while now < exp; leeway widens every window. */
    if (exp + leeway <= now) {
        gw_jwt_claims_free(cl);
        return fail(err, GW_JWT_EXPIRED, "token expired");
    }
    if ((has_nbf && nbf - leeway > now) || (has_iat && iat - leeway > now)) {
        gw_jwt_claims_free(cl);
        return fail(err, GW_JWT_NOT_YET_VALID, "nbf or iat is in the future");
    }
    if (pol->issuer && (!iss || strcmp(json_string_value(iss), pol->issuer) != 0)) {
        gw_jwt_claims_free(cl);
        return fail(err, GW_JWT_WRONG_ISSUER, "iss does not match");
    }
    if (pol->audience && (!aud || !aud_has(aud, pol->audience))) {
        gw_jwt_claims_free(cl);
        return fail(err, GW_JWT_WRONG_AUDIENCE, "aud does not include this gateway");
    }
    cl->sub = sub ? gw_xstrdup(json_string_value(sub)) : NULL;
    cl->exp = exp;
    cl->has_iat = has_iat > 0;
    cl->iat = has_iat > 0 ? iat : 0;
    *out = cl;
    return 0;
}

void gw_jwt_claims_free(struct gw_jwt_claims *claims)
{
    if (!claims)
        return;
    for (size_t i = 0; i < claims->n_channels; i++)
        free(claims->channels[i]);
    for (size_t i = 0; i < claims->n_publish; i++)
        free(claims->publish[i]);
    for (size_t i = 0; i < claims->n_presence; i++)
        free(claims->presence[i]);
    free(claims->channels);
    free(claims->publish);
    free(claims->presence);
    free(claims->sub);
    free(claims->info);
    free(claims);
}

int gw_jwt_verify(const struct gw_jwt_keys *keys, const struct gw_jwt_policy *pol,
                  const char *token, size_t len, int64_t now, struct gw_jwt_claims **out,
                  struct gw_jwt_error *err)
{
    size_t max = pol->max_len ? pol->max_len : GW_JWT_MAX_LEN_DEFAULT;
    struct gw_jwt_error scratch;
    const char *dot1, *dot2, *sig_seg;
    json_t *hdr = NULL, *claims = NULL, *alg, *kid;
    unsigned char *sig = NULL;
    size_t siglen, sig_seg_len;
    int rc;

    if (!err)
        err = &scratch;
    err->reason = GW_JWT_OK;
    err->msg[0] = '\0';
    *out = NULL;
    if (!token || len > max)
        return fail(err, GW_JWT_MALFORMED, "token longer than %zu bytes", max);
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return fail(err, GW_JWT_MALFORMED, "not three dot-separated segments");
    hdr = decode_object(token, (size_t)(dot1 - token));
    if (!hdr) {
        rc = fail(err, GW_JWT_MALFORMED, "header is not base64url JSON object");
        goto out;
    }
    alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg)) {
        rc = fail(err, GW_JWT_MALFORMED, "alg missing or not a string");
        goto out;
    }
    /* RFC 7515 4.1.11: extensions we do not understand must be refused. */
    if (json_object_get(hdr, "crit")) {
        rc = fail(err, GW_JWT_MALFORMED, "crit header is not supported");
        goto out;
    }
    kid = json_object_get(hdr, "kid");
    if (kid && !json_is_string(kid)) {
        rc = fail(err, GW_JWT_MALFORMED, "kid is not a string");
        goto out;
    }
    sig_seg = dot2 + 1;
    sig_seg_len = len - (size_t)(sig_seg - token);
    sig = gw_xmalloc(gw_b64url_decoded_max(sig_seg_len));
    if (gw_b64url_decode(sig_seg, sig_seg_len, sig, &siglen) < 0) {
        rc = fail(err, GW_JWT_MALFORMED, "signature is not base64url");
        goto out;
    }
    rc = gw_jwt_keys_verify(keys, json_string_value(alg), kid ? json_string_value(kid) : NULL,
                            (const unsigned char *)token, (size_t)(dot2 - token), sig, siglen);
    /* The token's strings are not echoed: they would be attacker text in logs. */
    if (rc == -ENOTSUP)
        rc = fail(err, GW_JWT_MALFORMED, "alg is not supported");
    else if (rc == -ENOKEY)
        rc = fail(err, GW_JWT_UNKNOWN_KEY, "no key has the token's kid");
    else if (rc == -ENOENT)
        rc = fail(err, GW_JWT_UNKNOWN_KEY, "no key of the alg's type and curve");
    else if (rc < 0)
        rc = fail(err, GW_JWT_BAD_SIGNATURE, "signature does not verify");
    if (rc < 0)
        goto out;
    claims = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims) {
        rc = fail(err, GW_JWT_MALFORMED, "payload is not base64url JSON object");
        goto out;
    }
    rc = check_claims(claims, pol, now, out, err);
out:
    json_decref(claims);
    json_decref(hdr);
    free(sig);
    return rc;
}
