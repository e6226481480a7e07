/* Protocol v1 codec, requests: parsing of every type and every error path, with
 * and without a usable id (the HTTP publish body too). The frame builders and
 * presence are in test_codec_out.c. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "codec_check.h"
#include "json.h"

/* ---- requests ---- */

START_TEST(subscribe_with_id)
{
    ck_assert_int_eq(parse("{\"type\":\"subscribe\",\"channel\":\"room:1\",\"id\":1}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_SUBSCRIBE);
    ck_assert(req.has_id);
    ck_assert_int_eq(req.id, 1);
    ck_assert_str_eq(req.channel, "room:1");
    ck_assert_uint_eq(req.channel_len, 6);
    ck_assert_ptr_null(req.data_json);
    ck_assert_int_eq(req.err, GW_ERR_NONE);
}
END_TEST

START_TEST(subscribe_without_id)
{
    ck_assert_int_eq(parse("{\"channel\":\"a\",\"type\":\"subscribe\"}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_SUBSCRIBE);
    ck_assert(!req.has_id);
    ck_assert_str_eq(req.channel, "a");
}
END_TEST

START_TEST(unsubscribe)
{
    ck_assert_int_eq(parse("{\"type\":\"unsubscribe\",\"channel\":\"room:1\",\"id\":2}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_UNSUBSCRIBE);
    ck_assert_int_eq(req.id, 2);
    ck_assert_str_eq(req.channel, "room:1");
}
END_TEST

START_TEST(publish_object)
{
    ck_assert_int_eq(
        parse("{\"type\":\"publish\",\"channel\":\"room:1\",\"data\": { \"text\" : \"hi\" },\"id\":3}"),
        0);
    ck_assert_int_eq(req.type, GW_REQ_PUBLISH);
    ck_assert_int_eq(req.id, 3);
    ck_assert_str_eq(req.channel, "room:1");
    ck_assert_str_eq(req.data_json, "{\"text\":\"hi\"}");
    ck_assert_uint_eq(req.data_len, strlen("{\"text\":\"hi\"}"));
}
END_TEST

START_TEST(publish_any_value)
{
    static const char *const cases[][2] = {
        { "null", "null" },       { "true", "true" },   { "false", "false" },
        { "42", "42" },           { "-7", "-7" },       { "\"s\"", "\"s\"" },
        { "[1, [2], {}]", "[1,[2],{}]" }, { "\"caf\\u00e9\"", "\"caf\xc3\xa9\"" },
        { "\"\\u0000\"", "\"\\u0000\"" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];

        snprintf(buf, sizeof buf, "{\"type\":\"publish\",\"channel\":\"c\",\"data\":%s}",
                 cases[i][0]);
        ck_assert_msg(parse(buf) == 0, "%s: %s", buf, req.errmsg);
        ck_assert_str_eq(req.data_json, cases[i][1]);
        ck_assert_uint_eq(req.data_len, strlen(cases[i][1]));
        ck_assert(!req.has_id);
        gw_request_deinit(&req);
        ck_assert_ptr_null(req.data_json);
    }
}
END_TEST

START_TEST(ping)
{
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"id\":4}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_PING);
    ck_assert(req.has_id);
    ck_assert_int_eq(req.id, 4);
    gw_request_deinit(&req);
    /* A ping needs no channel and ignores a broken one. */
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"channel\":\"a b\"}"), 0);
    ck_assert(!req.has_id);
}
END_TEST

START_TEST(auth)
{
    ck_assert_int_eq(parse("{\"type\":\"auth\",\"token\":\"a.b.c\",\"id\":7}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_AUTH);
    ck_assert(req.has_id);
    ck_assert_int_eq(req.id, 7);
    ck_assert_str_eq(req.token, "a.b.c");
    ck_assert_uint_eq(req.token_len, 5);
    gw_request_deinit(&req);
    ck_assert_ptr_null(req.token);
    /* The codec does not judge the token: the verifier does. An auth needs
     * no channel and ignores a broken one. */
    ck_assert_int_eq(parse("{\"type\":\"auth\",\"token\":\"\",\"channel\":\"a b\"}"), 0);
    ck_assert_str_eq(req.token, "");
    ck_assert(!req.has_id);
    gw_request_deinit(&req);
    /* An embedded NUL keeps the full length, so the verifier sees it. */
    ck_assert_int_eq(parse("{\"type\":\"auth\",\"token\":\"a\\u0000b\"}"), 0);
    ck_assert_uint_eq(req.token_len, 3);
    ck_assert(memcmp(req.token, "a\0b", 4) == 0);
}
END_TEST

START_TEST(err_auth_token)
{
    ck_assert_int_eq(parse("{\"type\":\"auth\",\"id\":3}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert(req.has_id);
    ck_assert_int_eq(req.id, 3);
    ck_assert_str_eq(req.errmsg, "\"token\" is missing");
    ck_assert_ptr_null(req.token);
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"auth\",\"token\":5,\"id\":4}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert_str_eq(req.errmsg, "\"token\" must be a string");
    ck_assert_ptr_null(req.token);
}
END_TEST

START_TEST(unknown_fields_ignored)
{
    ck_assert_int_eq(
        parse("{\"v\":1,\"type\":\"subscribe\",\"x\":{\"y\":[null]},\"channel\":\"c\",\"z\":\"\"}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_SUBSCRIBE);
}
END_TEST

START_TEST(id_limits)
{
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"id\":9007199254740991}"), 0);
    ck_assert_int_eq(req.id, INT64_C(9007199254740991));
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"id\":-9007199254740991}"), 0);
    ck_assert_int_eq(req.id, -INT64_C(9007199254740991));
    gw_request_deinit(&req);
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"id\":0}"), 0);
    ck_assert(req.has_id);
    ck_assert_int_eq(req.id, 0);
}
END_TEST

START_TEST(duplicate_keys_refused)
{
    expect_error("{\"type\":\"ping\",\"type\":\"subscribe\",\"channel\":\"c\"}",
                 GW_ERR_BAD_REQUEST, false, 0);
    /* the id is still answered when it is not the repeated key */
    expect_error("{\"id\":7,\"type\":\"publish\",\"channel\":\"__wsgate:hb:x\",\"channel\":\"demo\",\"data\":1}",
                 GW_ERR_BAD_REQUEST, true, 7);
    expect_error("{\"id\":8,\"type\":\"publish\",\"channel\":\"demo\",\"data\":{\"a\":1,\"a\":2}}",
                 GW_ERR_BAD_REQUEST, true, 8);
    ck_assert_int_eq(gw_codec_parse_publish_body("{\"channel\":\"a\",\"channel\":\"b\",\"data\":1}", 38, &req),
                     -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert_str_eq(req.errmsg, "an object repeats a key");
    gw_request_deinit(&req);
    /* equal keys only: "a" and "A", or keys in sibling objects, are distinct */
    ck_assert_int_eq(parse("{\"type\":\"publish\",\"channel\":\"c\",\"data\":[{\"a\":1},{\"a\":2,\"A\":3}]}"), 0);
}
END_TEST

/* ---- request errors ---- */

START_TEST(err_bad_json)
{
    expect_error("{\"type\":", GW_ERR_BAD_JSON, false, 0);
    expect_error("", GW_ERR_BAD_JSON, false, 0);
    expect_error("   ", GW_ERR_BAD_JSON, false, 0);
    expect_error("{\"id\":5,\"type\":\"ping\"", GW_ERR_BAD_JSON, false, 0);
    expect_error("{\"id\":5,\"type\":\"ping\"} x", GW_ERR_BAD_JSON, false, 0);
    expect_error("{'type':'ping'}", GW_ERR_BAD_JSON, false, 0);
    expect_error("{\"type\":\"ping\",\"id\":5,}", GW_ERR_BAD_JSON, false, 0);
    expect_error("{\"type\":\"ping\xff\"}", GW_ERR_BAD_JSON, false, 0);
    /* Out-of-range numbers only count as bad JSON when the JSON is broken. */
    expect_error("{\"type\":\"ping\",\"id\":99999999999999999999", GW_ERR_BAD_JSON, false, 0);
    ck_assert_int_eq(gw_codec_parse(NULL, 0, &req), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_JSON);
}
END_TEST

/* Valid JSON with numbers jansson cannot hold (beyond int64 or double): a
 * bad request, still carrying a usable id. */
START_TEST(err_number_out_of_range)
{
    expect_error("{\"type\":\"ping\",\"id\":18446744073709551616}", GW_ERR_BAD_REQUEST, false, 0);
    parse("{\"type\":\"ping\",\"id\":-99999999999999999999}");
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert(!req.has_id);
    ck_assert_str_eq(req.errmsg, "\"id\" must be an integer between -(2^53-1) and 2^53-1");
    gw_request_deinit(&req);
    expect_error("{\"type\":\"publish\",\"channel\":\"c\",\"data\":[18446744073709551616],\"id\":5}",
                 GW_ERR_BAD_REQUEST, true, 5);
    expect_error("{\"id\":-9007199254740991,\"x\":1e999}", GW_ERR_BAD_REQUEST, true,
                 -9007199254740991);
    expect_error("{\"id\":9007199254740992,\"x\":99999999999999999999}", GW_ERR_BAD_REQUEST, false,
                 0);
    expect_error("{\"id\":1.5,\"x\":99999999999999999999}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"id\":\"1\",\"x\":99999999999999999999}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"id\":-7,\"x\":99999999999999999999}", GW_ERR_BAD_REQUEST, true, -7);
    expect_error("[99999999999999999999]", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"ping\",\"\\u0000\":1}", GW_ERR_BAD_REQUEST, false, 0);
}
END_TEST

/* Issue 8 defect 3: a real beyond double took the id with it. The id is
 * found in the text itself, under jansson's rules: the top-level member
 * (escaped key spellings too), the last one of repeated keys. */
START_TEST(err_number_out_of_range_keeps_id)
{
    expect_error("{\"type\":\"ping\",\"id\":5,\"n\":1e400}", GW_ERR_BAD_REQUEST, true, 5);
    expect_error("{\"n\":-1e400,\"id\":5}", GW_ERR_BAD_REQUEST, true, 5);
    expect_error("{\"\\u0069d\":7,\"n\":1e400}", GW_ERR_BAD_REQUEST, true, 7);
    expect_error("{\"id\":1,\"n\":[1e400],\"id\":6}", GW_ERR_BAD_REQUEST, true, 6);
    expect_error("{ \"x\" : {\"id\":3} , \"n\" : 1e400 }", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"x\":\"\\\"id\\\":3\",\"n\":1e400}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"id\":5.0,\"n\":1e400}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"id\":1e400}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"id\":9007199254740992,\"n\":1e400}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"idx\":5,\"n\":1e400}", GW_ERR_BAD_REQUEST, false, 0);
}
END_TEST

/* Issue 8 defect 1: jansson 2.14 stops at a raw NUL after a number or a
 * literal and accepts what came before. A NUL is never JSON outside a
 * string, nor unescaped inside one. */
START_TEST(err_raw_nul_is_bad_json)
{
    static const char *const reqs[] = {
        "{\"type\":\"publish\",\"channel\":\"c\",\"data\":0\0}",
        "{\"type\":\"publish\",\"channel\":\"c\",\"data\":true\0}",
        "{\"type\":\"ping\",\"id\":5}\0",
        "{\"type\":\"ping\",\"x\":null\0,\"id\":5}",
        "{\"type\":\"ping\",\"x\":\"a\0b\"}",
    };
    static const size_t lens[] = { 42, 45, 23, 32, 25 };

    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        int rc = gw_codec_parse(reqs[i], lens[i], &req);

        ck_assert_msg(rc == -EINVAL && req.err == GW_ERR_BAD_JSON, "request %zu: rc %d err %s", i,
                      rc, gw_err_slug(req.err));
        gw_request_deinit(&req);
        rc = gw_codec_parse_publish_body(reqs[i], lens[i], &req);
        ck_assert_msg(rc == -EINVAL && req.err == GW_ERR_BAD_JSON, "body %zu: rc %d err %s", i, rc,
                      gw_err_slug(req.err));
        gw_request_deinit(&req);
    }
}
END_TEST

/* "data" nested depth levels deep: [[...[0]...]]. */
static char *nested_publish(size_t depth, bool body)
{
    const char *head = body ? "{\"channel\":\"c\",\"data\":" : "{\"type\":\"publish\",\"id\":9,\"channel\":\"c\",\"data\":";
    size_t hlen = strlen(head);
    char *s = malloc(hlen + 2 * depth + 3);

    memcpy(s, head, hlen);
    memset(s + hlen, '[', depth);
    s[hlen + depth] = '0';
    memset(s + hlen + depth + 1, ']', depth);
    strcpy(s + hlen + 2 * depth + 1, "}");
    return s;
}

/* Issue 8 defect 2: data 513..2047 levels deep was acked, then delivered as
 * a string because the message builder embeds only what gw_json_valid
 * takes. Both paths now share GW_JSON_MAX_DEPTH; deeper is bad_request. */
START_TEST(publish_data_depth_limit)
{
    for (int body = 0; body <= 1; body++) {
        static const size_t refused[] = { GW_JSON_MAX_DEPTH + 1, 1000, 2046, 2047, 5000 };
        char *s = nested_publish(GW_JSON_MAX_DEPTH, body);
        struct gw_frame *f;

        ck_assert_int_eq((body ? gw_codec_parse_publish_body(s, strlen(s), &req) : parse(s)), 0);
        ck_assert_uint_eq(req.data_len, 2 * GW_JSON_MAX_DEPTH + 1);
        f = gw_codec_message("c", 1, req.data_json, req.data_len);
        ck_assert(memmem(gw_frame_payload(f), f->len, "\"data\":[[", 9) != NULL);
        gw_frame_unref(f);
        gw_request_deinit(&req);
        free(s);
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
            s = nested_publish(refused[i], body);
            ck_assert_int_eq((body ? gw_codec_parse_publish_body(s, strlen(s), &req) : parse(s)), -EINVAL);
            ck_assert_msg(req.err == GW_ERR_BAD_REQUEST, "depth %zu body %d: %s", refused[i], body,
                          gw_err_slug(req.err));
            /* Beyond jansson's limit the request cannot be read, its id neither. */
            if (!body && refused[i] + 1 < GW_JSON_DEPTH_CAP)
                ck_assert(req.has_id && req.id == 9);
            ck_assert_ptr_null(req.data_json);
            gw_request_deinit(&req);
            free(s);
        }
    }
}
END_TEST

START_TEST(err_not_object)
{
    expect_error("[{\"type\":\"ping\",\"id\":1}]", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("5", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("\"ping\"", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("null", GW_ERR_BAD_REQUEST, false, 0);
}
END_TEST

START_TEST(err_bad_id_has_no_id)
{
    static const char *const ids[] = {
        "\"5\"", "1.0", "1.5", "null", "true", "[5]", "{}", "9007199254740992",
        "-9007199254740992", "9223372036854775807", "1e3",
    };

    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char buf[128];

        snprintf(buf, sizeof buf, "{\"type\":\"subscribe\",\"channel\":\"c\",\"id\":%s}", ids[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, false, 0);
        /* The id is checked first: a bad id wins over a bad type. */
        snprintf(buf, sizeof buf, "{\"type\":\"nope\",\"id\":%s}", ids[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, false, 0);
    }
}
END_TEST

START_TEST(err_type)
{
    expect_error("{\"id\":7}", GW_ERR_BAD_REQUEST, true, 7);
    expect_error("{}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":1,\"id\":8}", GW_ERR_BAD_REQUEST, true, 8);
    expect_error("{\"type\":null,\"id\":8}", GW_ERR_BAD_REQUEST, true, 8);
    expect_error("{\"type\":[\"ping\"]}", GW_ERR_BAD_REQUEST, false, 0);
    expect_error("{\"type\":\"subscribe_all\",\"id\":9}", GW_ERR_UNKNOWN_TYPE, true, 9);
    expect_error("{\"type\":\"Subscribe\",\"channel\":\"c\"}", GW_ERR_UNKNOWN_TYPE, false, 0);
    expect_error("{\"type\":\"\",\"id\":-3}", GW_ERR_UNKNOWN_TYPE, true, -3);
    expect_error("{\"type\":\"ping\\u0000\",\"id\":1}", GW_ERR_UNKNOWN_TYPE, true, 1);
    expect_error("{\"type\":\"pin\"}", GW_ERR_UNKNOWN_TYPE, false, 0);
}
END_TEST

START_TEST(err_channel)
{
    static const char *const types[] = { "subscribe", "unsubscribe", "publish" };

    for (size_t i = 0; i < 3; i++) {
        char buf[512];

        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"id\":11,\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, true, 11);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":5,\"id\":12,\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, true, 12);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":null,\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, false, 0);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":[\"a\"],\"id\":1,\"data\":1}",
                 types[i]);
        expect_error(buf, GW_ERR_BAD_REQUEST, true, 1);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"\",\"id\":13,\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_CHANNEL, true, 13);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"a b\",\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_CHANNEL, false, 0);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"a*\",\"id\":14,\"data\":1}", types[i]);
        expect_error(buf, GW_ERR_BAD_CHANNEL, true, 14);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"a\\u0000b\",\"id\":15,\"data\":1}",
                 types[i]);
        expect_error(buf, GW_ERR_BAD_CHANNEL, true, 15);
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"%0129d\",\"id\":16,\"data\":1}",
                 types[i], 0);
        expect_error(buf, GW_ERR_BAD_CHANNEL, true, 16);
        /* 128 bytes is the longest valid name. */
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"channel\":\"%0128d\",\"data\":1}", types[i], 0);
        ck_assert_int_eq(parse(buf), 0);
        ck_assert_uint_eq(req.channel_len, 128);
        gw_request_deinit(&req);
    }
    parse("{\"type\":\"subscribe\",\"channel\":\"?\"}");
    ck_assert_str_eq(req.errmsg, "channel name must be 1..128 bytes of A-Z a-z 0-9 _ - : . @ / =");
}
END_TEST

START_TEST(err_publish_data)
{
    expect_error("{\"type\":\"publish\",\"channel\":\"c\",\"id\":21}", GW_ERR_BAD_REQUEST, true, 21);
    expect_error("{\"type\":\"publish\",\"channel\":\"c\"}", GW_ERR_BAD_REQUEST, false, 0);
    /* The channel is checked before the data. */
    expect_error("{\"type\":\"publish\",\"channel\":\"c c\",\"id\":22}", GW_ERR_BAD_CHANNEL, true, 22);
    parse("{\"type\":\"publish\",\"channel\":\"c\",\"id\":21}");
    ck_assert_ptr_null(req.data_json);
    ck_assert_str_eq(req.errmsg, "\"data\" is missing");
}
END_TEST

START_TEST(errmsg_is_human)
{
    parse("{\"type\":\"subscribe\",\"channel\":5}");
    ck_assert_str_eq(req.errmsg, "\"channel\" must be a string");
    gw_request_deinit(&req);
    parse("{\"type\":5}");
    ck_assert_str_eq(req.errmsg, "\"type\" must be a string");
    gw_request_deinit(&req);
    parse("{\"type\":\"nope\"}");
    ck_assert_ptr_nonnull(strstr(req.errmsg, "\"nope\""));
}
END_TEST

static int parse_body(const char *s)
{
    gw_request_deinit(&req);
    return gw_codec_parse_publish_body(s, strlen(s), &req);
}

START_TEST(publish_body)
{
    ck_assert_int_eq(parse_body("{\"channel\":\"room:1\",\"data\":{\"a\": [1, 2]},\"extra\":true}"), 0);
    ck_assert_int_eq(req.type, GW_REQ_PUBLISH);
    ck_assert_str_eq(req.channel, "room:1");
    ck_assert_str_eq(req.data_json, "{\"a\":[1,2]}");
    ck_assert_int_eq(parse_body(" {\"data\":null,\"channel\":\"x\"} "), 0);
    ck_assert_str_eq(req.data_json, "null");

    ck_assert_int_eq(parse_body(""), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_JSON);
    ck_assert_int_eq(parse_body("{\"channel\":"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_JSON);
    ck_assert_int_eq(parse_body("[1]"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert_int_eq(parse_body("{\"data\":1}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert_str_eq(req.errmsg, "\"channel\" is missing");
    ck_assert_int_eq(parse_body("{\"channel\":\"x\"}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
    ck_assert_str_eq(req.errmsg, "\"data\" is missing");
    ck_assert_int_eq(parse_body("{\"channel\":\"a b\",\"data\":1}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_CHANNEL);
    ck_assert_int_eq(parse_body("{\"channel\":\"x\",\"data\":1e999}"), -EINVAL);
    ck_assert_int_eq(req.err, GW_ERR_BAD_REQUEST);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, subscribe_with_id);
    tcase_add_test(tc, subscribe_without_id);
    tcase_add_test(tc, unsubscribe);
    tcase_add_test(tc, publish_object);
    tcase_add_test(tc, publish_any_value);
    tcase_add_test(tc, ping);
    tcase_add_test(tc, auth);
    tcase_add_test(tc, err_auth_token);
    tcase_add_test(tc, unknown_fields_ignored);
    tcase_add_test(tc, id_limits);
    tcase_add_test(tc, duplicate_keys_refused);
    tcase_add_test(tc, err_bad_json);
    tcase_add_test(tc, err_number_out_of_range);
    tcase_add_test(tc, err_number_out_of_range_keeps_id);
    tcase_add_test(tc, err_raw_nul_is_bad_json);
    tcase_add_test(tc, publish_data_depth_limit);
    tcase_add_test(tc, err_not_object);
    tcase_add_test(tc, err_bad_id_has_no_id);
    tcase_add_test(tc, err_type);
    tcase_add_test(tc, err_channel);
    tcase_add_test(tc, err_publish_data);
    tcase_add_test(tc, errmsg_is_human);
    tcase_add_test(tc, publish_body);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(codec_suite());
}
