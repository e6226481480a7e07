/* The roster entry a node writes for the admin view (roster.c): the busiest
 * channels summed over the workers, most first, at most eight; the listen
 * host escaped. Parsed back with jansson. */
#include <jansson.h>

#include "roster.h"
#include "unit.h"

START_TEST(entry_merges_and_orders_the_workers_channels)
{
    /* Worker 0 and worker 1 both hold "b"; eleven channels in all. */
    struct gw_roster_channel top[] = {
        { "a", 5 }, { "b", 4 }, { "c", 1 }, { "d", 2 }, { "e", 1 }, { "f", 1 },
        { "b", 3 }, { "g", 6 }, { "h", 1 }, { "i", 1 }, { "j", 1 }, { "k", 1 },
    };
    struct gw_roster_self self = {
        .id = "n1", .host = "we\"ird", .port = 8080, .version = "1.2.3", .ready = true, .draining = false,
        .connections = 3, .subscriptions = 4, .channels = 5, .messages_in = 6, .messages_out = 7, .shed = 8,
        .top = top, .ntop = (int)(sizeof top / sizeof top[0]),
    };
    size_t len;
    char *text = gw_roster_entry(&self, &len);
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);

    ck_assert_msg(j != NULL, "not JSON: %s (%s)", err.text, text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "address")), "we\"ird:8080");
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "n1");
    ck_assert(json_is_true(json_object_get(j, "ready")));
    ck_assert(json_is_false(json_object_get(j, "draining")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "messages_out")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "shed")), 8);
    json_t *t = json_object_get(j, "top_channels");
    ck_assert_uint_eq(json_array_size(t), GW_ROSTER_TOP_CHANNELS);
    const char *want[] = { "b", "g", "a", "d" }; /* 7, 6, 5, 2 */
    const int subs[] = { 7, 6, 5, 2 };
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(t, (size_t)i), "channel")), want[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(t, (size_t)i), "subscribers")), subs[i]);
    }
    json_decref(j);
    free(text);
}
END_TEST

START_TEST(entry_without_channels)
{
    struct gw_roster_self self = { .id = "n", .host = "h", .port = 1, .version = "v" };
    size_t len;
    char *text = gw_roster_entry(&self, &len);
    ck_assert_ptr_nonnull(strstr(text, "\"top_channels\":[],\"redis\":{\"mode\":\"standalone\"}}"));
    ck_assert_uint_eq(strlen(text), len);
    free(text);
}
END_TEST

/* Cluster mode: the node's link to each master, the host escaped. */
START_TEST(entry_with_masters)
{
    struct gw_roster_master m[] = {
        { "10.0.0.1", 7001, 5461, "live", 250, 0 },
        { "odd\"host", 7002, 5462, "down", 0, 3 },
    };
    struct gw_roster_self self = { .id = "n", .host = "h", .port = 1, .version = "v", .redis_mode = "cluster",
                                   .masters = m, .nmasters = 2 };
    size_t len;
    char *text = gw_roster_entry(&self, &len);
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);

    ck_assert_msg(j != NULL, "not JSON: %s (%s)", err.text, text);
    json_t *r = json_object_get(j, "redis");
    ck_assert_str_eq(json_string_value(json_object_get(r, "mode")), "cluster");
    json_t *ms = json_object_get(r, "masters");
    ck_assert_uint_eq(json_array_size(ms), 2);
    json_t *m0 = json_array_get(ms, 0), *m1 = json_array_get(ms, 1);
    ck_assert_str_eq(json_string_value(json_object_get(m0, "address")), "10.0.0.1:7001");
    ck_assert_int_eq(json_integer_value(json_object_get(m0, "slots")), 5461);
    ck_assert_str_eq(json_string_value(json_object_get(m0, "link")), "live");
    ck_assert(json_real_value(json_object_get(m0, "rtt_ms")) == 0.25);
    ck_assert_str_eq(json_string_value(json_object_get(m1, "address")), "odd\"host:7002");
    ck_assert_str_eq(json_string_value(json_object_get(m1, "link")), "down");
    ck_assert_int_eq(json_integer_value(json_object_get(m1, "reconnects")), 3);
    json_decref(j);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("roster");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, entry_merges_and_orders_the_workers_channels);
    tcase_add_test(tc, entry_without_channels);
    tcase_add_test(tc, entry_with_masters);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
