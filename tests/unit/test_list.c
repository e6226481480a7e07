/* The intrusive list (common/list.h): linking, unlinking from anywhere,
 * popping, splicing, and the "in no list" state. */
#include "list.h"
#include "unit.h"

struct item {
    int v;
    struct gw_list node;
};

/* The values of head's list, in order, as a string of digits. */
static const char *values(const struct gw_list *head)
{
    static char buf[32];
    size_t n = 0;
    for (struct gw_list *l = gw_list_first(head); l; l = gw_list_next(head, l))
        buf[n++] = (char)('0' + gw_container_of(l, struct item, node)->v);
    buf[n] = '\0';
    return buf;
}

START_TEST(push_remove_pop)
{
    struct gw_list head;
    struct item it[5];
    gw_list_init(&head);
    ck_assert(gw_list_empty(&head));
    ck_assert_ptr_null(gw_list_first(&head));
    ck_assert_ptr_null(gw_list_pop(&head));
    for (int i = 0; i < 5; i++) {
        it[i].v = i;
        gw_list_init(&it[i].node);
        ck_assert(gw_list_empty(&it[i].node)); /* in no list */
        gw_list_push(&head, &it[i].node);
        ck_assert(!gw_list_empty(&it[i].node));
    }
    ck_assert_str_eq(values(&head), "43210");
    gw_list_remove(&it[2].node); /* middle */
    ck_assert(gw_list_empty(&it[2].node));
    gw_list_remove(&it[2].node); /* again: a no-op */
    gw_list_remove(&it[4].node); /* first */
    gw_list_remove(&it[0].node); /* last */
    ck_assert_str_eq(values(&head), "31");
    ck_assert_ptr_eq(gw_list_pop(&head), &it[3].node);
    ck_assert(gw_list_empty(&it[3].node));
    ck_assert_ptr_eq(gw_list_pop(&head), &it[1].node);
    ck_assert_ptr_null(gw_list_pop(&head));
    ck_assert(gw_list_empty(&head));
}
END_TEST

START_TEST(splice_moves_everything_in_order)
{
    struct gw_list a, b;
    struct item it[4];
    gw_list_init(&a);
    gw_list_init(&b);
    gw_list_splice(&a, &b); /* empty into empty */
    ck_assert(gw_list_empty(&a));
    for (int i = 0; i < 4; i++) {
        it[i].v = i;
        gw_list_init(&it[i].node);
        gw_list_push(i < 2 ? &a : &b, &it[i].node);
    }
    ck_assert_str_eq(values(&a), "10");
    ck_assert_str_eq(values(&b), "32");
    gw_list_splice(&a, &b);
    ck_assert_str_eq(values(&a), "3210");
    ck_assert(gw_list_empty(&b));
    /* Nodes moved by a splice unlink from their new list. */
    gw_list_remove(&it[3].node);
    gw_list_remove(&it[0].node);
    ck_assert_str_eq(values(&a), "21");
}
END_TEST

START_TEST(removing_while_iterating)
{
    struct gw_list head;
    struct item it[6];
    gw_list_init(&head);
    for (int i = 0; i < 6; i++) {
        it[i].v = i;
        gw_list_init(&it[i].node);
        gw_list_push(&head, &it[i].node);
    }
    for (struct gw_list *l = gw_list_first(&head), *next; l; l = next) {
        next = gw_list_next(&head, l);
        if (gw_container_of(l, struct item, node)->v % 2)
            gw_list_remove(l);
    }
    ck_assert_str_eq(values(&head), "420");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("list");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, push_remove_pop);
    tcase_add_test(tc, splice_moves_everything_in_order);
    tcase_add_test(tc, removing_while_iterating);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
