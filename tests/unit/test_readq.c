/* Check suite for gateway/readq.[ch]: the bus's waiting client reads are
 * served one per client per turn (not first come, first served), and a client
 * that left has its reads taken out. Items are bare structs. */
#include "readq.h"
#include "unit.h"

struct item {
    struct gw_readq_item q; /* first */
    int tag;
};

static int pop_tag(struct gw_readq *q)
{
    struct gw_readq_item *it = gw_readq_pop(q);
    return it ? ((struct item *)it)->tag : -1;
}

/* 100 reads of client 1 queued before one read each of clients 2 and 3: the
 * late ones go second and third, not after 100 (issue 15, finding 2). */
START_TEST(one_turn_per_client)
{
    static struct item a[100], b, c;
    struct gw_readq q;

    gw_readq_init(&q);
    for (int i = 0; i < 100; i++) {
        a[i].tag = i;
        gw_readq_push(&q, &a[i].q, 1);
    }
    b.tag = 1000;
    gw_readq_push(&q, &b.q, 2);
    c.tag = 2000;
    gw_readq_push(&q, &c.q, 3);
    ck_assert_uint_eq(q.count, 102);
    ck_assert_uint_eq(gw_readq_client_count(&q, 1), 100);
    ck_assert_uint_eq(gw_readq_client_count(&q, 2), 1);
    ck_assert_uint_eq(gw_readq_client_count(&q, 9), 0);
    ck_assert_int_eq(pop_tag(&q), 0);
    ck_assert_int_eq(pop_tag(&q), 1000);
    ck_assert_int_eq(pop_tag(&q), 2000);
    ck_assert_uint_eq(gw_readq_client_count(&q, 1), 99);
    ck_assert_uint_eq(gw_readq_client_count(&q, 2), 0);
    /* Client 1's own reads stay in its order. */
    for (int i = 1; i < 100; i++)
        ck_assert_int_eq(pop_tag(&q), i);
    ck_assert_int_eq(pop_tag(&q), -1);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_uint_eq(q.clients.count, 0);
    gw_readq_deinit(&q);
}
END_TEST

/* Turns rotate: a client that comes back after its queue emptied starts a
 * fresh turn at the back. */
START_TEST(turns_rotate)
{
    static struct item it[6];
    struct gw_readq q;

    gw_readq_init(&q);
    for (int i = 0; i < 6; i++) {
        it[i].tag = i;
        gw_readq_push(&q, &it[i].q, (uint64_t)(i % 2)); /* 0,2,4 client 0; 1,3,5 client 1 */
    }
    for (int want = 0; want < 6; want++)
        ck_assert_int_eq(pop_tag(&q), want);
    gw_readq_push(&q, &it[0].q, 7);
    gw_readq_push(&q, &it[1].q, 8);
    gw_readq_push(&q, &it[2].q, 7);
    ck_assert_int_eq(pop_tag(&q), 0);
    ck_assert_int_eq(pop_tag(&q), 1);
    ck_assert_int_eq(pop_tag(&q), 2);
    gw_readq_deinit(&q);
}
END_TEST

/* A client that left: its reads come back in order, the others keep their turns. */
START_TEST(take_client_back)
{
    static struct item it[5];
    struct gw_readq q;
    struct gw_readq_item *gone;
    int n = 0;

    gw_readq_init(&q);
    for (int i = 0; i < 5; i++) {
        it[i].tag = i;
        gw_readq_push(&q, &it[i].q, i < 3 ? 42 : 43);
    }
    ck_assert_ptr_null(gw_readq_take_client(&q, 99));
    gone = gw_readq_take_client(&q, 42);
    for (struct gw_readq_item *g = gone; g; g = g->next)
        ck_assert_int_eq(((struct item *)g)->tag, n++);
    ck_assert_int_eq(n, 3);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_ptr_null(gw_readq_take_client(&q, 42));
    ck_assert_int_eq(pop_tag(&q), 3);
    ck_assert_int_eq(pop_tag(&q), 4);
    ck_assert_int_eq(pop_tag(&q), -1);
    /* Records left at deinit are freed (ASan would see a leak). */
    gw_readq_push(&q, &it[0].q, 5);
    gw_readq_deinit(&q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("readq");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, one_turn_per_client);
    tcase_add_test(tc, turns_rotate);
    tcase_add_test(tc, take_client_back);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
