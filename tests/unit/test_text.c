/* Check suite for common/text.[ch] and common/clock.[ch]: the small helpers. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "text.h"
#include "unit.h"

START_TEST(parse_ll_strict)
{
    long long v = 7;
    ck_assert_int_eq(gw_text_parse_ll("0", &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(gw_text_parse_ll("-42", &v), 0);
    ck_assert_int_eq(v, -42);
    ck_assert_int_eq(gw_text_parse_ll("9223372036854775807", &v), 0);
    ck_assert(v == LLONG_MAX);
    ck_assert_int_eq(gw_text_parse_ll("9223372036854775808", &v), -ERANGE);
    /* What strtoll alone would take. */
    ck_assert_int_eq(gw_text_parse_ll("", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll("-", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll(" 1", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll("+1", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll("1x", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll("1 ", &v), -EINVAL);
    ck_assert_int_eq(gw_text_parse_ll("0x10", &v), -EINVAL);
}
END_TEST

START_TEST(err_formats_and_truncates)
{
    char buf[8];
    ck_assert_int_eq(gw_text_err(buf, sizeof(buf), "bad %d", 12345), -EINVAL);
    ck_assert_str_eq(buf, "bad 123");
    ck_assert_int_eq(gw_text_err(NULL, 0, "ignored %s", "x"), -EINVAL);
}
END_TEST

START_TEST(read_file_whole_bounded)
{
    char path[] = "/tmp/gw-test-text-XXXXXX";
    int fd = mkstemp(path);
    char *buf = NULL;
    size_t len = 99;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "secret\n", 7), 7);
    close(fd);
    ck_assert_int_eq(gw_text_read_file(path, 7, &buf, &len), 0);
    ck_assert_uint_eq(len, 7);
    ck_assert_str_eq(buf, "secret\n"); /* NUL-terminated */
    free(buf);
    buf = NULL;
    /* One byte over the limit is refused, and nothing is handed out. */
    ck_assert_int_eq(gw_text_read_file(path, 6, &buf, &len), -EFBIG);
    ck_assert_ptr_null(buf);
    unlink(path);
    ck_assert_int_eq(gw_text_read_file(path, 64, &buf, &len), -ENOENT);
    ck_assert_ptr_null(buf);
}
END_TEST

START_TEST(clock_is_monotonic)
{
    int64_t prev = gw_now_us();
    ck_assert(prev > 0);
    for (int i = 0; i < 100000; i++) {
        int64_t now = gw_now_us();
        ck_assert(now >= prev);
        prev = now;
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, parse_ll_strict);
    tcase_add_test(tc, err_formats_and_truncates);
    tcase_add_test(tc, read_file_whole_bounded);
    tcase_add_test(tc, clock_is_monotonic);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
