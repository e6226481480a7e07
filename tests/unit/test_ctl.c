/* Check suite for common/ctl.[ch]: the POST /api/disconnect body (every
 * member, defaults, limits, contradictions) and the control messages the
 * nodes exchange (round trip, refusal of anything else). */
#include <errno.h>
#include <stdio.h>

#include "ctl.h"
#include "unit.h"

static struct gw_ctl_disconnect d;
static enum gw_err err;
static char msg[256];

static int body(const char *text)
{
    return gw_ctl_parse_disconnect_body(text, strlen(text), &d, &err, msg, sizeof msg);
}

START_TEST(defaults_reconnect)
{
    ck_assert_int_eq(body("{\"user\":\"alice\"}"), 0);
    ck_assert_str_eq(d.user, "alice");
    ck_assert_uint_eq(d.user_len, 5);
    ck_assert_int_eq(d.code, GW_CLOSE_DISCONNECT);
    ck_assert_str_eq(d.reason, "disconnected");
    ck_assert(!gw_ctl_code_stops(d.code));
}
END_TEST

START_TEST(reconnect_false_stops)
{
    ck_assert_int_eq(body("{\"user\":\"bob\",\"reconnect\":false,\"reason\":\"banned\"}"), 0);
    ck_assert_int_eq(d.code, GW_CLOSE_DISCONNECT_STOP);
    ck_assert_str_eq(d.reason, "banned");
    ck_assert(gw_ctl_code_stops(d.code));
    ck_assert_int_eq(body("{\"user\":\"bob\",\"reconnect\":false}"), 0);
    ck_assert_str_eq(d.reason, "disconnected, do not reconnect");
}
END_TEST

START_TEST(application_codes)
{
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4100}"), 0);
    ck_assert_int_eq(d.code, 4100);
    ck_assert(!gw_ctl_code_stops(4299));
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4499,\"reconnect\":false}"), 0);
    ck_assert(gw_ctl_code_stops(d.code));
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4011}"), 0);
    ck_assert_str_eq(d.reason, "disconnected, do not reconnect");
    /* A code and reconnect that disagree. */
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4300,\"reconnect\":true}"), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_REQUEST);
    ck_assert(strstr(msg, "contradicts") != NULL);
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4010,\"reconnect\":false}"), -EINVAL);
    /* Codes outside the documented ranges. */
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4008}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4500}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":1000}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4294971396}"), -EINVAL); /* 2^32 + 4100 */
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":4100.0}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"u\",\"code\":\"4100\"}"), -EINVAL);
}
END_TEST

START_TEST(bad_bodies)
{
    ck_assert_int_eq(body(""), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_JSON);
    ck_assert_int_eq(body("{\"user\":\"a\""), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_JSON);
    ck_assert_int_eq(body("[\"alice\"]"), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_REQUEST);
    ck_assert_int_eq(body("{}"), -EINVAL);
    ck_assert(strstr(msg, "\"user\" is missing") != NULL);
    ck_assert_int_eq(body("{\"user\":\"\"}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":7}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"a\\u0000b\"}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"a\",\"user\":\"b\"}"), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_REQUEST);
    ck_assert_int_eq(body("{\"user\":\"a\",\"reconect\":false}"), -EINVAL);
    ck_assert(strstr(msg, "unknown member \"reconect\"") != NULL);
    ck_assert_int_eq(body("{\"user\":\"a\",\"reconnect\":0}"), -EINVAL);
    ck_assert_int_eq(body("{\"user\":\"a\",\"reason\":5}"), -EINVAL);
}
END_TEST

START_TEST(limits)
{
    char buf[1024], user[GW_CTL_USER_MAX + 2], reason[GW_CTL_REASON_MAX + 2];

    memset(user, 'u', sizeof user);
    user[GW_CTL_USER_MAX] = '\0';
    memset(reason, 'r', sizeof reason);
    reason[GW_CTL_REASON_MAX] = '\0';
    snprintf(buf, sizeof buf, "{\"user\":\"%s\",\"reason\":\"%s\"}", user, reason);
    ck_assert_int_eq(body(buf), 0);
    ck_assert_uint_eq(d.user_len, GW_CTL_USER_MAX);
    ck_assert_uint_eq(strlen(d.reason), GW_CTL_REASON_MAX);
    user[GW_CTL_USER_MAX] = 'u';
    user[GW_CTL_USER_MAX + 1] = '\0';
    snprintf(buf, sizeof buf, "{\"user\":\"%s\"}", user);
    ck_assert_int_eq(body(buf), -EINVAL);
    reason[GW_CTL_REASON_MAX] = 'r';
    reason[GW_CTL_REASON_MAX + 1] = '\0';
    snprintf(buf, sizeof buf, "{\"user\":\"u\",\"reason\":\"%s\"}", reason);
    ck_assert_int_eq(body(buf), -EINVAL);
}
END_TEST

START_TEST(messages_round_trip)
{
    struct gw_ctl_msg m = { .op = GW_CTL_DISCONNECT, .req = 42 }, back;
    size_t len;
    char *text;

    snprintf(m.from, sizeof m.from, "node-a");
    ck_assert_int_eq(body("{\"user\":\"al\\\"ice\",\"code\":4301,\"reason\":\"b\\u00e9\"}"), 0);
    m.dis = d;
    text = gw_ctl_format(&m, &len);
    ck_assert_int_eq(gw_ctl_parse(text, len, &back), 0);
    free(text);
    ck_assert_int_eq(back.op, GW_CTL_DISCONNECT);
    ck_assert_str_eq(back.from, "node-a");
    ck_assert_uint_eq(back.req, 42);
    ck_assert_str_eq(back.dis.user, "al\"ice");
    ck_assert_int_eq(back.dis.code, 4301);
    ck_assert_str_eq(back.dis.reason, "b\xc3\xa9");

    m = (struct gw_ctl_msg){ .op = GW_CTL_DONE, .req = 7, .closed = 3 };
    snprintf(m.from, sizeof m.from, "node-b");
    text = gw_ctl_format(&m, &len);
    ck_assert_int_eq(gw_ctl_parse(text, len, &back), 0);
    free(text);
    ck_assert_int_eq(back.op, GW_CTL_DONE);
    ck_assert_str_eq(back.from, "node-b");
    ck_assert_uint_eq(back.closed, 3);
}
END_TEST

START_TEST(messages_refused)
{
    static const char *const bad[] = {
        "", "null", "{}", "{\"op\":\"disconnect\",\"from\":\"a\",\"req\":1}",
        "{\"op\":\"disconnect\",\"from\":\"a\",\"req\":-1,\"user\":\"u\",\"code\":4010}",
        "{\"op\":\"disconnect\",\"from\":\"\",\"req\":1,\"user\":\"u\"}",
        "{\"op\":\"disconnect\",\"from\":\"a\",\"req\":1,\"user\":\"u\",\"code\":1000}",
        "{\"op\":\"done\",\"from\":\"a\",\"req\":1}",
        "{\"op\":\"done\",\"from\":\"a\",\"req\":1,\"closed\":-2}",
        "{\"op\":\"reboot\",\"from\":\"a\",\"req\":1}",
        "{\"op\":\"done\",\"op\":\"done\",\"from\":\"a\",\"req\":1,\"closed\":1}",
    };
    struct gw_ctl_msg m;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(gw_ctl_parse(bad[i], strlen(bad[i]), &m) == -EINVAL, "accepted %s", bad[i]);
        ck_assert_int_eq(m.op, GW_CTL_NONE);
    }
}
END_TEST

START_TEST(revoke_bodies)
{
    struct gw_ctl_revoke r;
    char buf[512], user[GW_CTL_USER_MAX + 2];

#define REV(text, lift) gw_ctl_parse_revoke_body((text), strlen(text), (lift), 600, 3600, &r, &err, msg, sizeof msg)
    ck_assert_int_eq(REV("{\"user\":\"alice\"}", false), 0);
    ck_assert_str_eq(r.user, "alice");
    ck_assert_int_eq(r.keep, 600);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":3600}", false), 0);
    ck_assert_int_eq(r.keep, 3600);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":3601}", false), -EINVAL);
    ck_assert(strstr(msg, "1..3600") != NULL);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":0}", false), -EINVAL);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":1.5}", false), -EINVAL);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":\"60\"}", false), -EINVAL);
    /* Lifting takes the user alone. */
    ck_assert_int_eq(REV("{\"user\":\"alice\"}", true), 0);
    ck_assert_int_eq(REV("{\"user\":\"alice\",\"keep\":60}", true), -EINVAL);
    ck_assert(strstr(msg, "unknown member \"keep\"") != NULL);
    ck_assert_int_eq(REV("{}", false), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_REQUEST);
    ck_assert_int_eq(REV("nope", false), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_JSON);
    memset(user, 'u', sizeof user);
    user[GW_CTL_USER_MAX + 1] = '\0';
    snprintf(buf, sizeof buf, "{\"user\":\"%s\"}", user);
    ck_assert_int_eq(REV(buf, false), -EINVAL);
#undef REV
}
END_TEST

START_TEST(revoke_messages)
{
    struct gw_ctl_msg m = { .op = GW_CTL_REVOKE, .req = 9, .at = 1700000000, .until = 1700000600 }, back;
    size_t len;
    char *text;

    snprintf(m.from, sizeof m.from, "n1");
    memcpy(m.dis.user, "bob", 4);
    m.dis.user_len = 3;
    text = gw_ctl_format(&m, &len);
    ck_assert_int_eq(gw_ctl_parse(text, len, &back), 0);
    free(text);
    ck_assert_int_eq(back.op, GW_CTL_REVOKE);
    ck_assert_str_eq(back.dis.user, "bob");
    ck_assert_int_eq(back.at, 1700000000);
    ck_assert_int_eq(back.until, 1700000600);
    m.op = GW_CTL_UNREVOKE;
    text = gw_ctl_format(&m, &len);
    ck_assert_int_eq(gw_ctl_parse(text, len, &back), 0);
    free(text);
    ck_assert_int_eq(back.op, GW_CTL_UNREVOKE);
    static const char *const bad[] = {
        "{\"op\":\"revoke\",\"from\":\"a\",\"req\":1,\"user\":\"u\",\"at\":5,\"until\":5}",
        "{\"op\":\"revoke\",\"from\":\"a\",\"req\":1,\"user\":\"u\",\"at\":-1,\"until\":5}",
        "{\"op\":\"revoke\",\"from\":\"a\",\"req\":1,\"at\":1,\"until\":5}",
        "{\"op\":\"unrevoke\",\"from\":\"a\",\"req\":1,\"user\":\"u\",\"at\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gw_ctl_parse(bad[i], strlen(bad[i]), &back) == -EINVAL, "accepted %s", bad[i]);
}
END_TEST

START_TEST(unsubscribe_bodies_and_messages)
{
    struct gw_ctl_unsubscribe u;
    struct gw_ctl_msg m = { .op = GW_CTL_UNSUBSCRIBE, .req = 5 }, back;
    size_t len;
    char *text;

#define UNS(text) gw_ctl_parse_unsubscribe_body((text), strlen(text), &u, &err, msg, sizeof msg)
    ck_assert_int_eq(UNS("{\"user\":\"al\",\"channel\":\"room:1\"}"), 0);
    ck_assert_str_eq(u.channel, "room:1");
    ck_assert_str_eq(u.reason, "unsubscribed by the server");
    ck_assert_int_eq(UNS("{\"user\":\"al\",\"channel\":\"room:1\",\"reason\":\"kicked\"}"), 0);
    ck_assert_str_eq(u.reason, "kicked");
    ck_assert_int_eq(UNS("{\"user\":\"al\",\"channel\":\"room 1\"}"), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_CHANNEL);
    ck_assert_int_eq(UNS("{\"user\":\"al\"}"), -EINVAL);
    ck_assert_int_eq(err, GW_ERR_BAD_REQUEST);
    ck_assert_int_eq(UNS("{\"channel\":\"room:1\"}"), -EINVAL);
    ck_assert_int_eq(UNS("{\"user\":\"al\",\"channel\":\"room:1\",\"x\":1}"), -EINVAL);
#undef UNS
    snprintf(m.from, sizeof m.from, "n1");
    m.unsub = u;
    ck_assert_int_eq(gw_ctl_parse_unsubscribe_body("{\"user\":\"al\",\"channel\":\"room:1\"}", 32, &m.unsub, &err,
                                                   msg, sizeof msg), 0);
    text = gw_ctl_format(&m, &len);
    ck_assert_int_eq(gw_ctl_parse(text, len, &back), 0);
    free(text);
    ck_assert_int_eq(back.op, GW_CTL_UNSUBSCRIBE);
    ck_assert_str_eq(back.unsub.user, "al");
    ck_assert_str_eq(back.unsub.channel, "room:1");
    ck_assert_str_eq(back.unsub.reason, "unsubscribed by the server");
}
END_TEST

START_TEST(history_queries)
{
    struct gw_ctl_history h;
#define HQ(text) gw_ctl_parse_history_query((text), strlen(text), &h, &err, msg, sizeof msg)
    ck_assert_int_eq(HQ("channel=room:1"), 0);
    ck_assert_str_eq(h.channel, "room:1");
    ck_assert_int_eq(h.limit, GW_HISTORY_LIMIT_DEFAULT);
    ck_assert(!h.has_since);
    ck_assert_int_eq(HQ("limit=3&since=18:hoo98jgqzme9tg&channel=a/b"), 0);
    ck_assert_int_eq(h.limit, 3);
    ck_assert(h.has_since);
    ck_assert_uint_eq(h.since.offset, 18);
    ck_assert_str_eq(h.since.epoch, "hoo98jgqzme9tg");
    ck_assert_int_eq(HQ("channel=c&since=0:"), 0);
    ck_assert_str_eq(h.since.epoch, "");
    ck_assert_int_eq(HQ("channel=c&limit=1000"), 0);
    static const char *const bad[] = { "", "limit=3", "channel=", "channel=a b", "channel=c&limit=0",
                                       "channel=c&limit=1001", "channel=c&limit=x", "channel=c&limit=1&limit=2",
                                       "channel=c&since=5", "channel=c&since=x:e", "channel=c&since=1:e!",
                                       "channel=c&channel=d", "channel=c&foo=1", "channel",
                                       "channel=c&since=1:e&since=2:e" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(HQ(bad[i]) == -EINVAL && err != GW_ERR_NONE && msg[0], "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(gw_ctl_parse_history_query(NULL, 0, &h, &err, msg, sizeof msg), -EINVAL);
#undef HQ
}
END_TEST

START_TEST(channels_queries)
{
    struct gw_ctl_channels q;
#define CQ(text) gw_ctl_parse_channels_query((text), strlen(text), &q, &err, msg, sizeof msg)
    ck_assert_int_eq(gw_ctl_parse_channels_query(NULL, 0, &q, &err, msg, sizeof msg), 0);
    ck_assert(q.wildcard);
    ck_assert_uint_eq(q.prefix_len, 0);
    ck_assert_uint_eq(q.cursor_len, 0);
    ck_assert_int_eq(q.limit, GW_CHANNELS_LIMIT_DEFAULT);
    ck_assert(gw_ctl_channels_match(&q, "any", 3));
    ck_assert_int_eq(CQ("pattern=room:*&limit=1000&cursor=room:17"), 0);
    ck_assert_str_eq(q.prefix, "room:");
    ck_assert(q.wildcard);
    ck_assert_str_eq(q.cursor, "room:17");
    ck_assert_int_eq(q.limit, 1000);
    ck_assert(gw_ctl_channels_match(&q, "room:", 5));
    ck_assert(gw_ctl_channels_match(&q, "room:9", 6));
    ck_assert(!gw_ctl_channels_match(&q, "roo", 3));
    ck_assert(!gw_ctl_channels_match(&q, "lobby", 5));
    ck_assert_int_eq(CQ("pattern=a/b"), 0); /* no '*': one channel exactly */
    ck_assert(!q.wildcard);
    ck_assert(gw_ctl_channels_match(&q, "a/b", 3));
    ck_assert(!gw_ctl_channels_match(&q, "a/bc", 4));
    ck_assert_int_eq(CQ("pattern=*&cursor=&limit=1"), 0);
    ck_assert(q.wildcard && q.prefix_len == 0 && q.cursor_len == 0 && q.limit == 1);
    static const char *const bad[] = { "limit=0", "limit=1001", "limit=x", "limit=", "limit=1&limit=2",
                                       "pattern=", "pattern=a b*", "pattern=**", "pattern=a*b",
                                       "pattern={sub}*", "pattern=a*&pattern=b*", "cursor=a b",
                                       "cursor=a&cursor=b", "cursor=x*", "foo=1", "pattern", "&" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(CQ(bad[i]) == -EINVAL && err != GW_ERR_NONE && msg[0], "accepted \"%s\"", bad[i]);
    char long_q[300];
    snprintf(long_q, sizeof long_q, "cursor=%0129d", 0); /* 129 bytes: over GW_CHANNEL_MAX */
    ck_assert_int_eq(CQ(long_q), -EINVAL);
    snprintf(long_q, sizeof long_q, "pattern=%0128d*", 0); /* a whole name then '*' is fine */
    ck_assert_int_eq(CQ(long_q), 0);
    ck_assert_uint_eq(q.prefix_len, 128);
#undef CQ
}
END_TEST

START_TEST(idempotency_keys)
{
    char key[GW_CTL_IDEM_MAX + 1], buf[512];
    size_t klen;
#define IK(text) gw_ctl_idempotency_key((text), strlen(text), key, &klen, &err, msg, sizeof msg)
    ck_assert_int_eq(IK("{\"channel\":\"c\",\"data\":1}"), 0);
    ck_assert_uint_eq(klen, 0);
    ck_assert_int_eq(IK("{\"channel\":\"c\",\"data\":1,\"idempotency_key\":\"order-17/a\"}"), 0);
    ck_assert_str_eq(key, "order-17/a");
    ck_assert_int_eq(IK("{\"idempotency_key\":\"\\u0041b\"}"), 0); /* escapes are read */
    ck_assert_str_eq(key, "Ab");
    static const char *const bad[] = { "{\"idempotency_key\":\"\"}", "{\"idempotency_key\":5}",
                                       "{\"idempotency_key\":\"a b\"}", "{\"idempotency_key\":\"\\u00e9\"}",
                                       "{\"idempotency_key\":null}", "{\"idempotency_key\":\"a\\u0000\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(IK(bad[i]) == -EINVAL && err == GW_ERR_BAD_REQUEST, "accepted %s", bad[i]);
    memset(key, 'k', sizeof key);
    snprintf(buf, sizeof buf, "{\"idempotency_key\":\"%.*s\"}", GW_CTL_IDEM_MAX, key);
    ck_assert_int_eq(IK(buf), 0);
    ck_assert_uint_eq(klen, GW_CTL_IDEM_MAX);
    snprintf(buf, sizeof buf, "{\"idempotency_key\":\"%.*sk\"}", GW_CTL_IDEM_MAX, key);
    ck_assert_int_eq(IK(buf), -EINVAL);
#undef IK
}
END_TEST

START_TEST(batches)
{
    struct gw_ctl_batch b;
    char big[8192];
    size_t n = 0;
#define BA(text) gw_ctl_parse_batch((text), strlen(text), &b, &err, msg, sizeof msg)
    const char *ok = "{\"messages\":[{\"channel\":\"a\",\"data\":{\"x\": 1}},7,{\"channel\":\"b c\",\"data\":1}]}";
    ck_assert(gw_ctl_is_batch(ok, strlen(ok)));
    ck_assert(!gw_ctl_is_batch("{\"channel\":\"a\",\"data\":1}", 26));
    ck_assert(!gw_ctl_is_batch("{\"messages\":", 12));
    ck_assert_int_eq(BA(ok), 0);
    ck_assert_uint_eq(b.n, 3);
    ck_assert_str_eq(b.items[0], "{\"channel\":\"a\",\"data\":{\"x\":1}}");
    ck_assert_str_eq(b.items[1], "7");
    ck_assert_uint_eq(b.lens[1], 1);
    gw_ctl_batch_deinit(&b);
    ck_assert_int_eq(BA("{\"messages\":[]}"), -EINVAL);
    ck_assert_int_eq(BA("{\"messages\":{}}"), -EINVAL);
    ck_assert_int_eq(BA("{\"messages\":[1],\"channel\":\"a\"}"), -EINVAL);
    ck_assert_int_eq(BA("[1]"), -EINVAL);
    n += (size_t)snprintf(big + n, sizeof big - n, "{\"messages\":[");
    for (int i = 0; i < GW_CTL_BATCH_MAX; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s1", i ? "," : "");
    snprintf(big + n, sizeof big - n, "]}");
    ck_assert_int_eq(BA(big), 0);
    ck_assert_uint_eq(b.n, GW_CTL_BATCH_MAX);
    gw_ctl_batch_deinit(&b);
    snprintf(big + n, sizeof big - n, ",1]}");
    ck_assert_int_eq(BA(big), -EINVAL);
    ck_assert(strstr(msg, "1..100") != NULL);
#undef BA
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_reconnect);
    tcase_add_test(tc, reconnect_false_stops);
    tcase_add_test(tc, application_codes);
    tcase_add_test(tc, bad_bodies);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, messages_round_trip);
    tcase_add_test(tc, messages_refused);
    tcase_add_test(tc, revoke_bodies);
    tcase_add_test(tc, revoke_messages);
    tcase_add_test(tc, unsubscribe_bodies_and_messages);
    tcase_add_test(tc, history_queries);
    tcase_add_test(tc, channels_queries);
    tcase_add_test(tc, idempotency_keys);
    tcase_add_test(tc, batches);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
