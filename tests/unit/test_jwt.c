/* JWT verifier (common/jwt.[ch], common/jwtkeys.[ch]) against tokens minted
 * by PyJWT in jwt_vectors.h, which gen_jwt_vectors.py writes at build time. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "jwt.h"
#include "jwt_vectors.h"
#include "unit.h"

enum keyset { KS_ALL, KS_RSA, KS_EC, KS_EC384 };

struct vector {
    const char *name, *token;
    enum keyset keyset;
    enum gw_jwt_reason want;
};

#define JV(name, token, keyset, want) {name, token, keyset, want},
static const struct vector vectors[] = {JV_CASES};
#undef JV

static const struct gw_jwt_policy policy = {
    .issuer = JV_ISS, .audience = JV_AUD, .leeway = 30, .max_len = 8192};

static void add(struct gw_jwt_keys *k, const char *kid, const char *pem)
{
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, kid, pem, strlen(pem)), 0);
}

/* Returns a key set owned by the caller. */
static struct gw_jwt_keys *keys_new(enum keyset which)
{
    struct gw_jwt_keys *k = gw_jwt_keys_new();

    if (which == KS_ALL)
        ck_assert_int_eq(gw_jwt_keys_set_hmac(k, NULL, JV_HMAC, JV_HMAC_LEN), 0);
    if (which == KS_ALL || which == KS_RSA) {
        add(k, "rsa1", JV_RSA1_PEM);
        add(k, "rsa2", JV_RSA2_PEM);
    }
    if (which == KS_ALL || which == KS_EC)
        add(k, "ec256", JV_EC256_PEM);
    if (which == KS_ALL || which == KS_EC || which == KS_EC384)
        add(k, "ec384", JV_EC384_PEM);
    return k;
}

START_TEST(vector_case)
{
    const struct vector *v = &vectors[_i];
    struct gw_jwt_keys *k = keys_new(v->keyset);
    struct gw_jwt_claims *c = (void *)1;
    struct gw_jwt_error err;
    int rc = gw_jwt_verify(k, &policy, v->token, strlen(v->token), JV_NOW, &c, &err);

    ck_assert_msg(err.reason == v->want, "%s: got %s (%s), want %s", v->name,
                  gw_jwt_reason_label(err.reason), err.msg, gw_jwt_reason_label(v->want));
    if (v->want == GW_JWT_OK) {
        ck_assert_int_eq(rc, 0);
        ck_assert_ptr_nonnull(c);
    } else {
        ck_assert_int_eq(rc, -EACCES);
        ck_assert_ptr_null(c);
        ck_assert_uint_gt(strlen(err.msg), 0);
    }
    gw_jwt_claims_free(c);
    gw_jwt_keys_free(k);
}
END_TEST

START_TEST(claims_content)
{
    struct gw_jwt_keys *k = keys_new(KS_ALL);
    struct gw_jwt_claims *c;

    ck_assert_int_eq(gw_jwt_verify(k, &policy, JV_GOOD, strlen(JV_GOOD), JV_NOW, &c, NULL), 0);
    ck_assert_str_eq(c->sub, "alice");
    ck_assert_int_eq(c->exp, JV_NOW + 3600);
    ck_assert_uint_eq(c->n_channels, 2);
    ck_assert_str_eq(c->channels[0], "room:*");
    ck_assert_str_eq(c->channels[1], "user:{sub}");
    ck_assert_uint_eq(c->n_publish, 1);
    ck_assert_str_eq(c->publish[0], "room:1");
    gw_jwt_claims_free(c);
    gw_jwt_claims_free(NULL);
    gw_jwt_keys_free(k);
}
END_TEST

START_TEST(no_sub_no_grants)
{
    struct gw_jwt_keys *k = keys_new(KS_ALL);
    struct gw_jwt_claims *c = NULL;

    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        if (strcmp(vectors[i].name, "no_sub_no_grants") != 0)
            continue;
        ck_assert_int_eq(gw_jwt_verify(k, &policy, vectors[i].token, strlen(vectors[i].token),
                                       JV_NOW, &c, NULL), 0);
    }
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(c->sub);
    ck_assert_uint_eq(c->n_channels, 0);
    ck_assert_uint_eq(c->n_publish, 0);
    gw_jwt_claims_free(c);
    gw_jwt_keys_free(k);
}
END_TEST

START_TEST(max_len_and_policy)
{
    struct gw_jwt_keys *k = keys_new(KS_ALL);
    struct gw_jwt_policy p = policy;
    struct gw_jwt_claims *c;
    struct gw_jwt_error err;
    size_t len = strlen(JV_GOOD);

    p.max_len = len;
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW, &c, &err), 0);
    gw_jwt_claims_free(c);
    p.max_len = len - 1;
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW, &c, &err), -EACCES);
    ck_assert_int_eq(err.reason, GW_JWT_MALFORMED);
    /* Unconfigured iss/aud are not checked. */
    p = policy;
    p.issuer = NULL;
    p.audience = NULL;
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW, &c, &err), 0);
    gw_jwt_claims_free(c);
    /* exp is NOW+3600: a day of leeway is the cap, not a negative one. */
    p.leeway = -100000;
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW + 3599, &c, &err), 0);
    gw_jwt_claims_free(c);
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW + 3600, &c, &err), -EACCES);
    ck_assert_int_eq(err.reason, GW_JWT_EXPIRED);
    p.leeway = 1000000;
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW + 3600 + 86399, &c, &err), 0);
    gw_jwt_claims_free(c);
    ck_assert_int_eq(gw_jwt_verify(k, &p, JV_GOOD, len, JV_NOW + 3600 + 86400, &c, &err), -EACCES);
    /* An empty key set knows no key at all. */
    gw_jwt_keys_free(k);
    k = gw_jwt_keys_new();
    ck_assert_int_eq(gw_jwt_verify(k, &policy, JV_GOOD, len, JV_NOW, &c, &err), -EACCES);
    ck_assert_int_eq(err.reason, GW_JWT_UNKNOWN_KEY);
    gw_jwt_keys_free(k);
}
END_TEST

START_TEST(key_loading)
{
    struct gw_jwt_keys *k = gw_jwt_keys_new();
    static const char junk[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

    ck_assert_int_eq(gw_jwt_keys_set_hmac(k, NULL, JV_HMAC, GW_JWT_HMAC_MIN - 1), -EINVAL);
    ck_assert_int_eq(gw_jwt_keys_set_hmac(k, "h", JV_HMAC, JV_HMAC_LEN), 0);
    ck_assert_int_eq(gw_jwt_keys_set_hmac(k, NULL, JV_HMAC, JV_HMAC_LEN), -EEXIST);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "h", JV_RSA1_PEM, strlen(JV_RSA1_PEM)), -EEXIST);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "", JV_RSA1_PEM, strlen(JV_RSA1_PEM)), -EINVAL);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_RSA1024_PEM, strlen(JV_RSA1024_PEM)), -ENOTSUP);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_SECP256K1_PEM, strlen(JV_SECP256K1_PEM)),
                     -ENOTSUP);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_ED25519_PEM, strlen(JV_ED25519_PEM)), -ENOTSUP);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_EC256_PRIVATE_PEM,
                                         strlen(JV_EC256_PRIVATE_PEM)), -EINVAL);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", junk, strlen(junk)), -EINVAL);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", "", 0), -EINVAL);
    ck_assert_uint_eq(gw_jwt_keys_count(k), 1);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_EC256_PEM, strlen(JV_EC256_PEM)), 0);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "a", JV_EC384_PEM, strlen(JV_EC384_PEM)), -EEXIST);
    ck_assert_uint_eq(gw_jwt_keys_count(k), 2);
    gw_jwt_keys_free(k);
    gw_jwt_keys_free(NULL);
}
END_TEST

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* The kid comes from the file name; the secret loses one trailing newline. */
START_TEST(key_files)
{
    char dir[] = "/tmp/test_jwt.XXXXXX", path[256], secret[JV_HMAC_LEN + 2];
    struct gw_jwt_keys *k = gw_jwt_keys_new();
    struct gw_jwt_claims *c;
    struct gw_jwt_error err;
    static const char *const tok = JV_GOOD;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/2026-01.pem", dir);
    write_file(path, JV_RSA1_PEM, strlen(JV_RSA1_PEM));
    ck_assert_int_eq(gw_jwt_keys_add_pem_file(k, path), 0);
    ck_assert_int_eq(gw_jwt_keys_add_pem(k, "2026-01", JV_RSA2_PEM, strlen(JV_RSA2_PEM)), -EEXIST);
    ck_assert_int_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/missing.pem", dir);
    ck_assert_int_eq(gw_jwt_keys_add_pem_file(k, path), -ENOENT);

    /* "\r\n" stripped: the loaded secret verifies tokens signed with JV_HMAC. */
    memcpy(secret, JV_HMAC, JV_HMAC_LEN);
    memcpy(secret + JV_HMAC_LEN, "\r\n", 2);
    snprintf(path, sizeof path, "%s/secret", dir);
    write_file(path, secret, sizeof secret);
    ck_assert_int_eq(gw_jwt_keys_set_hmac_file(k, path), 0);
    ck_assert_int_eq(gw_jwt_verify(k, &policy, tok, strlen(tok), JV_NOW, &c, &err), 0);
    gw_jwt_claims_free(c);
    gw_jwt_keys_free(k);

    /* Only one newline goes: a second one stays part of the secret. */
    k = gw_jwt_keys_new();
    memcpy(secret + JV_HMAC_LEN, "\n\n", 2);
    write_file(path, secret, sizeof secret);
    ck_assert_int_eq(gw_jwt_keys_set_hmac_file(k, path), 0);
    ck_assert_int_eq(gw_jwt_verify(k, &policy, tok, strlen(tok), JV_NOW, &c, &err), -EACCES);
    ck_assert_int_eq(err.reason, GW_JWT_BAD_SIGNATURE);
    gw_jwt_keys_free(k);

    k = gw_jwt_keys_new();
    write_file(path, "short\n", 6);
    ck_assert_int_eq(gw_jwt_keys_set_hmac_file(k, path), -EINVAL);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    gw_jwt_keys_free(k);
}
END_TEST

START_TEST(labels)
{
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_OK), "ok");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_BAD_SIGNATURE), "bad_signature");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_EXPIRED), "expired");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_NOT_YET_VALID), "not_yet_valid");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_WRONG_AUDIENCE), "wrong_audience");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_WRONG_ISSUER), "wrong_issuer");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_MALFORMED), "malformed");
    ck_assert_str_eq(gw_jwt_reason_label(GW_JWT_UNKNOWN_KEY), "unknown_key");
    ck_assert_str_eq(gw_jwt_reason_label((enum gw_jwt_reason)99), "unknown");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, vector_case, 0, (int)(sizeof vectors / sizeof vectors[0]));
    tcase_add_test(tc, claims_content);
    tcase_add_test(tc, no_sub_no_grants);
    tcase_add_test(tc, max_len_and_policy);
    tcase_add_test(tc, key_loading);
    tcase_add_test(tc, key_files);
    tcase_add_test(tc, labels);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
