/* Channel-name rules (PROTOCOL.md "Channel names"). */
#include <stdio.h>

#include "channel.h"
#include "unit.h"

#define VALID(lit) ck_assert_msg(gw_channel_valid(lit, sizeof(lit) - 1), "should be valid: %s", lit)
#define INVALID(lit)                                                                     \
    ck_assert_msg(!gw_channel_valid(lit, sizeof(lit) - 1), "should be invalid: %s", lit)

START_TEST(lengths)
{
    char name[GW_CHANNEL_MAX + 2];

    memset(name, 'a', sizeof name);
    ck_assert(!gw_channel_valid(name, 0));
    ck_assert(!gw_channel_valid(NULL, 0));
    ck_assert(gw_channel_valid(name, 1));
    ck_assert(gw_channel_valid(name, 127));
    ck_assert(gw_channel_valid(name, 128));
    ck_assert(!gw_channel_valid(name, 129));
    ck_assert_int_eq(GW_CHANNEL_MAX, 128);
}
END_TEST

START_TEST(allowed_chars)
{
    VALID("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    VALID("abcdefghijklmnopqrstuvwxyz");
    VALID("0123456789");
    VALID("_");
    VALID("-");
    VALID(":");
    VALID(".");
    VALID("@");
    VALID("/");
    VALID("=");
    VALID("room:1");
    VALID("user@example.com/inbox=x_y-z.1");
}
END_TEST

START_TEST(rejected_chars)
{
    INVALID(" ");
    INVALID("a b");
    INVALID("a*");
    INVALID("a?");
    INVALID("a[");
    INVALID("a]");
    INVALID("a\\");
    INVALID("a\0b");
    INVALID("\x7f");
    INVALID("a\tb");
    INVALID("a\nb");
    INVALID("caf\xc3\xa9");
    INVALID("\xff");
    INVALID("a\"b");
    INVALID("a,b");
    INVALID("a#b");
    INVALID("a%b");
    INVALID("a+b");
}
END_TEST

/* Every byte value against the documented set, one at a time. */
START_TEST(every_byte)
{
    const char *ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:.@/=";
    int allowed = 0;

    for (int c = 0; c < 256; c++) {
        char name[3] = { 'x', (char)c, 'x' };
        bool want = c != 0 && strchr(ok, c) != NULL;

        ck_assert_msg(gw_channel_valid(name, 3) == want, "byte 0x%02x", c);
        allowed += want;
    }
    ck_assert_int_eq(allowed, 69);
}
END_TEST

#define RESERVED(pre, name) gw_channel_reserved(pre, sizeof(pre) - 1, name, sizeof(name) - 1)

/* Issue 8 item 10: the Redis name prefix + channel decides, wherever the
 * boundary between the two falls. */
START_TEST(reserved)
{
    ck_assert(RESERVED("", "__wsgate:hb:n1"));
    ck_assert(RESERVED("", "__wsgate:"));
    ck_assert(!RESERVED("", "__wsgate"));
    ck_assert(!RESERVED("", "_wsgate:hb:n1"));
    ck_assert(RESERVED("_", "_wsgate:hb:n1"));
    ck_assert(RESERVED("__ws", "gate:x"));
    ck_assert(!RESERVED("__ws", "gate"));
    ck_assert(RESERVED("__wsgate:", "hb:n1"));
    ck_assert(RESERVED("__wsgate:app:", "x"));
    ck_assert(!RESERVED("gw:", "__wsgate:hb:n1"));
    ck_assert(!RESERVED("__wsgate", "x:hb"));
    ck_assert(!RESERVED("_", "__wsgate:hb"));
    ck_assert_str_eq(GW_CHANNEL_RESERVED, "__wsgate:");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, lengths);
    tcase_add_test(tc, allowed_chars);
    tcase_add_test(tc, rejected_chars);
    tcase_add_test(tc, every_byte);
    tcase_add_test(tc, reserved);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
