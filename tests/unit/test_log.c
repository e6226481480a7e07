/* Logging: text and JSON line formats, message/field splitting, escaping,
 * level filtering and truncation to one atomic pipe write. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

static int fds[2];
static char line[16384];
static size_t line_len;

static void setup(void)
{
    ck_assert_int_eq(pipe(fds), 0);
}

static void teardown(void)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, 2);
    close(fds[0]);
    close(fds[1]);
}

/* Reads what one gw_log call wrote (one write(), so one read). */
static const char *read_line(void)
{
    ssize_t n = read(fds[0], line, sizeof line - 1);

    ck_assert_int_gt(n, 0);
    line_len = (size_t)n;
    line[n] = '\0';
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_eq(strchr(line, '\n'), line + n - 1);
    return line;
}

/* Skips the timestamp after checking its shape: 2026-11-26T10:00:00.123Z */
static const char *after_ts(const char *l)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";

    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            ck_assert_msg(l[i] >= '0' && l[i] <= '9', "bad timestamp in %s", l);
        else
            ck_assert_msg(l[i] == shape[i], "bad timestamp in %s", l);
    }
    return l + sizeof shape - 1;
}

static json_t *read_json(void)
{
    json_error_t jerr;
    json_t *j;

    read_line();
    j = json_loadb(line, line_len, 0, &jerr);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, line);
    return j;
}

static void expect_field(json_t *j, const char *key, const char *value)
{
    json_t *v = json_object_get(j, key);

    ck_assert_msg(json_is_string(v), "no string field %s", key);
    ck_assert_str_eq(json_string_value(v), value);
}

START_TEST(text_format)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, fds[1]);
    gw_log(GW_LOG_WARN, "session", "evicted id=%d reason=%s", 5, "slow");
    ck_assert_str_eq(after_ts(read_line()),
                     "level=warn module=session msg=\"evicted\" id=5 reason=slow\n");
    gw_log(GW_LOG_INFO, "hub", "redis state changed from=connecting to=connected");
    ck_assert_str_eq(after_ts(read_line()), "level=info module=hub msg=\"redis state changed\" "
                                            "from=connecting to=connected\n");
    gw_log(GW_LOG_ERROR, "bus", "no fields at all, say \"hi\"");
    ck_assert_str_eq(after_ts(read_line()),
                     "level=error module=bus msg=\"no fields at all, say \\\"hi\\\"\"\n");
    gw_log(GW_LOG_INFO, "m", "k=v");
    ck_assert_str_eq(after_ts(read_line()), "level=info module=m msg=\"\" k=v\n");
    gw_log(GW_LOG_INFO, "m", "err=%s", "line1\nline2\tx");
    ck_assert_str_eq(after_ts(read_line()), "level=info module=m msg=\"\" err=line1\\nline2\\tx\n");
    /* "a=b" in the middle of a word is not a field. */
    gw_log(GW_LOG_INFO, "m", "got path/a=b url=redis://h/0?a=b");
    ck_assert_str_eq(after_ts(read_line()),
                     "level=info module=m msg=\"got path/a=b\" url=redis://h/0?a=b\n");
}
END_TEST

START_TEST(levels)
{
    gw_log_setup(GW_LOG_WARN, GW_LOG_TEXT, fds[1]);
    ck_assert(gw_log_enabled(GW_LOG_ERROR));
    ck_assert(gw_log_enabled(GW_LOG_WARN));
    ck_assert(!gw_log_enabled(GW_LOG_INFO));
    ck_assert(!gw_log_enabled(GW_LOG_DEBUG));
    gw_log(GW_LOG_INFO, "m", "dropped");
    gw_log(GW_LOG_DEBUG, "m", "dropped");
    gw_log(GW_LOG_ERROR, "m", "kept");
    ck_assert_ptr_nonnull(strstr(read_line(), "level=error module=m msg=\"kept\"\n"));
    gw_log_setup(GW_LOG_DEBUG, GW_LOG_TEXT, fds[1]);
    ck_assert(gw_log_enabled(GW_LOG_DEBUG));
    gw_log(GW_LOG_DEBUG, "m", "shown");
    ck_assert_ptr_nonnull(strstr(read_line(), "level=debug"));
}
END_TEST

START_TEST(parse_names)
{
    enum gw_log_level l;
    enum gw_log_format f;

    ck_assert_int_eq(gw_log_level_parse("error", &l), 0);
    ck_assert_int_eq(l, GW_LOG_ERROR);
    ck_assert_int_eq(gw_log_level_parse("warn", &l), 0);
    ck_assert_int_eq(l, GW_LOG_WARN);
    ck_assert_int_eq(gw_log_level_parse("info", &l), 0);
    ck_assert_int_eq(l, GW_LOG_INFO);
    ck_assert_int_eq(gw_log_level_parse("debug", &l), 0);
    ck_assert_int_eq(l, GW_LOG_DEBUG);
    ck_assert_int_eq(gw_log_level_parse("INFO", &l), -EINVAL);
    ck_assert_int_eq(gw_log_level_parse("", &l), -EINVAL);
    ck_assert_int_eq(gw_log_format_parse("json", &f), 0);
    ck_assert_int_eq(f, GW_LOG_JSON);
    ck_assert_int_eq(gw_log_format_parse("text", &f), 0);
    ck_assert_int_eq(f, GW_LOG_TEXT);
    ck_assert_int_eq(gw_log_format_parse("logfmt", &f), -EINVAL);
}
END_TEST

START_TEST(json_format)
{
    json_t *j;
    const char *ts;

    gw_log_setup(GW_LOG_INFO, GW_LOG_JSON, fds[1]);
    gw_log(GW_LOG_WARN, "session", "evicted id=%d reason=%s", 5, "slow");
    j = read_json();
    ck_assert_str_eq(line + strlen("{\"ts\":\"2026-11-26T10:00:00.123Z\""),
                     ",\"level\":\"warn\",\"module\":\"session\",\"msg\":\"evicted\","
                     "\"id\":\"5\",\"reason\":\"slow\"}\n");
    ts = json_string_value(json_object_get(j, "ts"));
    ck_assert_uint_eq(strlen(ts), 24);
    ck_assert_int_eq(ts[23], 'Z');
    json_decref(j);

    /* Quoted values lose their quotes; unquoted ones may hold spaces. */
    gw_log(GW_LOG_INFO, "bus", "connect failed err=connection refused addr=\"a b=c\" n=1");
    j = read_json();
    expect_field(j, "msg", "connect failed");
    expect_field(j, "err", "connection refused");
    expect_field(j, "addr", "a b=c");
    expect_field(j, "n", "1");
    json_decref(j);

    gw_log(GW_LOG_INFO, "m", "q=\"say \\\"hi\\\"\" tail=\"unterminated");
    j = read_json();
    expect_field(j, "q", "say \"hi\"");
    expect_field(j, "tail", "\"unterminated");
    json_decref(j);

    gw_log(GW_LOG_INFO, "m", "bad utf8 \xff v=\xc3");
    j = read_json();
    expect_field(j, "msg", "bad utf8 \xef\xbf\xbd");
    expect_field(j, "v", "\xef\xbf\xbd");
    json_decref(j);

    gw_log(GW_LOG_INFO, "m", "ctl\x01\n");
    j = read_json();
    expect_field(j, "msg", "ctl\x01\n");
    json_decref(j);
}
END_TEST

START_TEST(truncation)
{
    static char big[10000];
    json_t *j;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    gw_log_setup(GW_LOG_INFO, GW_LOG_JSON, fds[1]);
    gw_log(GW_LOG_INFO, "m", "%s", big);
    j = read_json();
    ck_assert_uint_le(line_len, 4096);
    ck_assert(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    /* Many fields: the one that does not fit is dropped whole. */
    for (size_t i = 0; i + 8 < sizeof big; i += 8)
        memcpy(big + i, " k=\x01\x02\"xx", 8);
    gw_log(GW_LOG_INFO, "m", "start%s", big);
    j = read_json();
    ck_assert_uint_le(line_len, 4096);
    ck_assert(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    /* Multi-byte characters are never cut in half. */
    for (size_t i = 0; i + 3 < sizeof big; i += 3)
        memcpy(big + i, "\xe2\x82\xac", 3);
    big[sizeof big - 1 - (sizeof big - 1) % 3] = '\0';
    gw_log(GW_LOG_INFO, "m", "%s", big);
    j = read_json();
    ck_assert_uint_le(line_len, 4096);
    json_decref(j);

    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, fds[1]);
    gw_log(GW_LOG_INFO, "m", "msg k=%s", big);
    read_line();
    ck_assert_uint_le(line_len, 4096);
    ck_assert_ptr_nonnull(strstr(line, " truncated=true\n"));
    ck_assert_uint_eq((size_t)(strstr(line, " truncated=true") - (strstr(line, " k=") + 3)) % 3, 0);
}
END_TEST

START_TEST(errno_preserved)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, fds[1]);
    errno = EAGAIN;
    gw_log(GW_LOG_INFO, "m", "x");
    ck_assert_int_eq(errno, EAGAIN);
    read_line();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, text_format);
    tcase_add_test(tc, levels);
    tcase_add_test(tc, parse_names);
    tcase_add_test(tc, json_format);
    tcase_add_test(tc, truncation);
    tcase_add_test(tc, errno_preserved);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
