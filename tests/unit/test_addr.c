/* Address parsers: listen addresses (host, [v6], :port) and Redis URLs
 * (redis://, unix://, redis+sentinel://, user info, percent-encoding, db), good and bad. */
#include <errno.h>
#include <strings.h>

#include "addr.h"
#include "unit.h"

static char err[256];

static void listen_ok(const char *s, const char *host, int port)
{
    char *h = NULL;
    int p = 0;

    ck_assert_msg(gw_addr_parse_listen(s, &h, &p, err, sizeof err) == 0, "%s: %s", s, err);
    ck_assert_str_eq(h, host);
    ck_assert_int_eq(p, port);
    free(h);
}

static void listen_bad(const char *s)
{
    char *h = (char *)"untouched";
    int p = 0;

    err[0] = '\0';
    ck_assert_msg(gw_addr_parse_listen(s, &h, &p, err, sizeof err) == -EINVAL, "%s accepted", s);
    ck_assert_ptr_null(h);
    ck_assert(err[0] != '\0');
}

START_TEST(listen)
{
    listen_ok("0.0.0.0:8080", "0.0.0.0", 8080);
    listen_ok(":9000", "0.0.0.0", 9000);
    listen_ok("127.0.0.1:1", "127.0.0.1", 1);
    listen_ok("localhost:65535", "localhost", 65535);
    listen_ok("[::1]:8080", "::1", 8080);
    listen_ok("[::]:80", "::", 80);
    listen_bad("localhost");
    listen_bad("::1:80");
    listen_bad("host:0");
    listen_bad("host:65536");
    listen_bad("host:");
    listen_bad("host:80x");
    listen_bad("[::1]");
    listen_bad("[::1]80");
    listen_bad("[]:80");
    listen_bad("[::1:80");
    listen_bad("");
}
END_TEST

static struct gw_redis_addr addr;

static void url_ok(const char *url, const char *host, int port, const char *path,
                   const char *user, const char *pass, int db)
{
    ck_assert_msg(gw_addr_parse_redis(url, &addr, err, sizeof err) == 0, "%s: %s", url, err);
    if (host)
        ck_assert_str_eq(addr.host, host);
    else
        ck_assert_ptr_null(addr.host);
    ck_assert_int_eq(addr.port, port);
    if (path)
        ck_assert_str_eq(addr.unix_path, path);
    else
        ck_assert_ptr_null(addr.unix_path);
    if (user)
        ck_assert_str_eq(addr.username, user);
    else
        ck_assert_ptr_null(addr.username);
    if (pass)
        ck_assert_str_eq(addr.password, pass);
    else
        ck_assert_ptr_null(addr.password);
    ck_assert_int_eq(addr.db, db);
    ck_assert(addr.tls == (strncasecmp(url, "rediss://", 9) == 0));
    ck_assert_ptr_null(addr.master_name);
    ck_assert_int_eq(addr.nsentinels, 0);
    gw_addr_redis_deinit(&addr);
}

static void url_bad(const char *url, const char *msg)
{
    err[0] = '\0';
    ck_assert_msg(gw_addr_parse_redis(url, &addr, err, sizeof err) == -EINVAL, "%s accepted", url);
    ck_assert_ptr_null(addr.host);
    ck_assert_ptr_null(addr.password);
    ck_assert_ptr_null(addr.master_name);
    ck_assert_ptr_null(addr.sentinels);
    if (msg)
        ck_assert_str_eq(err, msg);
    ck_assert(err[0] != '\0');
    /* Never echo a secret into an error message. */
    ck_assert_ptr_null(strstr(err, "hunter2"));
}

START_TEST(redis_urls)
{
    url_ok("redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0);
    url_ok("redis://localhost/", "localhost", 6379, NULL, NULL, NULL, 0);
    url_ok("redis://h:6380/2", "h", 6380, NULL, NULL, NULL, 2);
    url_ok("redis://:secret@h", "h", 6379, NULL, NULL, "secret", 0);
    url_ok("redis://user:pa%40ss%3a@h:1/3", "h", 1, NULL, "user", "pa@ss:", 3);
    url_ok("redis://user:p@ss@h", "h", 6379, NULL, "user", "p@ss", 0);
    url_ok("redis://[::1]:7000/1", "::1", 7000, NULL, NULL, NULL, 1);
    url_ok("redis://[::1]", "::1", 6379, NULL, NULL, NULL, 0);
    url_ok("rediss://h:6380", "h", 6380, NULL, NULL, NULL, 0);
    url_ok("REDISS://alice:hunter2@redis.internal/4", "redis.internal", 6379, NULL, "alice", "hunter2", 4);
    url_ok("REDIS://H", "H", 6379, NULL, NULL, NULL, 0);
    url_ok("redis://10.0.0.1:6379/15", "10.0.0.1", 6379, NULL, NULL, NULL, 15);
    url_ok("unix:///tmp/r.sock", NULL, 0, "/tmp/r.sock", NULL, NULL, 0);
    url_ok("unix:///tmp/r.sock?db=2", NULL, 0, "/tmp/r.sock", NULL, NULL, 2);
    url_ok("unix://:pw@/var/run/redis.sock", NULL, 0, "/var/run/redis.sock", NULL, "pw", 0);

    url_bad("rediss://", "empty host in the Redis URL");
    url_bad("redis://", "empty host in the Redis URL");
    url_bad("redis://:6379", "empty host in the Redis URL");
    url_bad("redis://:hunter2@/0", "empty host in the Redis URL");
    url_bad("redis://h:", NULL);
    url_bad("redis://h:0", NULL);
    url_bad("redis://h:65536", NULL);
    url_bad("redis://h:abc", NULL);
    url_bad("redis://h:-1", NULL);
    url_bad("redis://h/x", NULL);
    url_bad("redis://h/-1", NULL);
    url_bad("redis://h/1/2", NULL);
    url_bad("redis://h?db=1", NULL);
    url_bad("redis://user@h", NULL);
    url_bad("redis://user:@h", "a Redis user name needs a password");
    url_bad("redis://u%zz:hunter2@h", NULL);
    url_bad("redis://:hunter2%0@h", NULL);
    url_bad("redis://:hunter2%00@h", NULL);
    url_bad("redis://:hunter2@h:bad", NULL);
    url_bad("redis://[::1", NULL);
    url_bad("redis://[::1]x", NULL);
    url_bad("redis://[]:1", NULL);
    url_bad("http://h", "a Redis URL starts with redis://, rediss://, redis+sentinel://, rediss+sentinel:// or unix://");
    url_bad("h:6379", NULL);
    url_bad("", NULL);
    url_bad("unix://", NULL);
    url_bad("unix://tmp/x", NULL);
    url_bad("unix:///", NULL);
    url_bad("unix:///x?foo=1", NULL);
    url_bad("unix:///x?db=a", NULL);
    url_bad("unix:///x?db=", NULL);
}
END_TEST

START_TEST(sentinel_urls)
{
    ck_assert_int_eq(gw_addr_parse_redis("redis+sentinel://s1,s2:26380,[::1]:7/mymaster?db=3", &addr, err,
                                         sizeof err), 0);
    ck_assert_ptr_null(addr.host);
    ck_assert_ptr_null(addr.unix_path);
    ck_assert_str_eq(addr.master_name, "mymaster");
    ck_assert_int_eq(addr.nsentinels, 3);
    ck_assert_str_eq(addr.sentinels[0].host, "s1");
    ck_assert_int_eq(addr.sentinels[0].port, 26379);
    ck_assert_str_eq(addr.sentinels[1].host, "s2");
    ck_assert_int_eq(addr.sentinels[1].port, 26380);
    ck_assert_str_eq(addr.sentinels[2].host, "::1");
    ck_assert_int_eq(addr.sentinels[2].port, 7);
    ck_assert_int_eq(addr.db, 3);
    ck_assert(!addr.tls);
    ck_assert_ptr_null(addr.password);
    gw_addr_redis_deinit(&addr);
    ck_assert_ptr_null(addr.sentinels);

    /* The user info is the master's AUTH; TLS covers Sentinels and master. */
    ck_assert_int_eq(gw_addr_parse_redis("REDISS+SENTINEL://alice:p%40w@10.0.0.1:1/m-1.x", &addr, err,
                                         sizeof err), 0);
    ck_assert(addr.tls);
    ck_assert_str_eq(addr.username, "alice");
    ck_assert_str_eq(addr.password, "p@w");
    ck_assert_int_eq(addr.nsentinels, 1);
    ck_assert_str_eq(addr.master_name, "m-1.x");
    ck_assert_int_eq(addr.db, 0);
    gw_addr_redis_deinit(&addr);

    url_bad("redis+sentinel://", "no Sentinel address in the Redis URL");
    url_bad("redis+sentinel:///m", "no Sentinel address in the Redis URL");
    url_bad("redis+sentinel://s1", "expected /<master-name> after the Sentinel list");
    url_bad("redis+sentinel://s1/", NULL);
    url_bad("redis+sentinel://s1,/m", "empty host in the Sentinel list");
    url_bad("redis+sentinel://s1,,s2/m", "empty host in the Sentinel list");
    url_bad("redis+sentinel://:hunter2@s1:0/m", NULL);
    url_bad("redis+sentinel://s1:99999/m", NULL);
    url_bad("redis+sentinel://[::1/m", NULL);
    url_bad("redis+sentinel://s1/m?db=x", NULL);
    url_bad("redis+sentinel://s1/m?foo=1", NULL);
    url_bad("redis+sentinel://s1/m x", NULL);
    url_bad("redis+sentinel://s1/m/2", NULL);
    url_bad("redis+sentinel://:hunter2@s1,s2", NULL);
    url_bad("redis+sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", "more than 16 Sentinels in the Redis URL");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");

    tcase_add_test(tc, listen);
    tcase_add_test(tc, redis_urls);
    tcase_add_test(tc, sentinel_urls);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
