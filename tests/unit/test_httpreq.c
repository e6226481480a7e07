/* The request-head judge (common/httpreq.[ch]): what lws would rewrite or two
 * parsers could frame two ways is refused, the rest is read exactly. */
#include <errno.h>

#include "httpreq.h"
#include "unit.h"

static int parse(const char *s, struct gw_httpreq *r)
{
    return gw_httpreq_parse(s, strlen(s), r);
}

#define H11 " HTTP/1.1\r\nHost: x\r\n"

START_TEST(accepts_and_reads)
{
    struct gw_httpreq r;
    const char *s = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /x HTTP/1.1\r\n";

    ck_assert_int_eq(parse(s, &r), 1);
    ck_assert_uint_eq(r.head_len, strlen("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    ck_assert_int_eq(r.method, GW_HTTPREQ_GET);
    ck_assert_uint_eq(r.path_len, 8);
    ck_assert(memcmp(r.path, "/healthz", 8) == 0);
    ck_assert(!r.has_length && !r.chunked && !r.upgrade && !r.has_query);

    ck_assert_int_eq(parse("POST /api/publish" H11 "Content-Length: 42\r\nAuthorization: Bearer k\r\n\r\n{", &r), 1);
    ck_assert_int_eq(r.method, GW_HTTPREQ_POST);
    ck_assert(r.has_length);
    ck_assert_uint_eq(r.length, 42);

    ck_assert_int_eq(parse("GET /ws?token=a.b%2Fc&x=1" H11 "Upgrade:  WebSocket \r\nConnection: Upgrade\r\n\r\n", &r), 1);
    ck_assert(r.upgrade && r.has_query);
    ck_assert_uint_eq(r.path_len, 3);

    ck_assert_int_eq(parse("GET / HTTP/1.0\r\n\r\n", &r), 1); /* 1.0 needs no Host */
    ck_assert_int_eq(r.minor, 0);
    ck_assert_int_eq(parse("BREW /pot" H11 "\r\n", &r), 1);
    ck_assert_int_eq(r.method, GW_HTTPREQ_OTHER);
}
END_TEST

START_TEST(incomplete)
{
    struct gw_httpreq r;

    ck_assert_int_eq(parse("", &r), 0);
    ck_assert_int_eq(parse("GET /healthz HT", &r), 0);
    ck_assert_int_eq(parse("GET /healthz HTTP/1.1\r\nHost: x\r\n", &r), 0);
    ck_assert_int_eq(parse("GET /healthz HTTP/1.1\r\nHost: x\r\n\r", &r), 0);
}
END_TEST

static void refused(const char *s, int status)
{
    struct gw_httpreq r;
    ck_assert_msg(parse(s, &r) == -EINVAL && r.status == status && r.reason, "%s: got status %d", s, r.status);
}

START_TEST(non_canonical_paths)
{
    /* lws 4.1.6 routes each of these to /api/publish (issue 15, finding 8). */
    refused("POST /api%2fpublish" H11 "\r\n", 400);
    refused("POST /api%2Fpublish" H11 "\r\n", 400);
    refused("POST //api/publish" H11 "\r\n", 400);
    refused("POST /x/../api/publish" H11 "\r\n", 400);
    refused("POST /./api/publish" H11 "\r\n", 400);
    refused("POST /api/publish/." H11 "\r\n", 400);
    refused("POST /api/publish/.." H11 "\r\n", 400);
    refused("POST /api/publish;x" H11 "\r\n", 400);
    refused("POST /api/publish&x" H11 "\r\n", 400);
    refused("GET /healthz/" "/" H11 "\r\n", 400);
    refused("GET \\healthz" H11 "\r\n", 400);
    refused("GET healthz" H11 "\r\n", 400);
    refused("GET http://x/healthz" H11 "\r\n", 400);
    refused("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    refused("GET /a#b" H11 "\r\n", 400);
    refused("GET /\xc3\xa9" H11 "\r\n", 400);
    ck_assert(gw_httpreq_path_canonical("/", 1));
    ck_assert(gw_httpreq_path_canonical("/a/.b/..c/...", 13));
    ck_assert(!gw_httpreq_path_canonical("/a/", 3));
    ck_assert(!gw_httpreq_path_canonical("", 0));
}
END_TEST

START_TEST(framing)
{
    refused("POST /api/publish" H11 "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: 3\r\nContent-Length: 3\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: 3, 3\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: +3\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: -1\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: \r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length: 99999999999999999999\r\n\r\n", 400);
    refused("POST /api/publish" H11 "Content-Length : 3\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\nA: b\nc\r\n\r\n", 400);
    refused("GET / HTTP/1.1\nHost: x\n\n", 400);
    refused("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
    refused("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 400);
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket, h2c\r\n\r\n", 400);
    refused("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n\r\n", 400);
    refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400);
    refused("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400);
    struct gw_httpreq r;
    ck_assert_int_eq(gw_httpreq_parse("GET / HTT\0", 10, &r), -EINVAL);
    ck_assert_int_eq(parse("POST /api/publish" H11 "Transfer-Encoding: chunked\r\n\r\n", &r), 1);
    ck_assert(r.chunked && !r.has_length);
}
END_TEST

START_TEST(request_line_and_limits)
{
    char big[GW_HTTPREQ_HEAD_MAX + 64];
    struct gw_httpreq r;

    refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400);
    refused("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505);
    refused("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    refused("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
    refused("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    refused("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);

    /* A target over the limit is 414; a head over the limit is 431 (also without a line end). */
    memset(big, 0, sizeof big);
    strcpy(big, "GET /");
    memset(big + 5, 'a', GW_HTTPREQ_TARGET_MAX);
    strcat(big, " HTTP/1.1\r\nHost: x\r\n\r\n");
    refused(big, 414);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    big[sizeof big - 1] = 0;
    refused(big, 431);
    ck_assert_int_eq(gw_httpreq_parse(big, GW_HTTPREQ_HEAD_MAX - 1, &r), 0);

    char many[4096] = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < GW_HTTPREQ_FIELDS_MAX; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    refused(many, 431);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("httpreq");
    TCase *tc = tcase_create("httpreq");

    tcase_add_test(tc, accepts_and_reads);
    tcase_add_test(tc, incomplete);
    tcase_add_test(tc, non_canonical_paths);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, request_line_and_limits);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
