/* gw_json_valid: hand-picked RFC 8259 cases, the depth limit, and a
 * differential test against jansson on generated and mutated inputs.
 * gw_json_escape: short escapes, U+FFFD for ill-formed UTF-8, and its length.
 *
 * Documented divergences (gw_json_valid follows RFC 8259; jansson 2.14 does
 * not, in these corners):
 * - numbers that overflow int64 or double: valid JSON, jansson rejects;
 * - "\u0000" inside an object key: valid JSON, jansson rejects;
 * - nesting 513..2048 deep: jansson accepts, gw_json_valid rejects;
 * - a NUL byte right after a number or literal ("1\0"): jansson's lexer
 *   un-gets the NUL and then skips it, so it accepts; it is not JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "unit.h"

#define V(lit) ck_assert_msg(gw_json_valid(lit, sizeof(lit) - 1), "should be valid: %s", lit)
#define INV(lit) ck_assert_msg(!gw_json_valid(lit, sizeof(lit) - 1), "should be invalid: %s", lit)

START_TEST(valid_cases)
{
    V("0");
    V("-0");
    V("1.5e10");
    V("1E+2");
    V("-1.0e-2");
    V("123456789012345678901234567890");
    V("1e400");
    V("\"a\"");
    V("\"\"");
    V("true");
    V("false");
    V("null");
    V("[]");
    V("{}");
    V("[ ]");
    V("{ }");
    V("[1,[2,{\"a\":[]}]]");
    V("{\"a\":{\"b\":null},\"c\":[true,false]}");
    V(" \t\r\n1 \n");
    V("\"\\u00e9\\u00E9\"");
    V("\"\\ud83d\\ude00\"");
    V("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    V("\"\\u0000\"");
    V("{\"\\u0000\":1}");
    V("\"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9\x7f\"");
    V("\"\xf4\x8f\xbf\xbf\"");
    V("\"\xed\x9f\xbf\"");
    V("{\"a\":1,\"a\":2}");
}
END_TEST

START_TEST(invalid_cases)
{
    INV("");
    INV(" ");
    INV("01");
    INV("-01");
    INV("-");
    INV("1.");
    INV(".5");
    INV("1e");
    INV("1e+");
    INV("+1");
    INV("0x1");
    INV("NaN");
    INV("Infinity");
    INV("-Infinity");
    INV("tru");
    INV("truex");
    INV("True");
    INV("nul");
    INV("[1,]");
    INV("[,1]");
    INV("[1 2]");
    INV("1 2");
    INV("{\"a\"}");
    INV("{\"a\":}");
    INV("{\"a\":1,}");
    INV("{\"a\" 1}");
    INV("{a:1}");
    INV("{'a':1}");
    INV("{1:1}");
    INV("\"abc");
    INV("\"\\x\"");
    INV("\"\\u12\"");
    INV("\"\\u12g4\"");
    INV("\"\\ud800\"");
    INV("\"\\udc00\"");
    INV("\"\\ud800\\u0041\"");
    INV("\"\\ud800x\"");
    INV("\"\\ud800\\\\udc00\"");
    INV("\"a\tb\"");
    INV("\"a\nb\"");
    INV("\"\x01\"");
    INV("[");
    INV("]");
    INV("{");
    INV("}");
    INV("[1]]");
    INV("[1}");
    INV("{\"a\":1]");
    INV("\"\xff\"");
    INV("\"\xc0\x80\"");
    INV("\"\xc1\xbf\"");
    INV("\"\xe0\x9f\xbf\"");
    INV("\"\xed\xa0\x80\"");
    INV("\"\xf0\x8f\xbf\xbf\"");
    INV("\"\xf4\x90\x80\x80\"");
    INV("\"\xf5\x80\x80\x80\"");
    INV("\"\xe2\x82\"");
    INV("\"\x80\"");
    INV("1\0");
    INV("\xef\xbb\xbf" "1");
    INV("\f1");
    INV("\v1");
    ck_assert(!gw_json_valid(NULL, 0));
}
END_TEST

static char *nested(size_t depth, bool objects, size_t *len)
{
    size_t cap = depth * 6 + 2, n = 0;
    char *p = malloc(cap);

    for (size_t i = 0; i < depth; i++) {
        if (objects) {
            memcpy(p + n, "{\"a\":", 5);
            n += 5;
        } else {
            p[n++] = '[';
        }
    }
    p[n++] = '1';
    for (size_t i = 0; i < depth; i++)
        p[n++] = objects ? '}' : ']';
    *len = n;
    return p;
}

START_TEST(depth_limit)
{
    size_t len;
    char *p;

    p = nested(512, false, &len);
    ck_assert(gw_json_valid(p, len));
    free(p);
    p = nested(513, false, &len);
    ck_assert(!gw_json_valid(p, len));
    free(p);
    p = nested(512, true, &len);
    ck_assert(gw_json_valid(p, len));
    free(p);
    p = nested(513, true, &len);
    ck_assert(!gw_json_valid(p, len));
    free(p);
    p = nested(100000, false, &len);
    ck_assert(!gw_json_valid(p, len));
    free(p);
}
END_TEST

/* ---- differential test against jansson ---- */

static uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure reproduces exactly. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * UINT64_C(2685821657736338717);
}

static size_t rn(size_t n)
{
    return (size_t)(rnd() % n);
}

struct buf {
    char p[8192];
    size_t len;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n <= sizeof b->p) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void gen_ws(struct buf *b)
{
    static const char *const ws[] = { " ", "\t", "\n", "\r", "  " };

    if (rn(4) == 0)
        puts_(b, ws[rn(5)]);
}

static void gen_string(struct buf *b, bool key)
{
    static const char *const parts[] = {
        "a", "Z", "0", " ", "/", "\\n", "\\\"", "\\\\", "\\/", "\\b", "\\t", "\\u00e9",
        "\\uD83D\\uDE00", "\\u20ac", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x7f",
        "\\u0000",
    };
    size_t n = rn(6);

    puts_(b, "\"");
    for (size_t i = 0; i < n; i++) {
        /* No \u0000 in keys: jansson rejects it there (a known divergence). */
        size_t k = rn(key ? 18 : 19);

        puts_(b, parts[k]);
    }
    puts_(b, "\"");
}

static void gen_number(struct buf *b)
{
    char tmp[64];

    switch (rn(6)) {
    case 0: puts_(b, rn(2) ? "0" : "-0"); break;
    case 1: snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)(rnd() % 1000000000000ULL)); puts_(b, tmp); break;
    case 2: snprintf(tmp, sizeof tmp, "-%u", (unsigned)rn(100000)); puts_(b, tmp); break;
    case 3: snprintf(tmp, sizeof tmp, "%u.%u", (unsigned)rn(1000), (unsigned)rn(1000)); puts_(b, tmp); break;
    case 4: snprintf(tmp, sizeof tmp, "%ue%s%u", (unsigned)rn(100), rn(2) ? "-" : "+", (unsigned)rn(30)); puts_(b, tmp); break;
    default: snprintf(tmp, sizeof tmp, "-%u.%uE%u", (unsigned)rn(10), (unsigned)rn(100), (unsigned)rn(20)); puts_(b, tmp); break;
    }
}

static void gen_value(struct buf *b, int depth)
{
    size_t n;

    gen_ws(b);
    switch (rn(depth > 5 ? 6 : 9)) {
    case 0: case 5: gen_number(b); break;
    case 1: gen_string(b, false); break;
    case 2: puts_(b, "true"); break;
    case 3: puts_(b, "false"); break;
    case 4: puts_(b, "null"); break;
    case 6: case 8:
        puts_(b, "[");
        n = rn(4);
        for (size_t i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        puts_(b, "]");
        break;
    default:
        puts_(b, "{");
        n = rn(4);
        for (size_t i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            gen_ws(b);
            gen_string(b, true);
            gen_ws(b);
            puts_(b, ":");
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        puts_(b, "}");
        break;
    }
    gen_ws(b);
}

static void mutate(struct buf *b)
{
    static const char interesting[] = "\"{}[],:\\-+.eE0u \t\n\x01\x7f";
    static const unsigned char high[] = { 0x00, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff };
    size_t pos = b->len ? rn(b->len) : 0;
    unsigned char c = rn(2) ? (unsigned char)interesting[rn(sizeof interesting - 1)]
                            : high[rn(sizeof high)];

    switch (rn(7)) {
    case 0:
        if (b->len)
            b->p[pos] = (char)rn(256);
        break;
    case 1:
        if (b->len)
            b->p[pos] = (char)c;
        break;
    case 2:
        if (b->len) {
            memmove(b->p + pos, b->p + pos + 1, b->len - pos - 1);
            b->len--;
        }
        break;
    case 3:
        if (b->len < sizeof b->p) {
            memmove(b->p + pos + 1, b->p + pos, b->len - pos);
            b->p[pos] = (char)c;
            b->len++;
        }
        break;
    case 4:
        b->len = pos;
        break;
    case 5: {
        size_t n = b->len - pos > 8 ? 8 : b->len - pos;
        char tmp[8];

        memcpy(tmp, b->p + pos, n);
        put(b, tmp, n);
        break;
    }
    default:
        if (b->len) {
            size_t q = rn(b->len);
            char t = b->p[pos];

            b->p[pos] = b->p[q];
            b->p[q] = t;
        }
        break;
    }
}

static void gen_soup(struct buf *b)
{
    static const char *const tok[] = {
        "[", "]", "{", "}", ",", ":", "\"a\"", "\"", "1", "-", "0", ".", "e", "true", "nul",
        " ", "\\", "\\u", "d800", "\xc3\xa9", "\xff", "\"\\ud800\\udc00\"", "2.5", "false",
    };
    size_t n = 1 + rn(10);

    for (size_t i = 0; i < n; i++)
        puts_(b, tok[rn(sizeof tok / sizeof tok[0])]);
}

/* True when jansson and gw_json_valid may disagree on s (see the top). */
static bool known_divergence(const char *s, size_t n, bool theirs, const json_error_t *jerr)
{
    if (!theirs) {
        enum json_error_code code = json_error_code(jerr);

        return code == json_error_numeric_overflow || code == json_error_null_byte_in_key ||
               code == json_error_stack_overflow;
    }
    if (memchr(s, '\0', n)) {
        char stripped[8192];
        size_t m = 0;

        for (size_t i = 0; i < n; i++) {
            if (s[i] != '\0')
                stripped[m++] = s[i];
        }
        return gw_json_valid(stripped, m);
    }
    return false;
}

static int n_valid, n_invalid, n_diverged;

static void compare(const struct buf *b)
{
    json_error_t jerr;
    json_t *j = json_loadb(b->p, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    bool theirs = j != NULL;
    bool ours = gw_json_valid(b->p, b->len);

    json_decref(j);
    if (ours != theirs && known_divergence(b->p, b->len, theirs, &jerr)) {
        n_diverged++;
        return;
    }
    if (ours != theirs) {
        char hex[3 * 200 + 1] = "";

        for (size_t i = 0; i < b->len && i < 200; i++)
            snprintf(hex + 3 * i, 4, "%02x ", (unsigned char)b->p[i]);
        ck_abort_msg("disagree on %zu bytes (ours %d, jansson %d: %s): %s", b->len, ours, theirs,
                     theirs ? "ok" : jerr.text, hex);
    }
    if (ours)
        n_valid++;
    else
        n_invalid++;
}

START_TEST(differential)
{
    static struct buf b;

    for (int i = 0; i < 3000; i++) {
        b.len = 0;
        gen_value(&b, 0);
        compare(&b);
        ck_assert_msg(gw_json_valid(b.p, b.len), "generated value rejected: %.*s", (int)b.len, b.p);
    }
    for (int i = 0; i < 8000; i++) {
        b.len = 0;
        gen_value(&b, 0);
        for (size_t k = 1 + rn(3); k > 0; k--)
            mutate(&b);
        compare(&b);
    }
    for (int i = 0; i < 3000; i++) {
        b.len = 0;
        gen_soup(&b);
        compare(&b);
    }
    printf("differential: %d valid, %d invalid, %d known divergences\n", n_valid, n_invalid,
           n_diverged);
    /* The comparison only means something if both outcomes were common. */
    ck_assert_int_gt(n_valid, 3500);
    ck_assert_int_gt(n_invalid, 4000);
    ck_assert_int_lt(n_diverged, 100);
}
END_TEST

/* Mixed objects and arrays down to the cap: the one-bit-per-level stack
 * must match each closer to its opener at every depth. */
START_TEST(depth_explicit)
{
    size_t n = GW_JSON_DEPTH_CAP + 1;
    char *s = malloc(8 * n);
    size_t len = 0;

    for (size_t d = 0; d < n; d++)
        len += (size_t)sprintf(s + len, d % 3 ? "[" : "{\"k\":");
    s[len++] = '0';
    for (size_t d = n; d-- > 0;)
        s[len++] = d % 3 ? ']' : '}';
    ck_assert(!gw_json_valid_depth(s, len, GW_JSON_DEPTH_CAP + 100));
    ck_assert(!gw_json_valid(s, len));
    /* Drop the outermost level: exactly the cap deep. */
    ck_assert(gw_json_valid_depth(s + 5, len - 6, GW_JSON_DEPTH_CAP));
    ck_assert(!gw_json_valid_depth(s + 5, len - 6, GW_JSON_DEPTH_CAP - 1));
    s[len - 2] = '}'; /* a mismatched closer deep inside */
    ck_assert(!gw_json_valid_depth(s + 5, len - 6, GW_JSON_DEPTH_CAP));
    free(s);
}
END_TEST

static void expect_member(const char *text, const char *key, const char *want)
{
    const char *v = NULL;
    size_t vlen = 0;
    bool found;

    ck_assert_msg(gw_json_valid(text, strlen(text)), "%s is not valid", text);
    found = gw_json_member(text, strlen(text), key, &v, &vlen);
    ck_assert_msg(found == (want != NULL), "%s: found %d", text, found);
    if (want)
        ck_assert_msg(vlen == strlen(want) && memcmp(v, want, vlen) == 0, "%s: got %.*s", text,
                      (int)vlen, v);
}

START_TEST(member)
{
    expect_member("{\"id\":5}", "id", "5");
    expect_member(" { \"a\" : [1,{\"id\":2}] , \"id\" : -7 } ", "id", "-7");
    expect_member("{\"id\":1,\"id\":{\"x\":[]}}", "id", "{\"x\":[]}");
    expect_member("{\"\\u0069\\u0064\":\"s\\\"}\"}", "id", "\"s\\\"}\"");
    expect_member("{\"x\":\"\\\"id\\\":1\",\"n\":true}", "id", NULL);
    expect_member("{\"i\\nd\":1,\"idd\":2,\"i\":3}", "id", NULL);
    expect_member("{\"\\u00e9\":1}", "id", NULL);
    expect_member("{}", "id", NULL);
    expect_member("[{\"id\":1}]", "id", NULL);
    expect_member("\"id\"", "id", NULL);
    expect_member("{\"n\":1e400,\"id\":null}", "id", "null");
}
END_TEST

START_TEST(escape)
{
    char out[6 * 32 + 2];
    size_t n;
    char all[32];

    n = gw_json_escape(out, "", 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "\"\"", 2);
    n = gw_json_escape(out, "a\"b\\c/", 6);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(out, "\"a\\\"b\\\\c/\"", 10);
    n = gw_json_escape(out, "\b\f\n\r\t", 5);
    ck_assert_mem_eq(out, "\"\\b\\f\\n\\r\\t\"", n);
    ck_assert_uint_eq(n, 12);
    for (int i = 0; i < 32; i++)
        all[i] = (char)i;
    n = gw_json_escape(out, all, 32);
    ck_assert_uint_eq(n, 2 + 5 * 2 + 27 * 6);
    ck_assert_mem_eq(out, "\"\\u0000\\u0001", 13);
    ck_assert_mem_eq(out + n - 7, "\\u001f\"", 7);
    /* The bound in the contract: 6 bytes per input byte plus quotes. */
    memset(all, '\xff', 32);
    ck_assert_uint_eq(gw_json_escape(out, all, 32), 6 * 32 + 2);
}
END_TEST

/* Each maximal ill-formed subpart becomes one U+FFFD; well-formed multi-byte
 * characters pass through unescaped. */
START_TEST(escape_invalid_utf8)
{
    char out[64];
    size_t n;

    n = gw_json_escape(out, "\xc3\xa9", 2);
    ck_assert_mem_eq(out, "\"\xc3\xa9\"", n);
    ck_assert_uint_eq(n, 4);
    n = gw_json_escape(out, "a\xff" "b", 3);
    ck_assert_mem_eq(out, "\"a\\ufffdb\"", n);
    ck_assert_uint_eq(n, 10);
    n = gw_json_escape(out, "\xe2\x82", 2); /* truncated: one subpart */
    ck_assert_mem_eq(out, "\"\\ufffd\"", n);
    ck_assert_uint_eq(n, 8);
    n = gw_json_escape(out, "\xed\xa0\x80", 3); /* a surrogate: three */
    ck_assert_uint_eq(n, 2 + 3 * 6);
}
END_TEST

/* gw_json_escape_len must predict gw_json_escape to the byte: frames are
 * sized with it and then filled. */
START_TEST(escape_len_matches)
{
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        { "", 0 },
        { "plain", 5 },
        { "\"\\/", 3 },
        { "\b\f\n\r\t", 5 },
        { "\0\x01\x1f\x7f", 4 },
        { "\xc3\xa9\xe2\x82\xac", 5 },
        { "\xf0\x9f\x98\x80", 4 },
        { "\xff\xfe", 2 },
        { "\xe2\x82", 2 },
        { "\xed\xa0\x80", 3 },
        { "\xf4\x90\x80\x80", 4 },
        { "\xc0\xaf", 2 },
    };
    char out[64];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t want = gw_json_escape(out, cases[i].s, cases[i].len);

        ck_assert_uint_eq(gw_json_escape_len(cases[i].s, cases[i].len), want);
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("valid");

    tcase_add_test(tc, valid_cases);
    tcase_add_test(tc, invalid_cases);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, depth_explicit);
    tcase_add_test(tc, member);
    tcase_add_test(tc, differential);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("escape");
    tcase_add_test(tc, escape);
    tcase_add_test(tc, escape_invalid_utf8);
    tcase_add_test(tc, escape_len_matches);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return gw_run_suite(json_suite());
}
