/* RFC 6455 handshake and close-body checks (common/ws6455.[ch]). */
#include "unit.h"
#include "ws6455.h"

static int upgrade_status(const char *k, const char *v)
{
    return gw_ws_upgrade_status(k, k ? strlen(k) : 0, v, v ? strlen(v) : 0);
}

START_TEST(upgrade)
{
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", "13"), 0); /* RFC 6455 1.3 */
    ck_assert_int_eq(upgrade_status("AAAAAAAAAAAAAAAAAAAA+/==", "13"), 0);
    ck_assert_int_eq(upgrade_status(NULL, "13"), 400);
    ck_assert_int_eq(upgrade_status("", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ=", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ===", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZ===", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ-_", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub2 jZQ==", "13"), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", NULL), 400);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", ""), 400);
    ck_assert_int_eq(upgrade_status(NULL, "8"), 400); /* a bad key is worse than a version */
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", "8"), 426);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", "013"), 426);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", "13, 8"), 426);
    ck_assert_int_eq(upgrade_status("dGhlIHNhbXBsZSBub25jZQ==", "1"), 426);
}
END_TEST

#define CLOSE(lit) gw_ws_close_body_valid((const uint8_t *)(lit), sizeof(lit) - 1)

START_TEST(close_body)
{
    ck_assert(CLOSE(""));
    ck_assert(!CLOSE("\x03"));
    ck_assert(CLOSE("\x03\xe8"));             /* 1000 */
    ck_assert(CLOSE("\x03\xe8" "bye"));
    ck_assert(CLOSE("\x03\xeb"));             /* 1003 */
    ck_assert(!CLOSE("\x03\xec"));            /* 1004 */
    ck_assert(!CLOSE("\x03\xed"));            /* 1005 */
    ck_assert(!CLOSE("\x03\xee"));            /* 1006 */
    ck_assert(CLOSE("\x03\xef"));             /* 1007 */
    ck_assert(CLOSE("\x03\xf3"));             /* 1011 */
    ck_assert(!CLOSE("\x03\xf4"));            /* 1012 */
    ck_assert(!CLOSE("\x0b\xb7"));            /* 2999 */
    ck_assert(CLOSE("\x0b\xb8"));             /* 3000 */
    ck_assert(CLOSE("\x13\x87"));             /* 4999 */
    ck_assert(!CLOSE("\x13\x88"));            /* 5000 */
    ck_assert(!CLOSE("\x00\x00"));
    ck_assert(!CLOSE("\xff\xff"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ws6455");
    TCase *tc = tcase_create("ws6455");

    tcase_add_test(tc, upgrade);
    tcase_add_test(tc, close_body);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
