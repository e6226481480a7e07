/* Check suite for common/envelope.[ch]: the history envelope, case by case
 * from the grammar in envelope.h and docs/PROTOCOL.md. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "envelope.h"
#include "unit.h"

/* Parses a byte string given with its length (envelopes contain NULs only in
 * payloads, but 0xFF makes strlen-based literals awkward to read). */
static int parse(const char *s, size_t len, struct gw_envelope *env)
{
    return gw_envelope_parse(s, len, env);
}
#define PARSE(lit, env) parse(lit, sizeof(lit) - 1, env)

START_TEST(parses_envelope)
{
    struct gw_envelope env;
    static const char in[] = "\xffwsgate1 42 hoo98jgqzme9tg\n{\"text\":\"hi\"}";

    ck_assert_int_eq(PARSE(in, &env), 1);
    ck_assert(env.offset == 42);
    ck_assert_str_eq(env.epoch, "hoo98jgqzme9tg");
    ck_assert_uint_eq(env.epoch_len, 14);
    ck_assert_uint_eq(env.payload_len, 13);
    ck_assert(env.payload == in + sizeof(in) - 1 - 13);
    ck_assert(memcmp(env.payload, "{\"text\":\"hi\"}", 13) == 0);
}
END_TEST

START_TEST(payload_is_opaque)
{
    struct gw_envelope env;
    static const char empty[] = "\xffwsgate1 1 e\n";
    static const char binary[] = "\xffwsgate1 7 A_-z9\n\xff\n\0 \xfe";

    ck_assert_int_eq(PARSE(empty, &env), 1);
    ck_assert_uint_eq(env.payload_len, 0);
    ck_assert(env.payload == empty + sizeof(empty) - 1);
    ck_assert_int_eq(PARSE(binary, &env), 1);
    ck_assert_str_eq(env.epoch, "A_-z9");
    ck_assert_uint_eq(env.payload_len, 5);
    ck_assert(memcmp(env.payload, "\xff\n\0 \xfe", 5) == 0);
}
END_TEST

START_TEST(offset_limits)
{
    struct gw_envelope env;

    ck_assert_int_eq(PARSE("\xffwsgate1 18446744073709551615 e\n", &env), 1);
    ck_assert(env.offset == UINT64_MAX);
    ck_assert_int_eq(PARSE("\xffwsgate1 18446744073709551616 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 99999999999999999999 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 0 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 01 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 +1 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 -1 e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1x e\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1  1 e\n", &env), -EBADMSG);
}
END_TEST

START_TEST(epoch_limits)
{
    struct gw_envelope env;
    char buf[64];
    size_t n;

    ck_assert_int_eq(PARSE("\xffwsgate1 1 \n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 a b\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 a.b\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 a\r\n", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 \xc3\xa9\n", &env), -EBADMSG);
    /* Exactly the maximum length, then one more. */
    n = (size_t)snprintf(buf, sizeof buf, "\xffwsgate1 1 %s\nx", "0123456789abcdef0123456789ABCDEF");
    ck_assert_int_eq(parse(buf, n, &env), 1);
    ck_assert_uint_eq(env.epoch_len, GW_ENVELOPE_EPOCH_MAX);
    n = (size_t)snprintf(buf, sizeof buf, "\xffwsgate1 1 %s\nx", "0123456789abcdef0123456789ABCDEFG");
    ck_assert_int_eq(parse(buf, n, &env), -EBADMSG);
}
END_TEST

START_TEST(plain_payloads_are_not_envelopes)
{
    struct gw_envelope env = { .offset = 99 };

    ck_assert_int_eq(gw_envelope_parse(NULL, 0, &env), 0);
    ck_assert_int_eq(PARSE("{\"text\":\"hi\"}", &env), 0);
    ck_assert_int_eq(PARSE("wsgate1 1 e\nx", &env), 0);
    ck_assert_int_eq(PARSE("\xc3\xbfwsgate1 1 e\nx", &env), 0); /* U+00FF in UTF-8 */
    ck_assert_int_eq(PARSE("\xef\xbb\xbf{}", &env), 0);          /* BOM */
    ck_assert(env.offset == 99);                                 /* untouched */
}
END_TEST

START_TEST(reserved_but_malformed)
{
    struct gw_envelope env = { .offset = 99 };

    ck_assert_int_eq(PARSE("\xff", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xfe", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xfewsgate1 1 e\nx", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgat", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 ", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 ", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1 1 e", &env), -EBADMSG); /* no LF */
    ck_assert_int_eq(PARSE("\xffWSGATE1 1 e\nx", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgatex 1 e\nx", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xffwsgate1\t1 e\nx", &env), -EBADMSG);
    ck_assert_int_eq(PARSE("\xff{\"text\":\"hi\"}", &env), -EBADMSG);
    ck_assert(env.offset == 99);
}
END_TEST

START_TEST(other_versions)
{
    struct gw_envelope env;

    ck_assert_int_eq(PARSE("\xffwsgate2 1 e\nx", &env), -EPROTONOSUPPORT);
    ck_assert_int_eq(PARSE("\xffwsgate10 1 e\nx", &env), -EPROTONOSUPPORT);
    ck_assert_int_eq(PARSE("\xffwsgate01 1 e\nx", &env), -EPROTONOSUPPORT);
    ck_assert_int_eq(PARSE("\xffwsgate2", &env), -EBADMSG);
}
END_TEST

START_TEST(header_round_trip)
{
    char out[GW_ENVELOPE_HEADER_MAX + 8];
    struct gw_envelope env;
    int n;

    n = gw_envelope_header(out, 1234567, "abc", 3);
    ck_assert_int_eq(n, 21);
    ck_assert(memcmp(out, "\xffwsgate1 1234567 abc\n", 21) == 0);
    memcpy(out + n, "pay", 3);
    ck_assert_int_eq(gw_envelope_parse(out, (size_t)n + 3, &env), 1);
    ck_assert(env.offset == 1234567);
    ck_assert_str_eq(env.epoch, "abc");
    ck_assert_uint_eq(env.payload_len, 3);

    n = gw_envelope_header(out, UINT64_MAX, "0123456789abcdef0123456789ABCDEF", 32);
    ck_assert_int_eq(n, GW_ENVELOPE_HEADER_MAX);
    ck_assert_int_eq(gw_envelope_parse(out, (size_t)n, &env), 1);
    ck_assert(env.offset == UINT64_MAX);

    ck_assert_int_eq(gw_envelope_header(out, 0, "e", 1), -EINVAL);
    ck_assert_int_eq(gw_envelope_header(out, 1, "", 0), -EINVAL);
    ck_assert_int_eq(gw_envelope_header(out, 1, "a b", 3), -EINVAL);
    ck_assert_int_eq(gw_envelope_header(out, 1, "0123456789abcdef0123456789ABCDEFG", 33), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, parses_envelope);
    tcase_add_test(tc, payload_is_opaque);
    tcase_add_test(tc, offset_limits);
    tcase_add_test(tc, epoch_limits);
    tcase_add_test(tc, plain_payloads_are_not_envelopes);
    tcase_add_test(tc, reserved_but_malformed);
    tcase_add_test(tc, other_versions);
    tcase_add_test(tc, header_round_trip);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
