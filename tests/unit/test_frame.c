/* Frames: refcounts, the live counter, headroom, and hand-off between threads. */
#include <pthread.h>

#include "frame.h"
#include "mailbox.h"
#include "unit.h"

static void teardown(void)
{
    ck_assert_int_eq(gw_frame_live_count(), 0);
}

START_TEST(new_and_unref)
{
    struct gw_frame *f = gw_frame_new(100);

    ck_assert_int_eq(gw_frame_live_count(), 1);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(f->len, 0);
    ck_assert_uint_eq(f->cap, 100);
    ck_assert_ptr_eq(gw_frame_payload(f), f->buf + GW_FRAME_HEADROOM);
    /* The whole headroom and capacity are writable (ASan checks). */
    memset(f->buf, 'h', GW_FRAME_HEADROOM);
    memset(gw_frame_payload(f), 'p', 100);
    gw_frame_unref(f);
    ck_assert_int_eq(gw_frame_live_count(), 0);
}
END_TEST

START_TEST(copy)
{
    struct gw_frame *f = gw_frame_new_copy("hello", 5);
    struct gw_frame *e = gw_frame_new_copy(NULL, 0);
    struct gw_frame *z = gw_frame_new(0);

    ck_assert_uint_eq(f->len, 5);
    ck_assert_uint_eq(f->cap, 5);
    ck_assert_mem_eq(gw_frame_payload(f), "hello", 5);
    ck_assert_uint_eq(e->len, 0);
    ck_assert_int_eq(gw_frame_live_count(), 3);
    gw_frame_unref(f);
    gw_frame_unref(e);
    gw_frame_unref(z);
}
END_TEST

START_TEST(refs)
{
    struct gw_frame *f = gw_frame_new_copy("x", 1);

    ck_assert_ptr_eq(gw_frame_ref(f), f);
    ck_assert_ptr_eq(gw_frame_ref(f), f);
    ck_assert_uint_eq(f->refs, 3);
    gw_frame_unref(f);
    gw_frame_unref(f);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_int_eq(gw_frame_live_count(), 1);
    ck_assert_mem_eq(gw_frame_payload(f), "x", 1);
    gw_frame_unref(f);
    ck_assert_int_eq(gw_frame_live_count(), 0);
    gw_frame_unref(NULL);
}
END_TEST

/* RFC 6455 5.2: 7-bit, 16-bit and 64-bit payload lengths, FIN + text, no mask. */
START_TEST(seal_ws_text_header)
{
    static const struct { size_t len; unsigned hdr_len; unsigned char hdr[10]; } cases[] = {
        { 0, 2, { 0x81, 0 } },
        { 125, 2, { 0x81, 125 } },
        { 126, 4, { 0x81, 126, 0, 126 } },
        { 65535, 4, { 0x81, 126, 0xff, 0xff } },
        { 65536, 10, { 0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0 } },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gw_frame *f = gw_frame_new(cases[i].len);
        memset(gw_frame_payload(f), 'x', cases[i].len);
        f->len = cases[i].len;
        ck_assert_uint_eq(f->hdr_len, 0);
        gw_frame_seal_ws_text(f);
        ck_assert_uint_eq(f->hdr_len, cases[i].hdr_len);
        ck_assert_uint_eq(gw_frame_wire_len(f), cases[i].hdr_len + cases[i].len);
        ck_assert_mem_eq(gw_frame_wire(f), cases[i].hdr, cases[i].hdr_len);
        ck_assert_ptr_eq(gw_frame_wire(f) + f->hdr_len, gw_frame_payload(f));

        struct gw_frame *c = gw_frame_copy(f);
        ck_assert_ptr_ne(c, f);
        ck_assert_uint_eq(gw_frame_wire_len(c), gw_frame_wire_len(f));
        ck_assert_mem_eq(gw_frame_wire(c), gw_frame_wire(f), gw_frame_wire_len(f));
        ck_assert_uint_eq(c->refs, 1);
        gw_frame_unref(c);
        gw_frame_unref(f);
    }
}
END_TEST

/* The real life of a frame: built on one thread, moved through a mailbox,
 * referenced and released on another. The mailbox's release/acquire pair
 * orders the hand-off, so the plain refcount is never touched by two threads
 * at once. */
#define HANDOFFS 20000

struct frame_mail {
    struct gw_mail link;
    struct gw_frame *frame;
};

static struct gw_mailbox handoff_box;

static void *produce(void *arg)
{
    for (int i = 0; i < HANDOFFS; i++) {
        struct frame_mail *m = malloc(sizeof(*m));
        m->frame = gw_frame_new_copy("shared", 6);
        gw_mailbox_post(&handoff_box, &m->link);
    }
    return NULL;
}

START_TEST(handoff_between_threads)
{
    pthread_t t;
    int taken = 0;

    gw_mailbox_init(&handoff_box);
    ck_assert_int_eq(pthread_create(&t, NULL, produce, NULL), 0);
    while (taken < HANDOFFS) {
        struct gw_mail *m = gw_mailbox_take_all(&handoff_box);
        while (m) {
            struct frame_mail *fm = (struct frame_mail *)m;
            m = m->next;
            struct gw_frame *f = fm->frame;
            ck_assert_uint_eq(f->refs, 1);
            gw_frame_ref(f); /* e.g. queued for two clients */
            gw_frame_unref(f);
            gw_frame_unref(f);
            free(fm);
            taken++;
        }
    }
    pthread_join(t, NULL);
    gw_mailbox_deinit(&handoff_box);
    ck_assert_int_eq(gw_frame_live_count(), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, new_and_unref);
    tcase_add_test(tc, copy);
    tcase_add_test(tc, refs);
    tcase_add_test(tc, seal_ws_text_header);
    tcase_add_test(tc, handoff_between_threads);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
