/* Hash table: SipHash reference vectors, add/find/delete, growth with 10000
 * keys, iteration, and pointer stability. */
#include <stdio.h>

#include "dict.h"
#include "unit.h"

static const uint64_t K0 = UINT64_C(0x0706050403020100);
static const uint64_t K1 = UINT64_C(0x0f0e0d0c0b0a0908);

/* Vectors from the SipHash reference implementation: key 00..0f, message
 * 00..n-1. */
START_TEST(siphash_vectors)
{
    unsigned char m[16];

    for (int i = 0; i < 16; i++)
        m[i] = (unsigned char)i;
    ck_assert_uint_eq(gw_siphash(m, 0, K0, K1), UINT64_C(0x726fdb47dd0e0e31));
    ck_assert_uint_eq(gw_siphash(m, 1, K0, K1), UINT64_C(0x74f839c593dc67fd));
    ck_assert_uint_eq(gw_siphash(m, 8, K0, K1), UINT64_C(0x93f5f5799a932462));
    ck_assert_uint_eq(gw_siphash(m, 15, K0, K1), UINT64_C(0xa129ca6149be45e5));
    ck_assert_uint_eq(gw_siphash(m, 16, K0, K1), UINT64_C(0x3f2acc7f57c29bdb));
}
END_TEST

START_TEST(add_find_delete)
{
    struct gw_dict d;
    struct gw_dict_entry *e, *e2;
    char key[8] = "room:1";
    int v1 = 1, v2 = 2, existed = -1;

    gw_dict_init(&d);
    ck_assert_uint_eq(d.nbuckets, 16);
    ck_assert_ptr_null(gw_dict_find(&d, "room:1", 6));
    e = gw_dict_add(&d, key, 6, &v1, &existed);
    ck_assert_int_eq(existed, 0);
    ck_assert_ptr_eq(e->value, &v1);
    ck_assert_uint_eq(e->klen, 6);
    ck_assert_str_eq(e->key, "room:1"); /* copied and NUL-terminated */
    memcpy(key, "XXXXXX", 6);            /* the table keeps its own copy */
    ck_assert_ptr_eq(gw_dict_find(&d, "room:1", 6), e);
    ck_assert_ptr_null(gw_dict_find(&d, "room:", 5));
    ck_assert_ptr_null(gw_dict_find(&d, "room:10", 7));
    e2 = gw_dict_add(&d, "room:1", 6, &v2, &existed);
    ck_assert_int_eq(existed, 1);
    ck_assert_ptr_eq(e2, e);
    ck_assert_ptr_eq(e->value, &v1); /* unchanged */
    ck_assert_uint_eq(d.count, 1);
    gw_dict_add(&d, "room:2", 6, &v2, NULL);
    ck_assert_uint_eq(d.count, 2);
    ck_assert_ptr_eq(gw_dict_delete(&d, "room:1", 6), &v1);
    ck_assert_ptr_null(gw_dict_find(&d, "room:1", 6));
    ck_assert_ptr_null(gw_dict_delete(&d, "room:1", 6));
    ck_assert_uint_eq(d.count, 1);
    ck_assert_ptr_eq(gw_dict_find(&d, "room:2", 6)->value, &v2);
    gw_dict_deinit(&d);
}
END_TEST

START_TEST(binary_and_empty_keys)
{
    struct gw_dict d;
    int a, b, c;

    gw_dict_init(&d);
    gw_dict_add(&d, "a\0b", 3, &a, NULL);
    gw_dict_add(&d, "a\0c", 3, &b, NULL);
    gw_dict_add(&d, "", 0, &c, NULL);
    ck_assert_ptr_eq(gw_dict_find(&d, "a\0b", 3)->value, &a);
    ck_assert_ptr_eq(gw_dict_find(&d, "a\0c", 3)->value, &b);
    ck_assert_ptr_eq(gw_dict_find(&d, "", 0)->value, &c);
    ck_assert_ptr_null(gw_dict_find(&d, "a", 1));
    ck_assert_ptr_eq(gw_dict_delete(&d, "", 0), &c);
    gw_dict_deinit(&d);
}
END_TEST

#define N 10000

static int values[N];

START_TEST(grow_iterate_delete)
{
    struct gw_dict d;
    struct gw_dict_entry *first, *it;
    static unsigned char seen[N];
    char key[32];
    size_t visited = 0;

    gw_dict_init(&d);
    first = gw_dict_add(&d, "key:0", 5, &values[0], NULL);
    for (int i = 1; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);

        gw_dict_add(&d, key, (size_t)n, &values[i], NULL);
    }
    ck_assert_uint_eq(d.count, N);
    /* Load factor stays at most 1 and the size a power of two. */
    ck_assert_uint_ge(d.nbuckets, N);
    ck_assert_uint_eq(d.nbuckets & (d.nbuckets - 1), 0);
    ck_assert_uint_eq(d.nbuckets, 16384);
    /* Growth moves entries but never reallocates them. */
    ck_assert_ptr_eq(gw_dict_find(&d, "key:0", 5), first);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        struct gw_dict_entry *e = gw_dict_find(&d, key, (size_t)n);

        ck_assert_msg(e && e->value == &values[i], "lost %s", key);
    }
    memset(seen, 0, sizeof seen);
    for (it = gw_dict_first(&d); it; it = gw_dict_next(&d, it)) {
        int i = (int)((int *)it->value - values);

        ck_assert_int_eq(seen[i], 0);
        seen[i] = 1;
        visited++;
    }
    ck_assert_uint_eq(visited, N);
    for (int i = 0; i < N; i += 2) {
        int n = snprintf(key, sizeof key, "key:%d", i);

        ck_assert_ptr_eq(gw_dict_delete(&d, key, (size_t)n), &values[i]);
    }
    ck_assert_uint_eq(d.count, N / 2);
    visited = 0;
    for (it = gw_dict_first(&d); it; it = gw_dict_next(&d, it)) {
        int i = (int)((int *)it->value - values);

        ck_assert_int_eq(i % 2, 1);
        visited++;
    }
    ck_assert_uint_eq(visited, N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);

        ck_assert((gw_dict_find(&d, key, (size_t)n) != NULL) == (i % 2 == 1));
    }
    gw_dict_deinit(&d);
}
END_TEST

START_TEST(empty_iteration_and_keys_differ)
{
    struct gw_dict a, b;

    gw_dict_init(&a);
    gw_dict_init(&b);
    ck_assert_ptr_null(gw_dict_first(&a));
    /* Each table draws its own SipHash key. */
    ck_assert(a.k0 != b.k0 || a.k1 != b.k1);
    gw_dict_deinit(&a);
    gw_dict_deinit(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dict");
    TCase *tc = tcase_create("dict");

    tcase_add_test(tc, siphash_vectors);
    tcase_add_test(tc, add_find_delete);
    tcase_add_test(tc, binary_and_empty_keys);
    tcase_add_test(tc, grow_iterate_delete);
    tcase_add_test(tc, empty_iteration_and_keys_differ);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
