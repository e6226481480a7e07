/* Channel patterns of token grants (common/pattern.[ch]), with the subject
 * treated as hostile input. */
#include "pattern.h"
#include "unit.h"

#define YES(p, sub, ch) ck_assert_msg(gw_pattern_match(p, sub, ch), "%s should match %s", p, ch)
#define NO(p, sub, ch) ck_assert_msg(!gw_pattern_match(p, sub, ch), "%s should not match", p)

START_TEST(validity)
{
    char big[GW_PATTERN_MAX + 2];

    ck_assert(gw_pattern_valid("room:1"));
    ck_assert(gw_pattern_valid("room:*"));
    ck_assert(gw_pattern_valid("*"));
    ck_assert(gw_pattern_valid("user:{sub}"));
    ck_assert(gw_pattern_valid("user:{sub}:*"));
    ck_assert(gw_pattern_valid("{sub}"));
    ck_assert(gw_pattern_valid("dm:{sub}:{sub}"));
    ck_assert(!gw_pattern_valid(NULL));
    ck_assert(!gw_pattern_valid(""));
    ck_assert(!gw_pattern_valid("**"));
    ck_assert(!gw_pattern_valid("room:*:x"));
    ck_assert(!gw_pattern_valid("*room"));
    ck_assert(!gw_pattern_valid("user:{sub"));
    ck_assert(!gw_pattern_valid("user:{su}"));
    ck_assert(!gw_pattern_valid("user:{SUB}"));
    ck_assert(!gw_pattern_valid("user:{iss}"));
    ck_assert(!gw_pattern_valid("user:}"));
    ck_assert(!gw_pattern_valid("user:{}"));
    ck_assert(!gw_pattern_valid("room 1"));
    ck_assert(!gw_pattern_valid("room?"));
    ck_assert(!gw_pattern_valid("caf\xc3\xa9"));
    memset(big, 'a', sizeof big);
    big[GW_PATTERN_MAX] = '\0';
    ck_assert(gw_pattern_valid(big));
    big[GW_PATTERN_MAX] = 'a';
    big[GW_PATTERN_MAX + 1] = '\0';
    ck_assert(!gw_pattern_valid(big));
}
END_TEST

START_TEST(exact_and_prefix)
{
    YES("room:1", NULL, "room:1");
    NO("room:1", NULL, "room:10");
    NO("room:1", NULL, "room:");
    NO("room:1", NULL, "Room:1");
    YES("room:*", NULL, "room:1");
    YES("room:*", NULL, "room:1:2");
    YES("room:*", NULL, "room:");
    NO("room:*", NULL, "room");
    NO("room:*", NULL, "roo");
    YES("*", NULL, "anything");
    NO("room:*:x", NULL, "room:1:x"); /* invalid pattern matches nothing */
}
END_TEST

START_TEST(channel_must_be_valid)
{
    NO("*", NULL, "");
    NO("*", NULL, "a b");
    NO("room:*", NULL, "room:*");
    NO("room:*", NULL, "room:\n");
    NO("room:*", NULL, NULL);
}
END_TEST

START_TEST(subject)
{
    YES("user:{sub}", "alice", "user:alice");
    NO("user:{sub}", "alice", "user:alicex");
    NO("user:{sub}", "alice", "user:alic");
    NO("user:{sub}", "alice", "user:bob");
    YES("user:{sub}:*", "alice", "user:alice:inbox");
    NO("user:{sub}:*", "alice", "user:alicex:inbox");
    YES("dm:{sub}:{sub}", "a", "dm:a:a");
    NO("dm:{sub}:{sub}", "a", "dm:a:b");
    YES("user:{sub}", "alice@example.com", "user:alice@example.com");
    /* A pattern without {sub} does not care about the subject. */
    YES("room:1", NULL, "room:1");
    YES("room:1", "*", "room:1");
}
END_TEST

/* A subject must never widen a grant: it is literal text, and text that
 * cannot be part of a channel name matches nothing at all. */
/* docs/AUTH.md: a star straight after {sub} reaches other subjects' names. */
START_TEST(subject_prefix_star)
{
    YES("user:{sub}*", "bob", "user:bobby");
    YES("user:{sub}*", "bob", "user:bob");
    NO("user:{sub}:*", "bob", "user:bobby");
    YES("user:{sub}:*", "bob", "user:bob:inbox");
    NO("user:{sub}", "bob", "user:bobby");
}
END_TEST

START_TEST(subject_injection)
{
    NO("user:{sub}", "*", "user:alice");
    NO("user:{sub}", "*", "user:*");
    NO("user:{sub}", "*", "user:");
    NO("user:{sub}*", "*", "user:alice");
    NO("user:{sub}", "a*", "user:abc");
    NO("user:{sub}", NULL, "user:");
    NO("user:{sub}", NULL, "user:alice");
    NO("user:{sub}", "", "user:");
    NO("user:{sub}:*", "", "user::x");
    NO("user:{sub}", "{sub}", "user:{sub}");
    NO("user:{sub}", "a b", "user:a");
    NO("user:{sub}*", "x?", "user:x");
    NO("user:{sub}", "alice\n", "user:alice");
    NO("user:{sub}", "caf\xc3\xa9", "user:caf");
    /* Legal characters stay literal: "a:b" is its own channel, not a prefix. */
    YES("user:{sub}", "a:b", "user:a:b");
    NO("user:{sub}", "a:b", "user:a");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pattern");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, validity);
    tcase_add_test(tc, exact_and_prefix);
    tcase_add_test(tc, channel_must_be_valid);
    tcase_add_test(tc, subject);
    tcase_add_test(tc, subject_injection);
    tcase_add_test(tc, subject_prefix_star);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
