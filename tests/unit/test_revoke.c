/* Check suite for common/revoke.[ch]: which tokens a revocation refuses
 * (iat at or before it, or none), lifting, expiry, the reload that keeps
 * newer changes, and the Redis value format. */
#include <errno.h>

#include "revoke.h"
#include "unit.h"

#define NOW INT64_C(1800000000)

static struct gw_revoke r;

static void setup(void)
{
    gw_revoke_init(&r);
}

static void teardown(void)
{
    gw_revoke_deinit(&r);
}

static bool refuses(const char *user, bool has_iat, int64_t iat, int64_t now)
{
    return gw_revoke_refuses(&r, user, strlen(user), has_iat, iat, now);
}

START_TEST(iat_rule)
{
    ck_assert(!refuses("alice", true, NOW - 10, NOW)); /* nothing revoked */
    gw_revoke_set(&r, "alice", 5, NOW, NOW + 600, false);
    ck_assert(refuses("alice", true, NOW - 10, NOW + 1));
    ck_assert(refuses("alice", true, NOW, NOW + 1)); /* same second: refused (safe side) */
    ck_assert(!refuses("alice", true, NOW + 1, NOW + 1));
    ck_assert(refuses("alice", false, 0, NOW + 1)); /* no iat: refused while revoked */
    ck_assert(!refuses("alicE", true, NOW - 10, NOW + 1));
    ck_assert(!refuses("alic", true, NOW - 10, NOW + 1));
    ck_assert(!gw_revoke_refuses(&r, "alice\0x", 7, true, NOW - 10, NOW + 1));
    /* Expired: accepted again. */
    ck_assert(refuses("alice", true, NOW - 10, NOW + 599));
    ck_assert(!refuses("alice", true, NOW - 10, NOW + 600));
}
END_TEST

START_TEST(lift_and_again)
{
    gw_revoke_set(&r, "bob", 3, NOW, NOW + 600, false);
    gw_revoke_set(&r, "bob", 3, NOW + 5, NOW + 65, true);
    ck_assert(!refuses("bob", true, NOW - 10, NOW + 6));
    ck_assert(!refuses("bob", false, 0, NOW + 6));
    gw_revoke_set(&r, "bob", 3, NOW + 10, NOW + 610, false);
    ck_assert(refuses("bob", true, NOW + 9, NOW + 11));
    ck_assert_uint_eq(gw_revoke_count(&r), 1);
}
END_TEST

START_TEST(reload_keeps_newer)
{
    struct gw_revoke_item items[] = {
        { "old", 3, NOW - 100, NOW + 100 },
        { "gone", 4, NOW - 100, NOW - 1 }, /* expired: not loaded */
        { "lifted-meanwhile", 16, NOW - 100, NOW + 100 },
    };
    gw_revoke_set(&r, "stale", 5, NOW - 50, NOW + 100, false); /* not in Redis any more */
    uint64_t stamp = gw_revoke_stamp(&r);
    /* While the read is on its way, the control channel brings a lift and a revoke. */
    gw_revoke_set(&r, "lifted-meanwhile", 16, NOW, NOW + 60, true);
    gw_revoke_set(&r, "new", 3, NOW, NOW + 100, false);
    gw_revoke_reload(&r, stamp, items, 3, NOW);
    ck_assert(refuses("old", true, NOW - 200, NOW));
    ck_assert(!refuses("gone", true, NOW - 200, NOW));
    ck_assert(!refuses("stale", true, NOW - 200, NOW));
    ck_assert(!refuses("lifted-meanwhile", true, NOW - 200, NOW));
    ck_assert(refuses("new", true, NOW - 1, NOW));
    ck_assert_uint_eq(gw_revoke_count(&r), 3); /* old, new, the lift marker */
}
END_TEST

START_TEST(value_format)
{
    char buf[48];
    int64_t at, until;
    size_t n = gw_revoke_format_value(buf, NOW, NOW + 600);

    ck_assert_str_eq(buf, "1800000000 1800000600");
    ck_assert_int_eq(gw_revoke_parse_value(buf, n, &at, &until), 0);
    ck_assert_int_eq(at, NOW);
    ck_assert_int_eq(until, NOW + 600);
    static const char *const bad[] = { "", "1", "1 ", " 1 2", "1 2 3", "2 1", "1 1", "-1 5", "1 x", "1  2",
                                       "123456789012345678901234567890 1234567890123456789012345" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gw_revoke_parse_value(bad[i], strlen(bad[i]), &at, &until) == -EINVAL, "accepted \"%s\"",
                      bad[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("revoke");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, iat_rule);
    tcase_add_test(tc, lift_and_again);
    tcase_add_test(tc, reload_keeps_newer);
    tcase_add_test(tc, value_format);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
