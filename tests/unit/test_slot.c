/* Key slots (common/slot.[ch]): CRC16/XMODEM against its published check
 * value, slots against the examples of the Redis Cluster specification and
 * of CLUSTER KEYSLOT's documentation, and the hash-tag rule's edge cases.
 * tests/integration/test_slot_keyslot.py compares thousands more keys with a
 * real cluster node. */
#include <stdbool.h>
#include <stdio.h>

#include "slot.h"
#include "unit.h"

static uint16_t slot_s(const char *s)
{
    return gw_slot_of(s, strlen(s));
}

START_TEST(crc16_vectors)
{
    /* The CRC catalogue's check value for CRC-16/XMODEM, also quoted by the
     * cluster specification. */
    ck_assert_uint_eq(gw_slot_crc16("123456789", 9), 0x31C3);
    ck_assert_uint_eq(gw_slot_crc16(NULL, 0), 0);
    ck_assert_uint_eq(gw_slot_crc16("A", 1), 0x58E5);
    /* A one-bit change moves the CRC: the loop really looks at every bit. */
    ck_assert_uint_ne(gw_slot_crc16("123456788", 9), 0x31C3);
}
END_TEST

START_TEST(known_slots)
{
    /* From the CLUSTER KEYSLOT documentation and redis-cli sessions in the
     * cluster tutorial. */
    ck_assert_uint_eq(slot_s("somekey"), 11058);
    ck_assert_uint_eq(slot_s("foo{hash_tag}"), 2515);
    ck_assert_uint_eq(slot_s("foo"), 12182);
    ck_assert_uint_eq(slot_s("bar"), 5061);
    ck_assert_uint_eq(slot_s("hello"), 866);
    ck_assert_uint_eq(slot_s(""), 0);
}
END_TEST

START_TEST(hash_tags)
{
    size_t off, n;

    /* A tag: only its inside is hashed. */
    ck_assert_uint_eq(slot_s("{user1000}.following"), slot_s("user1000"));
    ck_assert_uint_eq(slot_s("{user1000}.followers"), slot_s("user1000"));
    ck_assert_uint_eq(slot_s("x{hash_tag}y"), slot_s("hash_tag"));
    /* The first '{' and the first '}' after it: "{{a}}" hashes "{a". */
    ck_assert_uint_eq(slot_s("{{a}}"), slot_s("{a"));
    gw_slot_tag("{{a}}", 5, &off, &n);
    ck_assert_uint_eq(off, 1);
    ck_assert_uint_eq(n, 2);
    /* Only the first tag counts. */
    ck_assert_uint_eq(slot_s("a{b}c{d}"), slot_s("b"));
    ck_assert_uint_eq(slot_s("foo{bar}{zap}"), slot_s("bar"));
    /* An empty tag: the whole key is hashed, and a later tag does not count. */
    ck_assert_uint_eq(slot_s("foo{}{bar}"), (uint16_t)(gw_slot_crc16("foo{}{bar}", 10) & 16383));
    gw_slot_tag("{}", 2, &off, &n);
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_ne(slot_s("{}"), 0);
    /* No closing brace, or a '}' only before the '{': the whole key. */
    gw_slot_tag("a{b", 3, &off, &n);
    ck_assert_uint_eq(n, 3);
    gw_slot_tag("a}b{c", 5, &off, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(slot_s("}{a}"), slot_s("a"));
    /* The channel and its history keys share a slot (deploy/redis/wsgate.lua). */
    ck_assert_uint_eq(slot_s("{gw:room:1}:meta"), slot_s("gw:room:1"));
    ck_assert_uint_eq(slot_s("{gw:room:1}:stream"), slot_s("gw:room:1"));
}
END_TEST

START_TEST(binary_keys)
{
    /* NUL bytes are key bytes, not terminators. */
    ck_assert_uint_ne(gw_slot_of("a\0b", 3), slot_s("a"));
    ck_assert_uint_eq(gw_slot_of("{a\0b}x", 6), gw_slot_of("a\0b", 3));
    for (int i = 0; i < 1000; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "key:%d", i);
        ck_assert_uint_lt(gw_slot_of(k, (size_t)n), GW_SLOT_COUNT);
    }
}
END_TEST

/* The slot of "{c}" suffix, by building the key and hashing it whole. */
static uint16_t built_key_slot(const char *c, size_t len, const char *suffix)
{
    char k[64];
    size_t n = (size_t)snprintf(k, sizeof k, "{%.*s}%s", (int)len, c, suffix);

    return gw_slot_of(k, n);
}

START_TEST(channel_colocated)
{
    ck_assert(gw_slot_channel_colocated("gw:room:1", 9));
    ck_assert(gw_slot_channel_colocated("a{b", 3));  /* no '}': the tag is the name */
    ck_assert(gw_slot_channel_colocated("{x", 2));
    ck_assert(!gw_slot_channel_colocated("a{b}c", 5)); /* channel "b", keys "a{b" */
    ck_assert(!gw_slot_channel_colocated("}x", 2));    /* even the two keys differ */
    ck_assert(!gw_slot_channel_colocated("gw:{x}", 6));
    ck_assert(gw_slot_channel_colocated("a}{a}", 5)); /* both hash "a": they agree */
    ck_assert(!gw_slot_channel_colocated("", 0));

    /* Every name of up to 7 bytes over "a{}" (3280 names) against building the keys. */
    char c[8];
    int agree = 0, names = 0;
    for (size_t len = 0; len <= 7; len++) {
        unsigned total = 1;
        for (size_t i = 0; i < len; i++)
            total *= 3;
        for (unsigned v = 0; v < total; v++) {
            unsigned x = v;
            for (size_t i = 0; i < len; i++, x /= 3)
                c[i] = "a{}"[x % 3];
            uint16_t s = gw_slot_of(c, len);
            bool want = built_key_slot(c, len, ":meta") == s && built_key_slot(c, len, ":stream") == s;
            ck_assert_msg(gw_slot_channel_colocated(c, len) == want, "\"%.*s\"", (int)len, c);
            if (len && !memchr(c, '}', len))
                ck_assert_msg(want, "\"%.*s\" has no '}'", (int)len, c);
            agree += want;
            names++;
        }
    }
    ck_assert_int_eq(names, 3280);
    ck_assert_int_gt(agree, 0);
    ck_assert_int_lt(agree, names);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slot");
    TCase *tc = tcase_create("slot");

    tcase_add_test(tc, crc16_vectors);
    tcase_add_test(tc, known_slots);
    tcase_add_test(tc, hash_tags);
    tcase_add_test(tc, binary_keys);
    tcase_add_test(tc, channel_colocated);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
