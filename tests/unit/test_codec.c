/* Protocol v1 codec: request parsing (every type and every error path, with
 * and without a usable id) and the exact bytes of every frame builder. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "codec.h"
#include "json.h"
#include "unit.h"

static struct gw_request req;

static int parse(const char *s)
{
    return gw_codec_parse(s, strlen(s), &req);
}

/* Parses s, expects failure with err and the given id state. */
static void expect_error(const char *s, enum gw_err err, bool has_id, int64_t id)
{
    int rc = parse(s);

    ck_assert_msg(rc == -EINVAL, "%s: rc %d", s, rc);
    ck_assert_msg(req.err == err, "%s: err %s, want %s", s, gw_err_slug(req.err),
                  gw_err_slug(err));
    ck_assert_msg(req.has_id == has_id, "%s: has_id %d", s, req.has_id);
    if (has_id)
        ck_assert_msg(req.id == id, "%s: id %lld", s, (long long)req.id);
    ck_assert_msg(req.errmsg[0] != '\0', "%s: empty errmsg", s);
    gw_request_deinit(&req);
}

static void teardown(void)
{
    gw_request_deinit(&req);
    ck_assert_int_eq(gw_frame_live_count(), 0);
}

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

    tc = tcase_create("build");
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
    return gw_run_suite(codec_suite());
}
