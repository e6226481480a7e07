/* Protocol v1 codec, frames: the exact bytes of every frame builder, presence
 * requests and events, and error frames made from parse failures. The request
 * parser is in test_codec.c. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "codec_check.h"
#include "json.h"

/* ---- presence ---- */

START_TEST(presence_requests)
{
    ck_assert_int_eq(parse("{\"type\":\"presence\",\"id\":3,\"channel\":\"room:1\"}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_PRESENCE);
    ck_assert_str_eq(req.channel, "room:1");
    ck_assert_str_eq(req.cursor, "0");
    ck_assert_int_eq(req.limit, GW_HISTORY_LIMIT_DEFAULT);
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"presence\",\"channel\":\"c\",\"cursor\":\"18446744073709551615\","
                           "\"limit\":1000}"), 0);
    ck_assert_str_eq(req.cursor, "18446744073709551615");
    ck_assert_int_eq(req.limit, 1000);
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"presence_stats\",\"id\":4,\"channel\":\"c\"}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_PRESENCE_STATS);
    gw_request_deinit(&req);
    expect_error("{\"type\":\"presence\",\"id\":5,\"channel\":\"c\",\"cursor\":7}", GW_ERR_BAD_REQUEST, true, 5);
    expect_error("{\"type\":\"presence\",\"channel\":\"c\",\"cursor\":\"\"}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"presence\",\"channel\":\"c\",\"cursor\":\"1*\"}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"presence\",\"channel\":\"c\",\"cursor\":\"123456789012345678901\"}",
                 GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"presence\",\"channel\":\"c\",\"limit\":0}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"presence_stats\",\"id\":6}", GW_ERR_BAD_REQUEST, true, 6);
    ck_assert_int_eq(parse("{\"type\":\"subscribe\",\"channel\":\"c\",\"presence\":true}"), 0);
    ck_assert(req.presence_events);
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"subscribe\",\"channel\":\"c\",\"presence\":false}"), 0);
    ck_assert(!req.presence_events);
    gw_request_deinit(&req);
    expect_error("{\"type\":\"subscribe\",\"channel\":\"c\",\"presence\":1}", GW_ERR_BAD_REQUEST, false, 0);
}
END_TEST

START_TEST(build_presence)
{
    struct gw_presence_member m[2] = {
        { "n/1/a", "alice", "{\"c\":1}", 5, 5, 7 },
        { "n/1/\"b", "", "not json", 6, 0, 8 },
    };
    struct gw_frame *f = gw_codec_presence(true, 9, "room", 4, 2, 1, "17", m, 2);
    ck_assert_frame_eq(f, "{\"type\":\"presence\",\"id\":9,\"channel\":\"room\",\"connections\":2,\"users\":1,"
                          "\"cursor\":\"17\",\"members\":[{\"client\":\"n/1/a\",\"user\":\"alice\",\"info\":{\"c\":1}},"
                          "{\"client\":\"n/1/\\\"b\",\"user\":null}]}");
    gw_frame_unref(f);
    f = gw_codec_presence_stats(false, 0, "room", 4, 3, 2);
    ck_assert_frame_eq(f, "{\"type\":\"presence_stats\",\"channel\":\"room\",\"connections\":3,\"users\":2}");
    gw_frame_unref(f);
}
END_TEST

START_TEST(presence_events_from_redis)
{
    static const char join[] = "\xfewsgate-presence1\n{\"type\":\"join\",\"user\":\"a\",\"info\":{\"x\":1}}";
    static const char lim[] = "\xfewsgate-presence1\n{\"type\":\"presence_limited\"}";
    struct gw_frame *f = gw_codec_presence_event("room:1", 6, join, sizeof join - 1);
    ck_assert_frame_eq(f, "{\"type\":\"join\",\"channel\":\"room:1\",\"user\":\"a\",\"info\":{\"x\":1}}");
    gw_frame_unref(f);
    f = gw_codec_presence_event("r", 1, lim, sizeof lim - 1);
    ck_assert_frame_eq(f, "{\"type\":\"presence_limited\",\"channel\":\"r\"}");
    gw_frame_unref(f);
    static const char *bad[] = {
        "{\"type\":\"join\"}",                                  /* no tag: a plain payload */
        "\xfewsgate-presence2\n{\"type\":\"join\"}",             /* another version */
        "\xfewsgate-presence1\n{\"type\":\"jo\\\"in\",\"x\":1}", /* an escape in the type */
        "\xfewsgate-presence1\n{\"type\":\"join\",}",            /* not JSON */
        "\xfewsgate-presence1\n{\"user\":\"a\",\"type\":\"join\"}", /* type not first */
        "\xfewsgate-presence1\n{\"type\":\"\"}",                 /* empty type */
        "\xfewsgate-presence1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_ptr_null(gw_codec_presence_event("r", 1, bad[i], strlen(bad[i])));
}
END_TEST

/* ---- builders ---- */

START_TEST(build_ack_pong)
{
    struct gw_frame *f;

    f = gw_codec_ack(5);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":5}");
    ck_assert_uint_eq(f->refs, 1);
    gw_frame_unref(f);
    f = gw_codec_ack(-9007199254740991);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":-9007199254740991}");
    gw_frame_unref(f);
    f = gw_codec_ack(0);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":0}");
    gw_frame_unref(f);
    f = gw_codec_pong(false, 99);
    ck_assert_frame_eq(f, "{\"type\":\"pong\"}");
    gw_frame_unref(f);
    f = gw_codec_pong(true, 5);
    ck_assert_frame_eq(f, "{\"type\":\"pong\",\"id\":5}");
    gw_frame_unref(f);
}
END_TEST

START_TEST(build_ack_auth)
{
    struct gw_frame *f;

    f = gw_codec_ack_auth(5, "user-1", 1700000000);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":5,\"sub\":\"user-1\",\"exp\":1700000000}");
    gw_frame_unref(f);
    f = gw_codec_ack_auth(-1, NULL, 0);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":-1,\"exp\":0}");
    gw_frame_unref(f);
    /* The subject is issuer text: escaped, invalid UTF-8 replaced. */
    f = gw_codec_ack_auth(9007199254740991, "a\"b\\\n\xff", 9007199254740992);
    ck_assert_frame_eq(f, "{\"type\":\"ack\",\"id\":9007199254740991,"
                          "\"sub\":\"a\\\"b\\\\\\n\\ufffd\",\"exp\":9007199254740992}");
    gw_frame_unref(f);
}
END_TEST

START_TEST(build_error)
{
    struct gw_frame *f;

    f = gw_codec_error(GW_ERR_BAD_JSON, false, 0, "oops");
    ck_assert_frame_eq(f, "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"oops\"}");
    gw_frame_unref(f);
    f = gw_codec_error(GW_ERR_BAD_CHANNEL, true, 3, "bad");
    ck_assert_frame_eq(f, "{\"type\":\"error\",\"id\":3,\"code\":\"bad_channel\",\"message\":\"bad\"}");
    gw_frame_unref(f);
    f = gw_codec_error(GW_ERR_BAD_REQUEST, true, -1, "say \"hi\"\\\n\x01");
    ck_assert_frame_eq(f, "{\"type\":\"error\",\"id\":-1,\"code\":\"bad_request\","
                          "\"message\":\"say \\\"hi\\\"\\\\\\n\\u0001\"}");
    gw_frame_unref(f);
    f = gw_codec_error(GW_ERR_UNAVAILABLE, false, 0, NULL);
    ck_assert_frame_eq(f, "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"\"}");
    gw_frame_unref(f);
    f = gw_codec_error(GW_ERR_UNKNOWN_TYPE, false, 0, "bad \xff byte");
    ck_assert_frame_eq(f, "{\"type\":\"error\",\"code\":\"unknown_type\","
                          "\"message\":\"bad \\ufffd byte\"}");
    gw_frame_unref(f);
}
END_TEST

START_TEST(slugs)
{
    static const char *const want[GW_ERR__COUNT] = {
        "none", "bad_json", "bad_request", "unknown_type", "bad_channel",
        "too_many_subscriptions", "message_too_large", "binary_not_supported",
        "unavailable", "rate_limited", "unauthorized", "forbidden", "store_limited",
    };

    for (int e = GW_ERR_BAD_JSON; e < GW_ERR__COUNT; e++) {
        char expect[256];
        struct gw_frame *f = gw_codec_error((enum gw_err)e, true, 42, "m");

        ck_assert_str_eq(gw_err_slug((enum gw_err)e), want[e]);
        snprintf(expect, sizeof expect,
                 "{\"type\":\"error\",\"id\":42,\"code\":\"%s\",\"message\":\"m\"}", want[e]);
        ck_assert_frame_eq(f, expect);
        gw_frame_unref(f);
    }
    ck_assert_str_eq(gw_err_slug(GW_ERR__COUNT), "unknown");
}
END_TEST

/* An error frame made from a parse failure is valid JSON even when the
 * errmsg echoes broken input. */
START_TEST(error_from_parse_is_json)
{
    static const char *const inputs[] = {
        "{\"type\":\"\xc3\"}", "{\"type\":\"x\\u0000\\ud83d\\ude00\xf0\x9f\x98\x80\"}", "[\x01]",
        "{\"type\":\"0123456789012345678901234567890\xe2\x82\xac\"}",
    };

    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct gw_frame *f;
        json_error_t jerr;
        json_t *j;

        ck_assert_int_eq(parse(inputs[i]), -EINVAL);
        f = gw_codec_error(req.err, req.has_id, req.id, req.errmsg);
        j = json_loadb((const char *)gw_frame_payload(f), f->len, 0, &jerr);
        ck_assert_msg(j != NULL, "%s: %s", inputs[i], jerr.text);
        json_decref(j);
        gw_frame_unref(f);
        gw_request_deinit(&req);
    }
}
END_TEST

/* The HTTP publish body: the same channel and data rules, no type or id. */
/* jansson_ok: false for valid JSON that jansson cannot load (huge numbers). */
static void expect_message_j(const char *payload, size_t len, const char *data, bool jansson_ok)
{
    char want[512];
    struct gw_frame *f = gw_codec_message("room:1", 6, payload, len);
    json_error_t jerr;
    json_t *j;

    snprintf(want, sizeof want, "{\"type\":\"message\",\"channel\":\"room:1\",\"data\":%s}", data);
    ck_assert_frame_eq(f, want);
    ck_assert(gw_json_valid((const char *)gw_frame_payload(f), f->len));
    j = json_loadb((const char *)gw_frame_payload(f), f->len, JSON_ALLOW_NUL, &jerr);
    ck_assert_msg((j != NULL) == jansson_ok, "jansson on frame: %s", j ? "ok" : jerr.text);
    json_decref(j);
    gw_frame_unref(f);
}

#define MSG(lit, data) expect_message_j(lit, sizeof(lit) - 1, data, true)

START_TEST(message_json_verbatim)
{
    MSG("{\"text\":\"hi\"}", "{\"text\":\"hi\"}");
    MSG("{ \"a\" : [1, 2] }", "{ \"a\" : [1, 2] }");
    MSG("[1,2,3]", "[1,2,3]");
    MSG("42", "42");
    MSG("-1.5e3", "-1.5e3");
    MSG("\"str\"", "\"str\"");
    MSG("true", "true");
    MSG("false", "false");
    MSG("null", "null");
    MSG(" \t{\"a\":1}\r\n", "{\"a\":1}");
    MSG("\"caf\xc3\xa9 \\u00e9\"", "\"caf\xc3\xa9 \\u00e9\"");
    /* Valid JSON that jansson itself would reject is still verbatim. */
    expect_message_j("123456789012345678901234567890", 30, "123456789012345678901234567890",
                     false);
}
END_TEST

START_TEST(message_text_as_string)
{
    MSG("plain text", "\"plain text\"");
    MSG("", "\"\"");
    MSG("   ", "\"   \"");
    MSG("{\"a\":1", "\"{\\\"a\\\":1\"");
    MSG("01", "\"01\"");
    MSG("a\tb\x01\x1f\x7f", "\"a\\tb\\u0001\\u001f\x7f\"");
    MSG("back\\slash /", "\"back\\\\slash /\"");
    MSG("nul\0byte", "\"nul\\u0000byte\"");
    MSG("\xe2\x82\xac \xf0\x9f\x98\x80", "\"\xe2\x82\xac \xf0\x9f\x98\x80\"");
}
END_TEST

START_TEST(message_invalid_utf8)
{
    MSG("ab\xff" "cd", "\"ab\\ufffdcd\"");
    /* A JSON string holding invalid UTF-8 is not valid JSON. */
    MSG("\"\xff\"", "\"\\\"\\ufffd\\\"\"");
    /* Overlong, surrogate, above U+10FFFF: one U+FFFD per maximal subpart. */
    MSG("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    MSG("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");
    MSG("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
    MSG("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    /* A truncated sequence is one subpart. */
    MSG("x\xe2\x82", "\"x\\ufffd\"");
    MSG("\xe2\x82y", "\"\\ufffdy\"");
    MSG("\xf0\x9f\x98", "\"\\ufffd\"");
    MSG("\x80\x80", "\"\\ufffd\\ufffd\"");
}
END_TEST

START_TEST(message_large)
{
    size_t n = 200000;
    char *p = malloc(n);
    struct gw_frame *f;

    memset(p, 'x', n);
    p[0] = '"';
    p[n - 1] = '"';
    f = gw_codec_message("c", 1, p, n);
    ck_assert_uint_eq(f->len, strlen("{\"type\":\"message\",\"channel\":\"c\",\"data\":}") + n);
    ck_assert_uint_eq(f->len, f->cap);
    gw_frame_unref(f);
    /* Worst case for the string form: six bytes per input byte. */
    memset(p, '\x01', n);
    f = gw_codec_message("c", 1, p, n);
    ck_assert_uint_eq(f->len, strlen("{\"type\":\"message\",\"channel\":\"c\",\"data\":\"\"}") + 6 * n);
    ck_assert_uint_eq(f->len, f->cap);
    gw_frame_unref(f);
    free(p);
}
END_TEST

static Suite *codec_out_suite(void)
{
    Suite *s = suite_create("codec_out");
    TCase *tc = tcase_create("build");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, build_ack_pong);
    tcase_add_test(tc, presence_requests);
    tcase_add_test(tc, build_presence);
    tcase_add_test(tc, presence_events_from_redis);
    tcase_add_test(tc, build_ack_auth);
    tcase_add_test(tc, build_error);
    tcase_add_test(tc, slugs);
    tcase_add_test(tc, error_from_parse_is_json);
    tcase_add_test(tc, message_json_verbatim);
    tcase_add_test(tc, message_text_as_string);
    tcase_add_test(tc, message_invalid_utf8);
    tcase_add_test(tc, message_large);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(codec_out_suite());
}
