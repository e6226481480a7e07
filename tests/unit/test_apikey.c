/* Check suite for common/apikey.[ch]: the key file format, its errors, and
 * matching (every key, exact length, nothing else). */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "apikey.h"
#include "unit.h"

#define K1 "0123456789abcdef"          /* 16 bytes: the shortest accepted */
#define K2 "rotated-key-2-ABCDEFGHIJKLMNOP"

static struct gw_apikeys keys;
static char err[256];

static int parse(const char *text)
{
    gw_apikeys_deinit(&keys);
    err[0] = '\0';
    return gw_apikeys_parse(&keys, text, strlen(text), err, sizeof(err));
}

static bool match(const char *key)
{
    return gw_apikeys_match(&keys, key, strlen(key));
}

static void teardown(void)
{
    gw_apikeys_deinit(&keys);
}

START_TEST(comments_blanks_whitespace)
{
    ck_assert_int_eq(parse("# keys for the backends\n\n  " K1 " \t\r\n#old: ignored-key-0000000000\n" K2), 0);
    ck_assert_uint_eq(keys.count, 2);
    ck_assert(match(K1));
    ck_assert(match(K2));
    ck_assert(!match("ignored-key-0000000000"));
    ck_assert(!match("#old: ignored-key-0000000000"));
}
END_TEST

START_TEST(match_is_exact)
{
    ck_assert_int_eq(parse(K1 "\n" K2 "\n"), 0);
    ck_assert(!match(""));
    ck_assert(!match("0123456789abcde"));    /* prefix */
    ck_assert(!match(K1 "0"));               /* longer */
    ck_assert(!match("0123456789abcdeF"));   /* last byte */
    ck_assert(!match("1123456789abcdef"));   /* first byte */
    ck_assert(!gw_apikeys_match(&keys, K1 "\0", 17)); /* padding is not a key byte */
    char big[GW_APIKEY_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert(!match(big));
}
END_TEST

START_TEST(longest_key)
{
    char text[GW_APIKEY_MAX + 2];
    memset(text, 'k', GW_APIKEY_MAX);
    text[GW_APIKEY_MAX] = '\0';
    ck_assert_int_eq(parse(text), 0);
    ck_assert(match(text));
    text[GW_APIKEY_MAX] = 'k';
    text[GW_APIKEY_MAX + 1] = '\0';
    ck_assert_int_eq(parse(text), -EINVAL);
    ck_assert_str_eq(err, "api key file line 1: a key must be 16..256 bytes, this one has 257");
}
END_TEST

START_TEST(errors_name_the_line_not_the_key)
{
    ck_assert_int_eq(parse(""), -EINVAL);
    ck_assert_str_eq(err, "api key file holds no key (blank lines and #comments are ignored)");
    ck_assert_int_eq(parse("# only a comment\n\n"), -EINVAL);
    ck_assert_int_eq(parse(K1 "\nshort-secret\n"), -EINVAL);
    ck_assert_str_eq(err, "api key file line 2: a key must be 16..256 bytes, this one has 12");
    ck_assert_int_eq(parse("two words in one line\n"), -EINVAL);
    ck_assert_str_eq(err, "api key file line 1: a key must be visible ASCII without spaces");
    ck_assert_int_eq(parse("caf\xc3\xa9-0123456789abcdef\n"), -EINVAL);
    ck_assert(strstr(err, "0123456789") == NULL);
}
END_TEST

START_TEST(too_many_keys)
{
    char text[(GW_APIKEYS_MAX + 1) * 24];
    size_t n = 0;
    for (int i = 0; i <= GW_APIKEYS_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "key-%016d\n", i);
    ck_assert_int_eq(parse(text), -EINVAL);
    ck_assert_str_eq(err, "api key file line 65: more than 64 keys");
}
END_TEST

START_TEST(load_file)
{
    char path[] = "/tmp/wsgate-apikey-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, K2 "\n", sizeof(K2)), (int)sizeof(K2));
    close(fd);
    gw_apikeys_deinit(&keys);
    ck_assert_int_eq(gw_apikeys_load(&keys, path, err, sizeof(err)), 0);
    ck_assert(match(K2));
    unlink(path);
    gw_apikeys_deinit(&keys);
    ck_assert_int_eq(gw_apikeys_load(&keys, path, err, sizeof(err)), -ENOENT);
    ck_assert(strstr(err, "cannot open api key file") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("apikey");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, comments_blanks_whitespace);
    tcase_add_test(tc, match_is_exact);
    tcase_add_test(tc, longest_key);
    tcase_add_test(tc, errors_name_the_line_not_the_key);
    tcase_add_test(tc, too_many_keys);
    tcase_add_test(tc, load_file);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
