/* Check suite for common/quota.[ch]: a byte budget refilled at cap per
 * window, with a fake clock. */
#include "quota.h"
#include "unit.h"

#define S 1000000LL

START_TEST(spends_then_refuses_then_refills)
{
    struct gw_quota q;

    gw_quota_init(&q, 1000, 100 * S, 0);
    ck_assert(gw_quota_take(&q, 600, 0));
    ck_assert(gw_quota_take(&q, 400, 0));
    ck_assert(!gw_quota_take(&q, 1, 0)); /* empty */
    ck_assert(!gw_quota_take(&q, 11, 1 * S)); /* 10 bytes back after 1 s */
    ck_assert(gw_quota_take(&q, 10, 1 * S));
    /* Frequent calls still refill (no rounding away of small steps). */
    for (int64_t t = 1 * S + 1000; t <= 11 * S; t += 1000)
        gw_quota_take(&q, 0, t);
    ck_assert(gw_quota_take(&q, 99, 11 * S));
    ck_assert(!gw_quota_take(&q, 2, 11 * S));
    /* Never more than cap, however long it waited. */
    ck_assert(!gw_quota_take(&q, 1001, 10000 * S));
    ck_assert(gw_quota_take(&q, 1000, 10000 * S));
    /* A clock that went back refills nothing. */
    ck_assert(!gw_quota_take(&q, 1, 5000 * S));
}
END_TEST

START_TEST(give_back_and_unlimited)
{
    struct gw_quota q, none;

    gw_quota_init(&q, 100, S, 0);
    ck_assert(gw_quota_take(&q, 100, 0));
    gw_quota_give(&q, 30);
    ck_assert(!gw_quota_take(&q, 31, 0));
    ck_assert(gw_quota_take(&q, 30, 0));
    gw_quota_give(&q, 1000);
    ck_assert(!gw_quota_take(&q, 101, 0)); /* given back only up to cap */
    gw_quota_init(&none, 0, S, 0);
    ck_assert(gw_quota_take(&none, (size_t)1 << 40, 0));
    /* A 1 GiB budget over a year refills without overflow. */
    gw_quota_init(&q, (size_t)1 << 30, 365LL * 86400 * S, 0);
    ck_assert(gw_quota_take(&q, (size_t)1 << 30, 0));
    ck_assert(gw_quota_take(&q, ((size_t)1 << 30) / 2, 365LL * 86400 * S / 2 + S));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quota");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, spends_then_refuses_then_refills);
    tcase_add_test(tc, give_back_and_unlimited);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
