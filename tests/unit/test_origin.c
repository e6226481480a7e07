/* The Origin allow-list (common/origin.[ch]): the default same-host rule,
 * exact and wildcard entries, default ports, and every malformed form a
 * hostile client or a careless operator might try. */
#include <errno.h>

#include "origin.h"
#include "unit.h"

static struct gw_origin_list list;
static char err[256];

static void setup(void)
{
    memset(&list, 0, sizeof list);
    err[0] = '\0';
}

static void teardown(void)
{
    gw_origin_list_deinit(&list);
}

static void use(const char *text)
{
    ck_assert_msg(gw_origin_list_parse(&list, text, err, sizeof err) == 0, "\"%s\": %s", text, err);
}

static bool allowed(const char *origin, const char *host)
{
    return gw_origin_allowed(&list, origin, origin ? strlen(origin) : 0, host, host ? strlen(host) : 0);
}

static const char *show(const char *header)
{
    return header ? header : "(absent)";
}

#define YES(o, h) ck_assert_msg(allowed(o, h), "Origin %s with Host %s should be allowed", show(o), show(h))
#define NO(o, h) ck_assert_msg(!allowed(o, h), "Origin %s with Host %s should be refused", show(o), show(h))

START_TEST(default_same_host)
{
    use("");
    ck_assert_uint_eq(list.count, 0);
    ck_assert(allowed(NULL, NULL)); /* no Origin: not a browser */
    ck_assert(allowed(NULL, "example.com"));
    YES("http://127.0.0.1:8080", "127.0.0.1:8080");
    YES("https://Example.COM", "example.com");
    YES("HTTPS://example.com", "EXAMPLE.com");
    YES("https://example.com", "example.com:443");
    YES("http://example.com", "example.com:80");
    YES("http://example.com:80", "example.com");
    YES("https://example.com:443", "example.com");
    YES("http://[::1]:8080", "[::1]:8080");
    YES("http://[::1]", "[::1]");
    /* A Host without a port accepts the default port of the Origin's scheme
     * only: behind a TLS proxy Host says example.com, the page https://. */
    NO("https://example.com:8443", "example.com");
    NO("http://example.com:8080", "example.com");
    NO("http://127.0.0.1:8081", "127.0.0.1:8080");
    NO("http://127.0.0.1", "127.0.0.1:8080");
    NO("https://evil.example", "example.com");
    NO("https://example.com.evil.example", "example.com");
    NO("https://sub.example.com", "example.com");
    NO("http://[::2]:8080", "[::1]:8080");
    /* No or malformed Host: nothing to compare with. */
    NO("https://example.com", NULL);
    NO("https://example.com", "");
    NO("https://example.com", "example.com/");
    NO("https://example.com", "http://example.com");
    NO("https://example.com", "example.com:");
    NO("https://example.com", "example.com:0");
    NO("https://example.com", "example.com:65536");
}
END_TEST

START_TEST(malformed_origins)
{
    static const char *const bad[] = {
        "", "null", "example.com", "//example.com", "ftp://example.com", "ws://example.com",
        "wss://example.com", "http:/example.com", "http://", "http://:80", "http://example.com/",
        "http://example.com/app", "http://example.com?x", "http://example.com#x",
        "http://user@example.com", "http://user:pw@example.com", "http://example.com:",
        "http://example.com:0", "http://example.com:65536", "http://example.com:99999999999",
        "http://example.com:8o", "http://example.com:80:80", "http://exa mple.com",
        "http://example..com", "http://.example.com", "http://example.com.", "http://exa_mple.com",
        "http://*.example.com", "http://[::1", "http://[]", "http://[::1]x", "http://[fe80::1%25eth0]",
        "http://caf\xc3\xa9.example", "http://example.com,http://example.com", " http://example.com",
        "http://example.com ", "http://ex\tample.com",
    };
    char big[GW_ORIGIN_MAX + 20];

    /* Each malformed Origin is refused under both rules, even though
     * "example.com" is its host and the list would allow it. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            use("*, http://example.com, *.example.com");
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            ck_assert_msg(!allowed(bad[i], "example.com"), "pass %d: \"%s\" should be refused", pass,
                          bad[i]);
    }
    ck_assert(allowed("http://example.com", "example.com"));
    /* Over the length limit, even if it is otherwise well formed. */
    strcpy(big, "http://");
    memset(big + 7, 'a', GW_ORIGIN_MAX);
    big[GW_ORIGIN_MAX + 7] = '\0';
    ck_assert(!allowed(big, "example.com"));
    /* A NUL inside the header bytes is not the end of the value. */
    ck_assert(!gw_origin_allowed(&list, "http://example.com\0x", 20, "example.com", 11));
}
END_TEST

START_TEST(exact_entries)
{
    use("https://app.example.com, http://localhost:3000,https://[2001:db8::1]:8443");
    ck_assert_uint_eq(list.count, 3);
    YES("https://app.example.com", NULL);
    YES("https://APP.example.com:443", "other.host");
    YES("http://localhost:3000", "127.0.0.1:8080");
    YES("https://[2001:DB8::1]:8443", NULL);
    NO("http://app.example.com", NULL); /* scheme is part of the origin */
    NO("https://app.example.com:8443", NULL);
    NO("https://x.app.example.com", NULL);
    NO("https://example.com", NULL);
    NO("http://localhost", NULL);
    NO("http://localhost:3001", NULL);
    NO("https://[2001:db8::1]", NULL);
    /* With a list, the same-host rule no longer applies. */
    NO("http://127.0.0.1:8080", "127.0.0.1:8080");
    YES(NULL, "127.0.0.1:8080");
}
END_TEST

START_TEST(wildcard_entries)
{
    use("https://*.example.com");
    YES("https://app.example.com", NULL);
    YES("https://a.b.example.com", NULL);
    YES("https://A.Example.Com", NULL);
    NO("https://example.com", NULL); /* the apex is not a subdomain */
    NO("http://app.example.com", NULL);
    NO("https://app.example.com:8443", NULL);
    NO("https://appexample.com", NULL);
    NO("https://app.example.com.evil.example", NULL);
    NO("https://evil-example.com", NULL);
    NO("https://.example.com", NULL);

    /* Without a scheme: http and https, each on its default port. */
    use("*.example.com");
    YES("https://app.example.com", NULL);
    YES("http://app.example.com", NULL);
    YES("http://app.example.com:80", NULL);
    NO("https://app.example.com:80", NULL);
    NO("http://app.example.com:8080", NULL);
    NO("https://example.com", NULL);

    /* A port applies to either scheme. */
    use("*.example.com:8443, example.org");
    YES("https://app.example.com:8443", NULL);
    YES("http://app.example.com:8443", NULL);
    NO("https://app.example.com", NULL);
    YES("https://example.org", NULL);
    YES("http://example.org", NULL);
    NO("https://www.example.org", NULL);

    use("*");
    YES("https://anything.example", NULL);
    YES("http://[::1]:1", NULL);
    NO("null", NULL);
}
END_TEST

START_TEST(list_errors)
{
    static const char *const bad[] = {
        ",", "a,", ",a", "a,,b", "a, ,b", "https://app.example.com/", "https://app.example.com/x",
        "ftp://x", "*.", "*.*.example.com", "example.*", "*example.com", "https://*",
        "*.[::1]", "http://x:0", "http://x:70000", "http://x:", "a b", "**",
        "https://user@x", "null", "NULL",
    };
    char big[GW_ORIGIN_MAX + 20];

    use("http://kept.example");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_msg(gw_origin_list_parse(&list, bad[i], err, sizeof err) == -EINVAL,
                      "\"%s\" should not parse", bad[i]);
        ck_assert_msg(err[0] != '\0', "\"%s\": no reason given", bad[i]);
        /* A failed parse leaves the list as it was. */
        ck_assert_uint_eq(list.count, 1);
        ck_assert_str_eq(list.rules[0].host, "kept.example");
    }
    ck_assert_int_eq(gw_origin_list_parse(&list, "https://app.example.com/", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "origin \"https://app.example.com/\": an origin has no path");
    ck_assert_int_eq(gw_origin_list_parse(&list, "a,,b", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "empty entry in the origin list");
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(gw_origin_list_parse(&list, big, err, sizeof err), -EINVAL);
    /* Spaces only: the empty list, i.e. back to the same-host rule. */
    use("  ");
    ck_assert_uint_eq(list.count, 0);
    use(" https://a.example ,\t*.b.example ");
    ck_assert_uint_eq(list.count, 2);
    ck_assert_str_eq(list.rules[1].host, "b.example");
    ck_assert(list.rules[1].subdomains);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("origin");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, default_same_host);
    tcase_add_test(tc, malformed_origins);
    tcase_add_test(tc, exact_entries);
    tcase_add_test(tc, wildcard_entries);
    tcase_add_test(tc, list_errors);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
