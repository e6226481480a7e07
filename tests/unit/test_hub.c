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
    uint64_t offsets[16]; /* of the delivered frames */
    int64_t acks[16];
    int nacks;
    uint32_t recover_seq; /* last ops->recover, 0: none */
    int recovers, overflows;
    int lives; /* client_ops.live calls */
    char live_name[16];
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

static uint32_t last_gen; /* of the last channel_wanted */

static void op_wanted(void *ctx, const char *name, size_t len, uint32_t gen)
{
    rec_event("want", name, len);
    last_gen = gen;
}
static void op_unwanted(void *ctx, const char *name, size_t len) { rec_event("unwant", name, len); }
static void op_deliver(void *owner, struct gw_frame *f)
{
    struct fake *k = owner;
    if (k->delivered < 16)
        k->offsets[k->delivered] = f->offset;
    k->delivered++;
}
static void op_ack(void *owner, int64_t id)
{
    struct fake *f = owner;
    if (f->nacks < 16)
        f->acks[f->nacks] = id;
    f->nacks++;
}

static bool op_want_room(void *owner) { return true; }

static void op_ask_page(void *owner, uint32_t seq, const char *name, size_t len, const struct gw_position *since,
                        uint64_t target)
{
    struct fake *f = owner;
    f->recovers++;
    f->recover_seq = seq;
}

static void op_overflow(void *owner) { ((struct fake *)owner)->overflows++; }

static void op_live(void *owner, const char *name, size_t len)
{
    struct fake *f = owner;
    f->lives++;
    snprintf(f->live_name, sizeof f->live_name, "%.*s", (int)len, name);
}

static const struct gw_hub_ops ops = { op_wanted, op_unwanted };
static const struct gw_client_ops client_ops = { op_deliver, op_ack, op_want_room, op_overflow, op_ask_page,
                                                 op_live };

static struct gw_hub hub;

static void setup(void)
{
    memset(&rec, 0, sizeof(rec));
    gw_hub_init(&hub, &ops, NULL, &client_ops, SIZE_MAX);
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

#define SUB(f, ch, id, allow) gw_hub_subscribe(&hub, &(f)->member, ch, strlen(ch), true, id, 8, allow, NULL)

static struct gw_recovery_req since(int64_t id, uint64_t offset)
{
    struct gw_recovery_req r = { true, id, true, { offset, "e", 1 } };
    return r;
}

#define SUB_REC(f, ch, r) gw_hub_subscribe(&hub, &(f)->member, ch, strlen(ch), true, (r)->id, 8, true, r)

static struct gw_frame *frame_at(uint64_t offset, size_t len)
{
    struct gw_frame *f = gw_frame_new(len);
    f->len = len;
    f->offset = offset;
    return f;
}

/* The one page of a recovery answered without a replay (recovered 0): its
 * ack gives the channel's position at, and live frames resume after it. */
static void last_page(struct fake *f, const char *ch, uint64_t at)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_RECOVERY, ch, strlen(ch));
    m->seq = f->recover_seq;
    m->first = m->last = true;
    m->recovered = 0;
    gw_position_set(&m->at, at, "e", 1);
    gw_hub_recovery_page(&hub, m);
    gw_wmail_free(m);
}

static void deliver_at(const char *ch, uint64_t offset)
{
    struct gw_frame *f = frame_at(offset, 10);
    gw_hub_deliver(&hub, ch, strlen(ch), f);
    gw_frame_unref(f);
}

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
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(a.nacks, 2);
    ck_assert_int_eq(a.acks[0], 10);
    ck_assert_int_eq(a.acks[1], 11);
    gw_hub_channel_live(&hub, "c", 1, last_gen); /* duplicate live: no duplicate acks */
    ck_assert_int_eq(a.nacks, 2);
    ck_assert_int_eq(SUB(&b, "c", 12, false), GW_HUB_SUB_ACK_NOW);
    ck_assert_int_eq(SUB(&a, "c", 13, true), GW_HUB_SUB_ACK_NOW);
    ck_assert_int_eq(a.nacks, 2); /* ACK_NOW: the caller acks, not the hub */
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

/* Presence joins where the ack is due: once per subscription, at live, at
 * once on a live channel, after a recovery, never again after a link loss,
 * never for a subscription that ended before it was live. */
START_TEST(live_is_told_once_per_subscription)
{
    struct fake a, b, c, d;
    fake_init(&a);
    fake_init(&b);
    fake_init(&c);
    fake_init(&d);
    SUB(&a, "p", 1, true);
    SUB(&a, "p", 2, true);
    SUB(&d, "p", 3, true);
    gw_hub_unsubscribe(&hub, &d.member, "p", 1); /* gone before live */
    ck_assert_int_eq(a.lives, 0);
    gw_hub_channel_live(&hub, "p", 1, last_gen);
    ck_assert_int_eq(a.lives, 1);
    ck_assert_str_eq(a.live_name, "p");
    ck_assert_int_eq(d.lives, 0);
    ck_assert_int_eq(SUB(&b, "p", 4, false), GW_HUB_SUB_ACK_NOW);
    ck_assert_int_eq(b.lives, 1);
    SUB(&b, "p", 5, false); /* already subscribed */
    ck_assert_int_eq(b.lives, 1);
    struct gw_recovery_req r = since(6, 3);
    SUB_REC(&c, "p", &r);
    ck_assert_int_eq(c.lives, 0); /* not before its replay ends */
    last_page(&c, "p", 3);
    ck_assert_int_eq(c.lives, 1);
    gw_hub_link_down(&hub);
    gw_hub_channel_live(&hub, "p", 1, last_gen);
    ck_assert_int_eq(a.lives + b.lives + c.lives, 3);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
    gw_hub_leave_all(&hub, &c.member);
    gw_hub_leave_all(&hub, &d.member);
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
    gw_hub_channel_live(&hub, "c", 1, last_gen); /* channel is gone: nothing happens */
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

START_TEST(recovery_starts_when_live_and_holds_live_frames)
{
    struct fake a;
    struct gw_recovery_req r = since(7, 4);
    fake_init(&a);
    ck_assert_int_eq(SUB_REC(&a, "c", &r), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(a.recovers, 0); /* not live yet */
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(a.recovers, 1);
    ck_assert_int_eq(a.nacks, 0); /* the recovery answers, not the hub */
    struct gw_sub *sub = gw_hub_find(&a.member, "c", 1);
    ck_assert_ptr_nonnull(sub);
    ck_assert_uint_eq(gw_recovery_seq(gw_hub_sub_recovery(sub)), a.recover_seq);
    /* Live frames during the replay are held, not delivered. */
    deliver_at("c", 5);
    deliver_at("c", 6);
    deliver_at("c", 0); /* a plain message: no offset */
    deliver_at("c", 7);
    ck_assert_int_eq(a.delivered, 0);
    /* The ack's position is 6: 5 and 6 are dropped, the rest go in order
     * after the ack (the first frame delivered, no offset). */
    last_page(&a, "c", 6);
    ck_assert_int_eq(a.delivered, 3);
    ck_assert_uint_eq(a.offsets[1], 0);
    ck_assert_uint_eq(a.offsets[2], 7);
    ck_assert_ptr_null(gw_hub_sub_recovery(sub));
    deliver_at("c", 8);
    ck_assert_int_eq(a.delivered, 4);
    ck_assert_uint_eq(a.offsets[3], 8);
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(recovery_on_a_live_channel_starts_at_once)
{
    struct fake a, b;
    struct gw_recovery_req r = since(3, 0);
    fake_init(&a);
    fake_init(&b);
    SUB(&a, "c", 1, true);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(SUB_REC(&b, "c", &r), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(b.recovers, 1);
    ck_assert_int_eq(b.nacks, 0);
    /* A repeat while the recovery runs waits for its end, then gets a plain ack. */
    ck_assert_int_eq(SUB(&b, "c", 4, true), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(b.nacks, 0);
    deliver_at("c", 1);
    ck_assert_int_eq(a.delivered, 1); /* others are not held */
    ck_assert_int_eq(b.delivered, 0);
    last_page(&b, "c", 0);
    ck_assert_int_eq(b.delivered, 2); /* the ack, then the held frame */
    ck_assert_uint_eq(b.offsets[1], 1);
    ck_assert_int_eq(b.nacks, 1);
    ck_assert_int_eq(b.acks[0], 4);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

START_TEST(held_frames_past_the_bound_overflow_once)
{
    struct fake a;
    struct gw_recovery_req r = since(1, 0);
    fake_init(&a);
    hub.hold_max_bytes = 25;
    SUB_REC(&a, "c", &r);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    deliver_at("c", 1);
    deliver_at("c", 2);
    ck_assert_int_eq(a.overflows, 0);
    deliver_at("c", 3); /* 30 bytes > 25 */
    ck_assert_int_eq(a.overflows, 1);
    deliver_at("c", 4);
    ck_assert_int_eq(a.overflows, 1);
    /* Nothing is held after the overflow (no frame is left alive), and the
     * shed client's replay sends nothing more. */
    ck_assert_int_eq(gw_frame_live_count(), 0);
    last_page(&a, "c", 0);
    ck_assert_int_eq(a.delivered, 0);
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(unsubscribe_during_recovery_answers_the_subscribe)
{
    struct fake a;
    struct gw_recovery_req r = since(9, 2);
    fake_init(&a);
    SUB_REC(&a, "c", &r);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    deliver_at("c", 3);
    gw_hub_unsubscribe(&hub, &a.member, "c", 1);
    ck_assert_int_eq(a.nacks, 1);
    ck_assert_int_eq(a.acks[0], 9);
    ck_assert_int_eq(a.delivered, 0);
    ck_assert_ptr_null(gw_hub_find(&a.member, "c", 1));
    ck_assert_int_eq(gw_frame_live_count(), 0);
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(live_notice_of_an_earlier_incarnation_is_ignored)
{
    struct fake a, b;
    fake_init(&a);
    fake_init(&b);
    SUB(&a, "c", 1, true);
    uint32_t first = last_gen;
    /* The last subscriber leaves and a new one comes before the bus's answer
     * to the first SUBSCRIBE arrives. */
    gw_hub_unsubscribe(&hub, &a.member, "c", 1);
    ck_assert_int_eq(a.nacks, 1); /* the unsubscribed request still got its reply */
    ck_assert_int_eq(SUB(&b, "c", 2, true), GW_HUB_SUB_ACK_LATER);
    ck_assert_uint_ne(last_gen, first);
    gw_hub_channel_live(&hub, "c", 1, first); /* stale: the bus may be removing it */
    ck_assert_int_eq(b.nacks, 0);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(b.nacks, 1);
    ck_assert_int_eq(b.acks[0], 2);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

START_TEST(link_down_makes_held_channels_refuse_until_live_again)
{
    struct fake a, b;
    fake_init(&a);
    fake_init(&b);
    SUB(&a, "c", 1, true);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(SUB(&b, "c", 2, false), GW_HUB_SUB_ACK_NOW);
    gw_hub_unsubscribe(&hub, &b.member, "c", 1);
    gw_hub_link_down(&hub);
    /* A channel another client holds answers like a fresh one: not now. */
    ck_assert_int_eq(SUB(&b, "c", 3, false), -EAGAIN);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(SUB(&b, "c", 4, false), GW_HUB_SUB_ACK_NOW);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

/* Cluster mode: one master down takes down its channels only. */
START_TEST(channel_down_affects_that_channel_only)
{
    struct fake a, b;
    fake_init(&a);
    fake_init(&b);
    SUB(&a, "c", 1, true);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    uint32_t gen_c = last_gen;
    SUB(&a, "d", 2, true);
    gw_hub_channel_live(&hub, "d", 1, last_gen);
    gw_hub_channel_down(&hub, "c", 1);
    gw_hub_channel_down(&hub, "nope", 4); /* a channel this worker does not hold: no-op */
    ck_assert_int_eq(SUB(&b, "c", 3, false), -EAGAIN);
    ck_assert_int_eq(SUB(&b, "d", 4, false), GW_HUB_SUB_ACK_NOW);
    gw_hub_channel_live(&hub, "c", 1, gen_c);
    ck_assert_int_eq(SUB(&b, "c", 5, false), GW_HUB_SUB_ACK_NOW);
    gw_hub_leave_all(&hub, &a.member);
    gw_hub_leave_all(&hub, &b.member);
}
END_TEST

START_TEST(repeats_of_a_pending_subscribe_are_bounded)
{
    struct fake a;
    fake_init(&a);
    SUB(&a, "c", 0, true);
    for (int i = 1; i < GW_HUB_MAX_PENDING_IDS; i++)
        ck_assert_int_eq(SUB(&a, "c", i, true), GW_HUB_SUB_ACK_LATER);
    ck_assert_int_eq(SUB(&a, "c", 999, true), -E2BIG);
    gw_hub_channel_live(&hub, "c", 1, last_gen);
    ck_assert_int_eq(a.nacks, GW_HUB_MAX_PENDING_IDS); /* every kept repeat got its reply */
    gw_hub_leave_all(&hub, &a.member);
}
END_TEST

START_TEST(busiest_channels_first)
{
    struct fake f[6];
    struct gw_hub_top top[2];
    const char *chans[6] = { "a", "b", "b", "b", "c", "c" };
    for (int i = 0; i < 6; i++) {
        fake_init(&f[i]);
        SUB(&f[i], chans[i], i, true);
    }
    ck_assert_int_eq(gw_hub_busiest(&hub, top, 2), 2);
    ck_assert_str_eq(top[0].name, "b");
    ck_assert_uint_eq(top[0].subscribers, 3);
    ck_assert_str_eq(top[1].name, "c");
    ck_assert_uint_eq(top[1].subscribers, 2);
    for (int i = 0; i < 6; i++)
        gw_hub_leave_all(&hub, &f[i].member);
}
END_TEST

static void take_one(void *arg, const char *name, size_t len, uint32_t n)
{
    rec_event("count", name, len);
    snprintf(rec.events[rec.nevents - 1] + strlen(rec.events[rec.nevents - 1]), 16, "=%u", n);
}

static int take_counts(void)
{
    rec.nevents = 0;
    return (int)gw_hub_take_counts(&hub, take_one, NULL);
}

/* The count feed: a change above one is listed once with its count now; the
 * first subscriber and the last one leaving are told by want/unwant only. */
START_TEST(counts_changed_are_taken_once)
{
    struct fake f[4];
    for (int i = 0; i < 4; i++)
        fake_init(&f[i]);
    SUB(&f[0], "a", 1, true);
    ck_assert_int_eq(take_counts(), 0); /* 0 -> 1: want:a says it */
    SUB(&f[1], "a", 2, true);
    SUB(&f[2], "a", 3, true);
    SUB(&f[0], "b", 4, true);
    ck_assert_int_eq(take_counts(), 1);
    ck_assert_str_eq(rec.events[0], "count:a=3");
    ck_assert_int_eq(take_counts(), 0); /* taken */
    gw_hub_unsubscribe(&hub, &f[2].member, "a", 1);
    gw_hub_leave_all(&hub, &f[1].member);
    SUB(&f[3], "b", 5, true);
    gw_hub_leave_all(&hub, &f[0].member); /* b back to 1, a to 0 */
    ck_assert_int_eq(take_counts(), 1);
    ck_assert_str_eq(rec.events[0], "count:b=1");
    gw_hub_leave_all(&hub, &f[3].member);
    gw_hub_leave_all(&hub, &f[2].member); /* subscribed to nothing left: frees its array */
    ck_assert_int_eq(take_counts(), 0); /* b gone: unwant:b said it */
    ck_assert_uint_eq(gw_hub_channel_count(&hub), 0);
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
    tcase_add_test(tc, live_is_told_once_per_subscription);
    tcase_add_test(tc, not_live_and_not_allowed_changes_nothing);
    tcase_add_test(tc, subscription_limit);
    tcase_add_test(tc, deliver_reaches_exactly_the_subscribers);
    tcase_add_test(tc, recovery_starts_when_live_and_holds_live_frames);
    tcase_add_test(tc, recovery_on_a_live_channel_starts_at_once);
    tcase_add_test(tc, held_frames_past_the_bound_overflow_once);
    tcase_add_test(tc, unsubscribe_during_recovery_answers_the_subscribe);
    tcase_add_test(tc, live_notice_of_an_earlier_incarnation_is_ignored);
    tcase_add_test(tc, link_down_makes_held_channels_refuse_until_live_again);
    tcase_add_test(tc, channel_down_affects_that_channel_only);
    tcase_add_test(tc, repeats_of_a_pending_subscribe_are_bounded);
    tcase_add_test(tc, busiest_channels_first);
    tcase_add_test(tc, counts_changed_are_taken_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(hub_suite());
}
