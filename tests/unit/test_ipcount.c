/* Per-address connection counts (common/ipcount.[ch]): keys from IPv4 and
 * IPv6 peers, the limit, removal at zero, and many threads racing for the
 * last slots of one address. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "ipcount.h"
#include "unit.h"

static struct gw_ipcount_key key4(const char *text)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1234) };
    struct gw_ipcount_key k;

    ck_assert_int_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
    ck_assert_int_eq(gw_ipcount_key_from_sockaddr(&k, (struct sockaddr *)&sin, sizeof sin), 0);
    return k;
}

static struct gw_ipcount_key key6(const char *text)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(1234) };
    struct gw_ipcount_key k;

    ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
    ck_assert_int_eq(gw_ipcount_key_from_sockaddr(&k, (struct sockaddr *)&sin6, sizeof sin6), 0);
    return k;
}

START_TEST(keys)
{
    struct gw_ipcount_key a = key4("127.0.0.2"), b = key6("::ffff:127.0.0.2"), c = key6("2001:db8::1");
    struct sockaddr_in short_sin = { .sin_family = AF_INET };
    struct sockaddr unix_sa = { .sa_family = AF_UNIX };
    struct gw_ipcount_key k;
    char text[64];

    /* The same client over IPv4 and through a dual-stack socket. */
    ck_assert_mem_eq(a.b, b.b, 16);
    ck_assert(memcmp(a.b, c.b, 16) != 0);
    gw_ipcount_key_format(&a, text, sizeof text);
    ck_assert_str_eq(text, "127.0.0.2");
    gw_ipcount_key_format(&c, text, sizeof text);
    ck_assert_str_eq(text, "2001:db8::1");
    ck_assert_int_eq(gw_ipcount_key_from_sockaddr(&k, (struct sockaddr *)&short_sin, 4), -EAFNOSUPPORT);
    ck_assert_int_eq(gw_ipcount_key_from_sockaddr(&k, &unix_sa, sizeof unix_sa), -EAFNOSUPPORT);
}
END_TEST

START_TEST(limit_and_removal)
{
    struct gw_ipcount t;
    struct gw_ipcount_key a = key4("127.0.0.2"), b = key4("127.0.0.3"), c = key6("2001:db8::1");

    gw_ipcount_init(&t);
    for (int i = 0; i < 3; i++)
        ck_assert(gw_ipcount_take(&t, &a, 3));
    ck_assert(!gw_ipcount_take(&t, &a, 3));
    ck_assert_int_eq(gw_ipcount_get(&t, &a), 3);
    /* Other addresses have their own slots. */
    ck_assert(gw_ipcount_take(&t, &b, 3));
    ck_assert(gw_ipcount_take(&t, &c, 1));
    ck_assert(!gw_ipcount_take(&t, &c, 1));
    ck_assert_uint_eq(gw_ipcount_entries(&t), 3);
    /* Closing one frees one. */
    gw_ipcount_give(&t, &a);
    ck_assert_int_eq(gw_ipcount_get(&t, &a), 2);
    ck_assert(gw_ipcount_take(&t, &a, 3));
    ck_assert(!gw_ipcount_take(&t, &a, 3));
    /* Entries go away at zero, so the table follows the open connections. */
    for (int i = 0; i < 3; i++)
        gw_ipcount_give(&t, &a);
    gw_ipcount_give(&t, &b);
    gw_ipcount_give(&t, &c);
    ck_assert_uint_eq(gw_ipcount_entries(&t), 0);
    ck_assert_int_eq(gw_ipcount_get(&t, &a), 0);
    /* A give without a take is ignored, and a limit of 0 admits nobody. */
    gw_ipcount_give(&t, &a);
    ck_assert_uint_eq(gw_ipcount_entries(&t), 0);
    ck_assert(!gw_ipcount_take(&t, &a, 0));
    ck_assert_uint_eq(gw_ipcount_entries(&t), 0);
    gw_ipcount_deinit(&t);
}
END_TEST

START_TEST(many_addresses)
{
    struct gw_ipcount t;
    struct gw_ipcount_key k = key6("2001:db8::");

    gw_ipcount_init(&t);
    for (int i = 0; i < 5000; i++) {
        k.b[14] = (unsigned char)(i >> 8);
        k.b[15] = (unsigned char)i;
        ck_assert(gw_ipcount_take(&t, &k, 1));
    }
    ck_assert_uint_eq(gw_ipcount_entries(&t), 5000);
    for (int i = 0; i < 5000; i++) {
        k.b[14] = (unsigned char)(i >> 8);
        k.b[15] = (unsigned char)i;
        ck_assert(!gw_ipcount_take(&t, &k, 1));
        gw_ipcount_give(&t, &k);
    }
    ck_assert_uint_eq(gw_ipcount_entries(&t), 0);
    gw_ipcount_deinit(&t);
}
END_TEST

#define RACERS 8
#define ROUNDS 20000
#define LIMIT 5

static struct gw_ipcount race_table;
static atomic_int holders, most_holders, takes;

static void *racer(void *arg)
{
    struct gw_ipcount_key k = *(const struct gw_ipcount_key *)arg;

    for (int i = 0; i < ROUNDS; i++) {
        if (!gw_ipcount_take(&race_table, &k, LIMIT))
            continue;
        int now = atomic_fetch_add(&holders, 1) + 1;
        int seen = atomic_load(&most_holders);
        while (now > seen && !atomic_compare_exchange_weak(&most_holders, &seen, now))
            ;
        /* The table's own count too: it must never pass the limit either. */
        now = gw_ipcount_get(&race_table, &k);
        seen = atomic_load(&most_holders);
        while (now > seen && !atomic_compare_exchange_weak(&most_holders, &seen, now))
            ;
        sched_yield(); /* hold the slot a little, so takes overlap */
        atomic_fetch_add(&takes, 1);
        atomic_fetch_sub(&holders, 1);
        gw_ipcount_give(&race_table, &k);
    }
    return NULL;
}

/* The check and the increment are one step: however the threads interleave,
 * no more than LIMIT ever hold a slot of one address at once. */
START_TEST(concurrent_take_never_overshoots)
{
    struct gw_ipcount_key k = key4("127.0.0.2");
    pthread_t th[RACERS];

    gw_ipcount_init(&race_table);
    atomic_store(&holders, 0);
    atomic_store(&most_holders, 0);
    atomic_store(&takes, 0);
    for (int i = 0; i < RACERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer, &k), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    int most = atomic_load(&most_holders), taken = atomic_load(&takes);

    ck_assert_msg(most <= LIMIT, "%d slots of one address held at once, limit %d", most, LIMIT);
    ck_assert_int_gt(taken, 0);
    ck_assert_uint_eq(gw_ipcount_entries(&race_table), 0);
    gw_ipcount_deinit(&race_table);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ipcount");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, keys);
    tcase_add_test(tc, limit_and_removal);
    tcase_add_test(tc, many_addresses);
    tcase_add_test(tc, concurrent_take_never_overshoots);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
