/* The query-string walk (common/query.[ch]): pairs in order as slices of the
 * text, the first '=' splitting, and where an empty or '='-less part ends it. */
#include <errno.h>
#include <stdio.h>

#include "query.h"
#include "unit.h"

/* Walks q and writes "name|value;" per pair into out, then "!" for a part
 * without '='. Returns the last gw_query_next result. */
static int walk(const char *q, size_t len, char *out, size_t outlen)
{
    struct gw_query it;
    const char *n, *v;
    size_t nlen, vlen, o = 0;
    int rc;

    out[0] = '\0';
    gw_query_init(&it, q, len);
    while ((rc = gw_query_next(&it, &n, &nlen, &v, &vlen)) > 0) {
        /* Slices point into q itself: nothing was copied. */
        ck_assert(n >= q && n + nlen <= q + len && v >= q && v + vlen <= q + len);
        o += (size_t)snprintf(out + o, outlen - o, "%.*s|%.*s;", (int)nlen, n, (int)vlen, v);
    }
    if (rc < 0)
        snprintf(out + o, outlen - o, "!");
    return rc;
}

#define WALK(s) walk((s), strlen(s), out, sizeof out)

START_TEST(pairs)
{
    char out[256];

    ck_assert_int_eq(WALK("channel=room:1&limit=3"), 0);
    ck_assert_str_eq(out, "channel|room:1;limit|3;");
    ck_assert_int_eq(WALK("a=x=y"), 0); /* the first '=' splits */
    ck_assert_str_eq(out, "a|x=y;");
    ck_assert_int_eq(WALK("=v&n="), 0); /* empty name, empty value */
    ck_assert_str_eq(out, "|v;n|;");
    ck_assert_int_eq(WALK("a=1&"), 0); /* a trailing '&' ends the walk */
    ck_assert_str_eq(out, "a|1;");
    ck_assert_int_eq(WALK(""), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(walk(NULL, 0, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    /* Only len bytes are read: the walk stops inside the text. */
    ck_assert_int_eq(walk("a=1&b=2", 3, out, sizeof out), 0);
    ck_assert_str_eq(out, "a|1;");
}
END_TEST

START_TEST(parts_without_eq)
{
    char out[256];

    ck_assert_int_eq(WALK("a=1&b&c=3"), -EINVAL); /* pairs before it came, none after */
    ck_assert_str_eq(out, "a|1;!");
    ck_assert_int_eq(WALK("&a=1"), -EINVAL);
    ck_assert_str_eq(out, "!");
    ck_assert_int_eq(WALK("a=1&&b=2"), -EINVAL);
    ck_assert_str_eq(out, "a|1;!");
    ck_assert_int_eq(WALK("&"), -EINVAL);
    ck_assert_int_eq(WALK("channel"), -EINVAL);
    /* An '=' after the '&' belongs to the next part, not to this one. */
    ck_assert_int_eq(WALK("a&b=1"), -EINVAL);
    ck_assert_str_eq(out, "!");

    /* Once it failed, the walk stays ended. */
    struct gw_query it;
    const char *n, *v;
    size_t nlen, vlen;
    gw_query_init(&it, "x&y=1", 5);
    ck_assert_int_eq(gw_query_next(&it, &n, &nlen, &v, &vlen), -EINVAL);
    ck_assert_int_eq(gw_query_next(&it, &n, &nlen, &v, &vlen), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("query");

    tcase_add_test(tc, pairs);
    tcase_add_test(tc, parts_without_eq);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
