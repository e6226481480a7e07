/* Strict base64url decoding (common/b64url.[ch]): RFC 4648 vectors, then
 * every way an input may be refused. */
#include <errno.h>

#include "b64url.h"
#include "unit.h"

/* Decodes the literal in and checks the result is want (a literal too). */
#define OK(in, want)                                                                     \
    do {                                                                                 \
        unsigned char out_[64];                                                          \
        size_t n_ = 999;                                                                 \
        ck_assert_uint_le(gw_b64url_decoded_max(sizeof(in) - 1), sizeof out_);           \
        ck_assert_msg(gw_b64url_decode(in, sizeof(in) - 1, out_, &n_) == 0, "refused: %s", in); \
        ck_assert_uint_eq(n_, sizeof(want) - 1);                                         \
        ck_assert_mem_eq(out_, want, n_);                                                \
    } while (0)
#define BAD(in)                                                                          \
    do {                                                                                 \
        unsigned char out_[64];                                                          \
        size_t n_ = 999;                                                                 \
        ck_assert_msg(gw_b64url_decode(in, sizeof(in) - 1, out_, &n_) == -EINVAL,        \
                      "accepted: %s", in);                                               \
        ck_assert_uint_eq(n_, 999);                                                      \
    } while (0)

START_TEST(rfc4648_vectors)
{
    OK("", "");
    OK("Zg", "f");
    OK("Zm8", "fo");
    OK("Zm9v", "foo");
    OK("Zm9vYg", "foob");
    OK("Zm9vYmE", "fooba");
    OK("Zm9vYmFy", "foobar");
}
END_TEST

START_TEST(url_alphabet)
{
    OK("-_-_", "\xfb\xff\xbf");
    OK("AAAA", "\0\0\0");
    OK("____", "\xff\xff\xff");
    BAD("+/+/"); /* the standard alphabet's 62 and 63 */
    BAD("ab+c");
    BAD("ab/c");
}
END_TEST

START_TEST(padding_and_junk)
{
    BAD("Zg==");
    BAD("Zm8=");
    BAD("Zm9v====");
    BAD("=");
    BAD("Zm9v Yg");
    BAD("Zm9v\nYg");
    BAD("Zm9v.Yg");
    BAD("Zm\0v");
    BAD("Zm9\x80");
    BAD("Zm9\xff");
    BAD("Z");     /* length 1 mod 4 carries no whole byte */
    BAD("Zm9vY");
}
END_TEST

/* "Zh" and "Zg" would both decode to "f": only the zero-bit spelling passes. */
START_TEST(noncanonical_bits)
{
    BAD("Zh");
    BAD("Zv");
    BAD("Zm9");
    OK("Zm8", "fo");
    BAD("Zm9vYh");
    BAD("Zm9vYmF");
    OK("Zm9vYmE", "fooba");
}
END_TEST

START_TEST(decoded_max)
{
    ck_assert_uint_ge(gw_b64url_decoded_max(0), 0);
    ck_assert_uint_ge(gw_b64url_decoded_max(2), 1);
    ck_assert_uint_ge(gw_b64url_decoded_max(3), 2);
    ck_assert_uint_ge(gw_b64url_decoded_max(4), 3);
    ck_assert_uint_ge(gw_b64url_decoded_max(43), 32);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("b64url");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, rfc4648_vectors);
    tcase_add_test(tc, url_alphabet);
    tcase_add_test(tc, padding_and_junk);
    tcase_add_test(tc, noncanonical_bits);
    tcase_add_test(tc, decoded_max);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
