/* Check suite for gateway/registry.[ch]: the id table, and the timer wheel that
 * lets a worker tick only the sessions that are due. Sessions are bare
 * structs: the registry only links them. */
#include "clock.h"
#include "registry.h"
#include "unit.h"

#define N 64

static struct gw_session sess[N];
static int64_t ticked_at[N];
static int ticks[N];
static int64_t fake_now;
static int64_t resched_us; /* >0: each tick reschedules that far ahead */
static struct gw_registry *cur;

static void on_tick(void *ctx, struct gw_session *s, int64_t now_us)
{
    int i = (int)(s - sess);
    ck_assert_ptr_eq(ctx, &fake_now);
    ck_assert(now_us == fake_now);
    ticks[i]++;
    ticked_at[i] = fake_now;
    if (resched_us)
        gw_registry_schedule(cur, s, fake_now + resched_us);
}

static void setup(struct gw_registry *r)
{
    memset(sess, 0, sizeof(sess));
    memset(ticks, 0, sizeof(ticks));
    resched_us = 0;
    cur = r;
    gw_registry_init(r);
    for (int i = 0; i < N; i++) {
        sess[i].id = 1000 + (uint64_t)i;
        gw_registry_add(r, &sess[i]);
    }
}

static void teardown(struct gw_registry *r)
{
    for (int i = 0; i < N; i++)
        gw_registry_remove(r, &sess[i]);
    ck_assert_uint_eq(r->count, 0);
    gw_registry_deinit(r);
}

START_TEST(find_by_id)
{
    struct gw_registry r;
    setup(&r);
    ck_assert_uint_eq(r.count, N);
    ck_assert_ptr_eq(gw_registry_find(&r, 1000 + 7), &sess[7]);
    gw_registry_remove(&r, &sess[7]);
    ck_assert_ptr_null(gw_registry_find(&r, 1000 + 7));
    gw_registry_add(&r, &sess[7]);
    teardown(&r);
}
END_TEST

/* Each session due at its own time is ticked once, never before its due
 * time and at most one slot after it. */
START_TEST(ticks_when_due_not_before)
{
    struct gw_registry r;
    setup(&r);
    int64_t t0 = gw_now_us();
    for (int i = 0; i < N; i++)
        gw_registry_schedule(&r, &sess[i], t0 + (int64_t)i * 100000); /* 0..6.3 s */
    for (fake_now = t0; fake_now <= t0 + 7000000; fake_now += 50000)
        gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    for (int i = 0; i < N; i++) {
        int64_t due = t0 + (int64_t)i * 100000;
        ck_assert_int_eq(ticks[i], 1);
        ck_assert_msg(ticked_at[i] >= due, "session %d ticked %lld us early", i, (long long)(due - ticked_at[i]));
        ck_assert_msg(ticked_at[i] - due <= GW_WHEEL_SLOT_US, "session %d ticked %lld us late", i,
                      (long long)(ticked_at[i] - due));
    }
    teardown(&r);
}
END_TEST

/* Nothing scheduled in the future is touched by an expiry now. */
START_TEST(future_untouched_and_reschedule)
{
    struct gw_registry r;
    setup(&r);
    int64_t t0 = gw_now_us();
    gw_registry_schedule(&r, &sess[0], t0 + 10 * 1000000LL);
    gw_registry_schedule(&r, &sess[1], t0 + 1000000);
    gw_registry_schedule(&r, &sess[1], t0 + 20 * 1000000LL); /* replaces the earlier one */
    fake_now = t0 + 5 * 1000000LL;
    gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    ck_assert_int_eq(ticks[0] + ticks[1], 0);
    /* A tick that reschedules itself for "now" lands in a later slot: no loop. */
    resched_us = 1;
    fake_now = t0 + 10 * 1000000LL + GW_WHEEL_SLOT_US;
    gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    ck_assert_int_eq(ticks[0], 1);
    fake_now += GW_WHEEL_SLOT_US;
    gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    ck_assert_int_eq(ticks[0], 2);
    ck_assert_int_eq(ticks[1], 0);
    teardown(&r);
}
END_TEST

/* Beyond the wheel's horizon a tick is clamped to its last slot (early, which
 * the contract allows), and a stall longer than a lap ticks each session once. */
START_TEST(horizon_and_stall)
{
    struct gw_registry r;
    setup(&r);
    int64_t t0 = gw_now_us();
    int64_t lap = (int64_t)GW_WHEEL_SLOTS * GW_WHEEL_SLOT_US;
    for (int i = 0; i < N; i++)
        gw_registry_schedule(&r, &sess[i], t0 + 3 * lap);
    fake_now = t0 + 5 * lap;
    gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ticks[i], 1);
    /* Removed while scheduled: never ticked. */
    gw_registry_schedule(&r, &sess[3], fake_now + 1000000);
    gw_registry_remove(&r, &sess[3]);
    fake_now += 2000000;
    gw_registry_expire(&r, fake_now, on_tick, &fake_now);
    ck_assert_int_eq(ticks[3], 1);
    gw_registry_add(&r, &sess[3]);
    teardown(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, find_by_id);
    tcase_add_test(tc, ticks_when_due_not_before);
    tcase_add_test(tc, future_untouched_and_reschedule);
    tcase_add_test(tc, horizon_and_stall);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
