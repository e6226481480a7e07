/* Hub: channel index, 0->1 / 1->0 transitions and deferred acks, driven with
 * fake members and a recording ops table. */
#include <errno.h>
#include <stdio.h>

#include "frame.h"
#include "hub.h"
#include "unit.h"

struct fake {
    struct gw_hub_member member;
    int delivered;
    int64_t acks[16];
    int nacks;
};

struct recorder {
    char events[64][64]; /* "want:x" / "unwant:x" */
    int nevents;
};

static struct recorder rec;

static void rec_event(const char *kind, const char *name, size_t len)
{
    ck_assert_int_lt(rec.nevents, 64);
    snprintf(rec.events[rec.nevents++], 64, "%s:%.*s", kind, (int)len, name);
}

static void op_wanted(void *ctx, const char *name, size_t len) { rec_event("want", name, len); }
static void op_unwanted(void *ctx, const char *name, size_t len) { rec_event("unwant", name, len); }
static void op_deliver(void *ctx, void *owner, struct gw_frame *f) { ((struct fake *)owner)->delivered++; }
static void op_ack(void *ctx, void *owner, int64_t id)
{
    struct fake *f = owner;
    f->acks[f->nacks++] = id;
}

static const struct gw_hub_ops ops = { op_wanted, op_unwanted, op_deliver, op_ack };

static struct gw_hub hub;

static void setup(void)
{
    memset(&rec, 0, sizeof(rec));
    gw_hub_init(&hub, &ops, NULL);
}

static void teardown(void)
{
    gw_hub_deinit(&hub);
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    gw_hub_member_init(&f->member, f);
}

#define SUB(f, ch, id, allow) gw_hub_subscribe(&hub, &(f)->member, ch, strlen(ch), true, id, 8, allow)

START_TEST(first_and_last_subscriber_drive_redis_interest)
{
    struct fake a, b;
    fake_init(&a);
    fake_init(&b);
    ck_assert_int_eq(SUB(&a, "room:1", 1, true), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(rec.nevents, 1);
    ck_assert_str_eq(rec.events[0], "want:room:1");
    ck_assert_int_eq(SUB(&b, "room:1", 2, true), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(rec.nevents, 1); /* second subscriber: no new Redis interest */

    gw_hub_unsubscribe(&hub, &a.member, "room:1", 6);
    ck_assert_int_eq(rec.nevents, 1);
    gw_hub_unsubscribe(&hub, &b.member, "room:1", 6);
    ck_assert_int_eq(rec.nevents, 2);
    ck_assert_str_eq(rec.events[1], "unwant:room:1");
    ck_assert_uint_eq(gw_hub_channel_count(&hub), 0);
    ck_assert_uint_eq(hub.nsubs, 0);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

START_TEST(acks_wait_for_live_then_are_immediate)
{
    struct fake a, b;
    fake_init(&a);
    fake_init(&b);
    SUB(&a, "c", 10, true);
    SUB(&a, "c", 11, true); /* repeat while pending: acked with the same live event */
    ck_assert_int_eq(a.nacks, 0);
    gw_hub_channel_live(&hub, "c", 1);
    ck_assert_int_eq(a.nacks, 2);
    ck_assert_int_eq(a.acks[0], 10);
    ck_assert_int_eq(a.acks[1], 11);
    gw_hub_channel_live(&hub, "c", 1); /* duplicate live: no duplicate acks */
    ck_assert_int_eq(a.nacks, 2);
    ck_assert_int_eq(SUB(&b, "c", 12, false), GW_HUB_SUB_ACK_NOW);
    ck_assert_int_eq(SUB(&a, "c", 13, true), GW_HUB_SUB_ACK_NOW);
    ck_assert_int_eq(a.nacks, 2); /* ACK_NOW: the caller acks, not the hub */
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

START_TEST(unsubscribe_before_live_still_answers_the_subscribe)
{
    struct fake a;
    fake_init(&a);
    SUB(&a, "c", 5, true);
    gw_hub_unsubscribe(&hub, &a.member, "c", 1);
    ck_assert_int_eq(a.nacks, 1);
    ck_assert_int_eq(a.acks[0], 5);
    gw_hub_channel_live(&hub, "c", 1); /* channel is gone: nothing happens */
    ck_assert_int_eq(a.nacks, 1);
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(not_live_and_not_allowed_changes_nothing)
{
    struct fake a;
    fake_init(&a);
    ck_assert_int_eq(SUB(&a, "c", 1, false), -EAGAIN);
    ck_assert_int_eq(rec.nevents, 0);
    ck_assert_int_eq(a.member.nsubs, 0);
    ck_assert_uint_eq(gw_hub_channel_count(&hub), 0);
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(subscription_limit)
{
    struct fake a;
    char name[16];
    fake_init(&a);
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "ch%d", i);
        ck_assert_int_ge(SUB(&a, name, i, true), 0);
    }
    ck_assert_int_eq(SUB(&a, "one-more", 99, true), -ENOSPC);
    ck_assert_int_ge(SUB(&a, "ch3", 100, true), 0); /* existing channel is not a new slot */
    gw_hub_leave_all(&hub, &a.member);
    ck_assert_uint_eq(gw_hub_channel_count(&hub), 0);
    ck_assert_int_eq(rec.nevents, 16);
}
END_TEST

START_TEST(deliver_reaches_exactly_the_subscribers)
{
    struct fake m[50];
    for (int i = 0; i < 50; i++) {
        fake_init(&m[i]);
        SUB(&m[i], i % 2 ? "odd" : "even", i, true);
    }
    struct gw_frame *f = gw_frame_new_copy("x", 1);
    ck_assert_uint_eq(gw_hub_deliver(&hub, "odd", 3, f), 25);
    ck_assert_uint_eq(gw_hub_deliver(&hub, "none", 4, f), 0);
    /* Removing from the middle keeps the rest reachable (swap-with-last). */
    for (int i = 1; i < 50; i += 4)
        gw_hub_leave_all(&hub, &m[i].member);
    ck_assert_uint_eq(gw_hub_deliver(&hub, "odd", 3, f), 12);
    for (int i = 0; i < 50; i++) {
        int expect = (i % 2) ? ((i - 1) % 4 == 0 ? 1 : 2) : 0;
        ck_assert_int_eq(m[i].delivered, expect);
        gw_hub_leave_all(&hub, &m[i].member);
    }
    gw_frame_unref(f);
    ck_assert_uint_eq(gw_hub_channel_count(&hub), 0);
    ck_assert_uint_eq(hub.nsubs, 0);
}
END_TEST

static Suite *hub_suite(void)
{
    Suite *s = suite_create("hub");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, first_and_last_subscriber_drive_redis_interest);
    tcase_add_test(tc, acks_wait_for_live_then_are_immediate);
    tcase_add_test(tc, unsubscribe_before_live_still_answers_the_subscribe);
    tcase_add_test(tc, not_live_and_not_allowed_changes_nothing);
    tcase_add_test(tc, subscription_limit);
    tcase_add_test(tc, deliver_reaches_exactly_the_subscribers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(hub_suite());
}
