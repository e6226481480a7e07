/* Per-client queue: limits by count and by bytes, FIFO order across ring
 * wrap-around, reference handling, and release on deinit. */
#include <errno.h>
#include <stdint.h>

#include "outq.h"
#include "unit.h"

static struct gw_frame *frame_of_len(size_t len, char fill)
{
    struct gw_frame *f = gw_frame_new(len);

    memset(gw_frame_payload(f), fill, len);
    f->len = len;
    return f;
}

static void teardown(void)
{
    ck_assert_int_eq(gw_frame_live_count(), 0);
}

START_TEST(empty)
{
    struct gw_outq q;

    gw_outq_init(&q, 4, 100);
    ck_assert(gw_outq_empty(&q));
    ck_assert_ptr_null(q.ring); /* lazily allocated */
    ck_assert_ptr_null(gw_outq_at(&q, 0));
    ck_assert_ptr_null(gw_outq_pop(&q));
    gw_outq_deinit(&q);
}
END_TEST

START_TEST(limit_by_count)
{
    struct gw_outq q;
    struct gw_frame *f = frame_of_len(1, 'a');

    gw_outq_init(&q, 3, 1000);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gw_outq_push(&q, f), 0);
    ck_assert_ptr_nonnull(q.ring);
    ck_assert_uint_eq(f->refs, 4);
    ck_assert_int_eq(gw_outq_push(&q, f), -ENOBUFS);
    ck_assert_uint_eq(f->refs, 4); /* a failed push takes no reference */
    ck_assert_uint_eq(q.count, 3);
    ck_assert_uint_eq(q.bytes, 3);
    gw_frame_unref(gw_outq_pop(&q));
    ck_assert_int_eq(gw_outq_push(&q, f), 0);
    gw_outq_deinit(&q);
    ck_assert_uint_eq(f->refs, 1);
    gw_frame_unref(f);
}
END_TEST

START_TEST(limit_by_bytes)
{
    struct gw_outq q;
    struct gw_frame *four = frame_of_len(4, 'a');
    struct gw_frame *two = frame_of_len(2, 'b');
    struct gw_frame *zero = frame_of_len(0, 'c');
    struct gw_frame *big = frame_of_len(11, 'd');

    gw_outq_init(&q, 100, 10);
    /* A frame larger than the whole limit never fits, even when empty. */
    ck_assert_int_eq(gw_outq_push(&q, big), -ENOBUFS);
    ck_assert(gw_outq_empty(&q));
    ck_assert_int_eq(gw_outq_push(&q, four), 0);
    ck_assert_int_eq(gw_outq_push(&q, four), 0);
    ck_assert_int_eq(gw_outq_push(&q, four), -ENOBUFS); /* 12 > 10 */
    ck_assert_int_eq(gw_outq_push(&q, two), 0);         /* exactly 10 */
    ck_assert_uint_eq(q.bytes, 10);
    ck_assert_int_eq(gw_outq_push(&q, two), -ENOBUFS);
    ck_assert_int_eq(gw_outq_push(&q, zero), 0);
    ck_assert_uint_eq(q.count, 4);
    gw_frame_unref(gw_outq_pop(&q));
    ck_assert_uint_eq(q.bytes, 6);
    ck_assert_int_eq(gw_outq_push(&q, four), 0);
    ck_assert_uint_eq(q.bytes, 10);
    gw_outq_deinit(&q);
    ck_assert_uint_eq(four->refs, 1);
    ck_assert_uint_eq(two->refs, 1);
    gw_frame_unref(four);
    gw_frame_unref(two);
    gw_frame_unref(zero);
    gw_frame_unref(big);
}
END_TEST

/* f->len near SIZE_MAX must not wrap bytes + len past the limit. */
START_TEST(no_overflow)
{
    struct gw_outq q;
    struct gw_frame *f = frame_of_len(1, 'a');
    struct gw_frame *huge = frame_of_len(1, 'b');

    gw_outq_init(&q, 10, 100);
    ck_assert_int_eq(gw_outq_push(&q, f), 0);
    huge->len = SIZE_MAX;
    ck_assert_int_eq(gw_outq_push(&q, huge), -ENOBUFS);
    huge->len = 1;
    gw_outq_deinit(&q);
    gw_frame_unref(f);
    gw_frame_unref(huge);
}
END_TEST

START_TEST(zero_capacity)
{
    struct gw_outq q;
    struct gw_frame *f = frame_of_len(1, 'a');

    gw_outq_init(&q, 0, 100);
    ck_assert_int_eq(gw_outq_push(&q, f), -ENOBUFS);
    gw_outq_deinit(&q);
    gw_frame_unref(f);
}
END_TEST

START_TEST(fifo_with_wraparound)
{
    struct gw_outq q;
    struct gw_frame *frames[7];
    size_t next_in = 0, next_out = 0;

    for (int i = 0; i < 7; i++)
        frames[i] = frame_of_len(1, (char)('a' + i));
    gw_outq_init(&q, 5, 1000);
    /* Push 3, pop 2, repeatedly: head walks around the 5-slot ring. */
    for (int round = 0; round < 50; round++) {
        for (int k = 0; k < 3 && q.count < 5; k++) {
            ck_assert_int_eq(gw_outq_push(&q, frames[next_in % 7]), 0);
            next_in++;
        }
        /* gw_outq_at sees the queue in FIFO order across the wrap. */
        for (size_t i = 0; i < q.count; i++)
            ck_assert_ptr_eq(gw_outq_at(&q, i), frames[(next_out + i) % 7]);
        ck_assert_ptr_null(gw_outq_at(&q, q.count));
        for (int k = 0; k < 2; k++) {
            struct gw_frame *peek = gw_outq_at(&q, 0);
            struct gw_frame *f = gw_outq_pop(&q);

            ck_assert_ptr_eq(peek, f);
            ck_assert_ptr_eq(f, frames[next_out % 7]);
            next_out++;
            gw_frame_unref(f);
        }
    }
    ck_assert_uint_eq(q.count, next_in - next_out);
    while (!gw_outq_empty(&q)) {
        struct gw_frame *f = gw_outq_pop(&q);

        ck_assert_ptr_eq(f, frames[next_out++ % 7]);
        gw_frame_unref(f);
    }
    ck_assert_uint_eq(q.bytes, 0);
    gw_outq_deinit(&q);
    for (int i = 0; i < 7; i++) {
        ck_assert_uint_eq(frames[i]->refs, 1);
        gw_frame_unref(frames[i]);
    }
}
END_TEST

/* The ring grows by doubling while wrapped (head != 0) without reordering,
 * stops at max_msgs, and a grown ring is released once the queue drains. */
START_TEST(ring_grows_and_is_released)
{
    struct gw_outq q;
    struct gw_frame *frames[300];
    size_t out = 0;

    for (int i = 0; i < 300; i++)
        frames[i] = frame_of_len(1, 'x');
    gw_outq_init(&q, 300, 100000);
    ck_assert_uint_eq(q.cap, 0); /* nothing allocated for an idle client */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gw_outq_push(&q, frames[i]), 0);
    ck_assert_uint_le(q.cap, 8);
    for (int i = 0; i < 2; i++)
        gw_frame_unref(gw_outq_pop(&q)), out++;
    for (int i = 3; i < 300; i++)
        ck_assert_int_eq(gw_outq_push(&q, frames[i]), 0);
    ck_assert_uint_eq(q.count, 298);
    ck_assert_int_eq(gw_outq_push(&q, frames[0]), 0);
    ck_assert_int_eq(gw_outq_push(&q, frames[0]), 0); /* 300: the limit */
    ck_assert_int_eq(gw_outq_push(&q, frames[0]), -ENOBUFS);
    ck_assert_uint_eq(q.cap, 300);
    for (size_t i = 0; i < 298; i++)
        ck_assert_ptr_eq(gw_outq_at(&q, i), frames[out + i]);
    while (!gw_outq_empty(&q))
        gw_frame_unref(gw_outq_pop(&q));
    ck_assert_ptr_null(q.ring);
    ck_assert_uint_eq(q.cap, 0);
    ck_assert_int_eq(gw_outq_push(&q, frames[1]), 0); /* usable again */
    gw_outq_deinit(&q);
    for (int i = 0; i < 300; i++) {
        ck_assert_uint_eq(frames[i]->refs, 1);
        gw_frame_unref(frames[i]);
    }
}
END_TEST

START_TEST(pop_gives_reference)
{
    struct gw_outq q;
    struct gw_frame *f = frame_of_len(3, 'x');
    struct gw_frame *out;

    gw_outq_init(&q, 2, 100);
    ck_assert_int_eq(gw_outq_push(&q, f), 0);
    gw_frame_unref(f); /* the queue now holds the only reference */
    ck_assert_int_eq(gw_frame_live_count(), 1);
    ck_assert_ptr_eq(gw_outq_at(&q, 0), f);
    ck_assert_uint_eq(f->refs, 1);
    out = gw_outq_pop(&q);
    ck_assert_ptr_eq(out, f);
    ck_assert_int_eq(gw_frame_live_count(), 1);
    gw_frame_unref(out);
    ck_assert_int_eq(gw_frame_live_count(), 0);
    gw_outq_deinit(&q);
}
END_TEST

START_TEST(deinit_releases)
{
    struct gw_outq q;

    gw_outq_init(&q, 64, 1 << 20);
    for (int i = 0; i < 50; i++) {
        struct gw_frame *f = frame_of_len((size_t)i, 'z');

        ck_assert_int_eq(gw_outq_push(&q, f), 0);
        gw_frame_unref(f);
    }
    ck_assert_int_eq(gw_frame_live_count(), 50);
    gw_outq_deinit(&q);
    ck_assert_int_eq(gw_frame_live_count(), 0);
    ck_assert_ptr_null(q.ring);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_uint_eq(q.bytes, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outq");
    TCase *tc = tcase_create("outq");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, empty);
    tcase_add_test(tc, limit_by_count);
    tcase_add_test(tc, limit_by_bytes);
    tcase_add_test(tc, no_overflow);
    tcase_add_test(tc, zero_capacity);
    tcase_add_test(tc, fifo_with_wraparound);
    tcase_add_test(tc, ring_grows_and_is_released);
    tcase_add_test(tc, pop_gives_reference);
    tcase_add_test(tc, deinit_releases);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
