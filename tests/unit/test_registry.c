/* Check suite for gateway/registry.[ch]: the id table, and the timer wheel that
 * lets a worker tick only the sessions that are due. Sessions are bare
 * entries: the registry only links them and hands back their pointer. */
#include "clock.h"
#include "registry.h"
#include "unit.h"

#define N 64

static struct gw_registry_entry sess[N];
static char owner[N]; /* what each entry's session pointer points at */
static int64_t ticked_at[N];
static int ticks[N];
static int64_t fake_now;
static int64_t resched_us; /* >0: each tick reschedules that far ahead */
static struct gw_registry *cur;

static void on_tick(struct gw_session *s)
{
    int i = (int)((char *)s - owner);
    ticks[i]++;
    ticked_at[i] = fake_now;
    if (resched_us)
        gw_registry_schedule(cur, &sess[i], fake_now + resched_us);
}

/* The worker's sweep: ticks every session due by fake_now. */
static void expire(struct gw_registry *r)
{
    struct gw_session *s;
    while ((s = gw_registry_next_due(r, fake_now)))
        on_tick(s);
}

static void setup(struct gw_registry *r)
{
    memset(sess, 0, sizeof(sess));
    memset(ticks, 0, sizeof(ticks));
    resched_us = 0;
    cur = r;
    gw_registry_init(r);
    for (int i = 0; i < N; i++) {
        gw_registry_add(r, &sess[i], 1000 + (uint64_t)i, (struct gw_session *)&owner[i]);
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
    ck_assert_ptr_eq(gw_registry_find(&r, 1000 + 7), (struct gw_session *)&owner[7]);
    gw_registry_remove(&r, &sess[7]);
    ck_assert_ptr_null(gw_registry_find(&r, 1000 + 7));
    gw_registry_add(&r, &sess[7], 1000 + 7, (struct gw_session *)&owner[7]);
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
        expire(&r);
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
    expire(&r);
    ck_assert_int_eq(ticks[0] + ticks[1], 0);
    /* A tick that reschedules itself for "now" lands in a later slot: no loop. */
    resched_us = 1;
    fake_now = t0 + 10 * 1000000LL + GW_WHEEL_SLOT_US;
    expire(&r);
    ck_assert_int_eq(ticks[0], 1);
    fake_now += GW_WHEEL_SLOT_US;
    expire(&r);
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
    expire(&r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ticks[i], 1);
    /* Removed while scheduled: never ticked. */
    gw_registry_schedule(&r, &sess[3], fake_now + 1000000);
    gw_registry_remove(&r, &sess[3]);
    fake_now += 2000000;
    expire(&r);
    ck_assert_int_eq(ticks[3], 1);
    gw_registry_add(&r, &sess[3], 1000 + 3, (struct gw_session *)&owner[3]);
    teardown(&r);
}
END_TEST

/* Each session owed a flush comes out once however often it asked, one
 * removed meanwhile never, and the iteration over all of them sees each. */
START_TEST(flush_list_and_iteration)
{
    struct gw_registry r;
    struct gw_session *s;
    int seen = 0, flushed[N] = { 0 };
    setup(&r);
    for (struct gw_registry_entry *e = gw_registry_first(&r); e; e = gw_registry_next(&r, e))
        seen++;
    ck_assert_int_eq(seen, N);
    gw_registry_want_flush(&r, &sess[1]);
    gw_registry_want_flush(&r, &sess[2]);
    gw_registry_want_flush(&r, &sess[1]);
    gw_registry_want_flush(&r, &sess[5]);
    gw_registry_remove(&r, &sess[5]);
    while ((s = gw_registry_next_flush(&r)))
        flushed[(char *)s - owner]++;
    ck_assert_int_eq(flushed[1], 1);
    ck_assert_int_eq(flushed[2], 1);
    ck_assert_int_eq(flushed[5], 0);
    gw_registry_want_flush(&r, &sess[1]); /* again after its flush */
    ck_assert_ptr_eq(gw_registry_next_flush(&r), (struct gw_session *)&owner[1]);
    ck_assert_ptr_null(gw_registry_next_flush(&r));
    gw_registry_add(&r, &sess[5], 1000 + 5, (struct gw_session *)&owner[5]);
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
    tcase_add_test(tc, flush_list_and_iteration);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
