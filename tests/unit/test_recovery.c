/* Recovery: one client's replay driven page by page with a recording fake
 * client (client.h), as the bus and the hub would drive it. */
#include <stdio.h>

#include "alloc.h"
#include "frame.h"
#include "recovery.h"
#include "unit.h"

#define MAXSENT 32

struct fake {
    char sent[MAXSENT][160]; /* payloads of the frames delivered, in order */
    int nsent;
    bool room;
    int overflows, acks;
    int64_t last_ack;
    int asks;
    bool ask_has_since;
    struct gw_position ask_since;
    uint64_t ask_target;
};

static void f_deliver(void *client, struct gw_frame *frame)
{
    struct fake *f = client;
    ck_assert_int_lt(f->nsent, MAXSENT);
    snprintf(f->sent[f->nsent++], sizeof f->sent[0], "%.*s", (int)frame->len, (const char *)gw_frame_payload(frame));
}

static void f_ack(void *client, int64_t id)
{
    struct fake *f = client;
    f->acks++;
    f->last_ack = id;
}

static bool f_want_room(void *client) { return ((struct fake *)client)->room; }

static void f_overflow(void *client) { ((struct fake *)client)->overflows++; }

static void f_ask(void *client, uint32_t seq, const char *name, size_t len, const struct gw_position *since,
                  uint64_t target)
{
    struct fake *f = client;
    ck_assert_uint_eq(seq, 42);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(name[0], 'c');
    f->asks++;
    f->ask_has_since = since != NULL;
    if (since)
        f->ask_since = *since;
    f->ask_target = target;
}

static const struct gw_client_ops ops = { f_deliver, f_ack, f_want_room, f_overflow, f_ask, NULL };

static struct fake fk;
static struct gw_recovery *r;

/* A recovery of channel "c" from offset `since` (epoch "e"), subscribe id 7. */
static void start(uint64_t since, size_t hold_max)
{
    struct gw_recovery_req req = { true, 7, true, { 0 } };

    memset(&fk, 0, sizeof fk);
    fk.room = true;
    gw_position_set(&req.since, since, "e", 1);
    r = gw_recovery_new(&ops, &fk, "c", 1, 42, &req, hold_max);
    ck_assert_int_eq(fk.asks, 0); /* nothing before the subscription is live */
    gw_recovery_start(r);
    gw_recovery_start(r); /* a second live notice asks nothing more */
    ck_assert_int_eq(fk.asks, 1);
    ck_assert(fk.ask_has_since);
    ck_assert_uint_eq(fk.ask_since.offset, since);
    ck_assert_uint_eq(fk.ask_target, 0);
}

/* A message frame "m<offset>" (offset 0: a message without history). */
static struct gw_frame *msg(uint64_t offset)
{
    char text[32];
    int n = snprintf(text, sizeof text, "m%llu", (unsigned long long)offset);
    struct gw_frame *f = gw_frame_new_copy(text, (size_t)n);
    f->offset = offset;
    return f;
}

static void hold(uint64_t offset)
{
    struct gw_frame *f = msg(offset);
    gw_recovery_hold(r, f);
    gw_frame_unref(f);
}

/* Applies a page with frames offs[0..n) and returns the step. */
static enum gw_recovery_step page(uint32_t seq, bool first, bool last, int recovered, uint64_t at, const uint64_t *offs,
                                  size_t n)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_RECOVERY, "c", 1);
    m->seq = seq;
    m->first = first;
    m->last = last;
    m->recovered = recovered;
    gw_position_set(&m->at, at, "e", 1);
    m->frames = gw_xcalloc(n ? n : 1, sizeof(*m->frames));
    for (size_t i = 0; i < n; i++)
        m->frames[m->nframes++] = msg(offs[i]);
    enum gw_recovery_step step = gw_recovery_page(r, m);
    gw_wmail_free(m);
    return step;
}

static void finish(void)
{
    gw_recovery_free(r);
    r = NULL;
    ck_assert_int_eq(gw_frame_live_count(), 0);
}

START_TEST(pages_out_of_order_and_a_gap)
{
    start(4, SIZE_MAX);
    /* A page of an older recovery of this subscription (another seq). */
    ck_assert_int_eq(page(41, true, true, 1, 10, (uint64_t[]){ 5 }, 1), GW_RECOVERY_IGNORED);
    ck_assert_int_eq(fk.nsent, 0);

    ck_assert_int_eq(page(42, true, false, 1, 10, (uint64_t[]){ 5, 6 }, 2), GW_RECOVERY_MORE);
    ck_assert_int_eq(fk.nsent, 3);
    ck_assert_str_eq(fk.sent[0], "{\"type\":\"ack\",\"id\":7,\"channel\":\"c\",\"offset\":10,\"epoch\":\"e\",\"recovered\":true}");
    ck_assert_str_eq(fk.sent[1], "m5");
    ck_assert_str_eq(fk.sent[2], "m6");
    ck_assert_int_eq(fk.asks, 2); /* the next page: after 6, up to the ack's 10 */
    ck_assert_uint_eq(fk.ask_since.offset, 6);
    ck_assert_str_eq(fk.ask_since.epoch, "e");
    ck_assert_uint_eq(fk.ask_target, 10);

    /* Out of order: 6 again and 7 after 8; neither is sent twice, nor late. */
    ck_assert_int_eq(page(42, false, false, 1, 10, (uint64_t[]){ 6, 8, 7 }, 3), GW_RECOVERY_MORE);
    ck_assert_int_eq(fk.nsent, 5);
    ck_assert_str_eq(fk.sent[3], "{\"type\":\"gap\",\"channel\":\"c\",\"epoch\":\"e\",\"from\":7,\"to\":7}");
    ck_assert_str_eq(fk.sent[4], "m8");
    ck_assert_uint_eq(fk.ask_since.offset, 8);

    /* The stream was trimmed: 9 is gone, and the replay stops short of 10. */
    ck_assert_int_eq(page(42, false, true, 1, 10, NULL, 0), GW_RECOVERY_DONE);
    ck_assert_int_eq(fk.nsent, 6);
    ck_assert_str_eq(fk.sent[5], "{\"type\":\"gap\",\"channel\":\"c\",\"epoch\":\"e\",\"from\":9,\"to\":10}");
    ck_assert_int_eq(fk.asks, 3);
    ck_assert_int_eq(fk.acks, 0); /* its reply was the ack frame, not a plain ack */
    finish();
}
END_TEST

START_TEST(a_page_while_the_queue_is_full_waits_for_room)
{
    start(0, SIZE_MAX);
    fk.room = false;
    ck_assert_int_eq(page(42, true, false, 1, 3, (uint64_t[]){ 1 }, 1), GW_RECOVERY_MORE);
    ck_assert_int_eq(fk.asks, 1); /* nothing asked while the queue is full */
    gw_recovery_room(r); /* still full: asks nothing */
    ck_assert_int_eq(fk.asks, 1);
    fk.room = true;
    gw_recovery_room(r);
    ck_assert_int_eq(fk.asks, 2);
    ck_assert_uint_eq(fk.ask_since.offset, 1);
    ck_assert_uint_eq(fk.ask_target, 3);
    gw_recovery_room(r); /* room without a page waiting asks nothing */
    ck_assert_int_eq(fk.asks, 2);
    ck_assert_int_eq(page(42, false, true, 1, 3, (uint64_t[]){ 2, 3 }, 2), GW_RECOVERY_DONE);
    ck_assert_int_eq(fk.nsent, 4);
    ck_assert_str_eq(fk.sent[3], "m3");
    finish();
}
END_TEST

START_TEST(live_frames_during_the_replay_resume_after_it)
{
    start(4, SIZE_MAX);
    hold(6); /* before the first page */
    hold(0); /* a message without history */
    ck_assert_int_eq(page(42, true, false, 1, 7, (uint64_t[]){ 5 }, 1), GW_RECOVERY_MORE);
    hold(7);
    hold(8);
    ck_assert_int_eq(fk.nsent, 2); /* ack, m5: nothing live yet */
    ck_assert_int_eq(page(42, false, true, 1, 7, (uint64_t[]){ 6, 7 }, 2), GW_RECOVERY_DONE);
    /* The replay sent 6 and 7: of the held frames only those after it go,
     * in the order they came. */
    ck_assert_int_eq(fk.nsent, 6);
    ck_assert_str_eq(fk.sent[2], "m6");
    ck_assert_str_eq(fk.sent[3], "m7");
    ck_assert_str_eq(fk.sent[4], "m0");
    ck_assert_str_eq(fk.sent[5], "m8");
    finish();
}
END_TEST

START_TEST(too_old_resumes_from_the_acks_position)
{
    start(2, SIZE_MAX);
    hold(9);
    hold(10);
    /* recovered 0: the stream no longer reaches back; no replay, no gap. */
    ck_assert_int_eq(page(42, true, true, 0, 9, NULL, 0), GW_RECOVERY_DONE);
    ck_assert_int_eq(fk.nsent, 2);
    ck_assert_str_eq(fk.sent[0], "{\"type\":\"ack\",\"id\":7,\"channel\":\"c\",\"offset\":9,\"epoch\":\"e\",\"recovered\":false}");
    ck_assert_str_eq(fk.sent[1], "m10");
    finish();
}
END_TEST

START_TEST(held_frames_past_the_bound_overflow_once)
{
    start(0, 5); /* "m1".."m9" are 2 bytes each: two fit */
    hold(1);
    hold(2);
    ck_assert_int_eq(fk.overflows, 0);
    hold(3);
    ck_assert_int_eq(fk.overflows, 1);
    hold(4);
    ck_assert_int_eq(fk.overflows, 1);
    ck_assert_int_eq(gw_frame_live_count(), 0); /* nothing held any more */
    ck_assert_int_eq(page(42, true, true, 1, 4, NULL, 0), GW_RECOVERY_IGNORED);
    ck_assert_int_eq(fk.nsent, 0);
    finish();
}
END_TEST

START_TEST(cancel_answers_an_unanswered_subscribe_once)
{
    start(0, SIZE_MAX);
    hold(1);
    gw_recovery_cancel(r);
    ck_assert_int_eq(fk.acks, 1);
    ck_assert_int_eq(fk.last_ack, 7);
    ck_assert_int_eq(gw_frame_live_count(), 0);

    start(0, SIZE_MAX);
    ck_assert_int_eq(page(42, true, false, 1, 5, NULL, 0), GW_RECOVERY_MORE);
    gw_recovery_cancel(r); /* the ack frame already answered it */
    ck_assert_int_eq(fk.acks, 0);
    ck_assert_int_eq(gw_frame_live_count(), 0);
}
END_TEST

static Suite *recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, pages_out_of_order_and_a_gap);
    tcase_add_test(tc, a_page_while_the_queue_is_full_waits_for_room);
    tcase_add_test(tc, live_frames_during_the_replay_resume_after_it);
    tcase_add_test(tc, too_old_resumes_from_the_acks_position);
    tcase_add_test(tc, held_frames_past_the_bound_overflow_once);
    tcase_add_test(tc, cancel_answers_an_unanswered_subscribe_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(recovery_suite());
}
