/* gateway/rconn.c against a real redis-server (REDIS_SERVER, started here
 * on a free loopback port with an ACL user and a password, stopped by its
 * pid): setup, pipelining, pushes interleaved with replies, timeouts and the
 * failures an operator would see. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "rconn.h"
#include "unit.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];

static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static bool can_connect(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void start_redis(void)
{
    const char *bin = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
    char port[16];

    snprintf(redis_dir, sizeof redis_dir, "/tmp/wsgate-rconn-XXXXXX");
    if (!mkdtemp(redis_dir))
        abort();
    redis_port = free_port();
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives a test that aborted */
        execlp(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               redis_dir, "--requirepass", "secret", "--user", "alice", "on", ">wonder", "~*", "&*", "+@all", "--enable-debug-command",
               "local", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !can_connect(redis_port); i++)
        usleep(10000);
    if (!can_connect(redis_port)) {
        fprintf(stderr, "redis-server did not start\n");
        abort();
    }
}

static void stop_redis(void)
{
    char cmd[128];
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", redis_dir);
    (void)!system(cmd);
}

struct fixture {
    struct event_base *base;
    int ready, fails, messages, smessages, confirms;
    const char *fail_why;
    long long last_seq; /* messages arrive in order */
    bool in_order;
};

static void on_ready(void *ctx, struct gw_rconn *c)
{
    ((struct fixture *)ctx)->ready++;
}

static void on_fail(void *ctx, struct gw_rconn *c, const char *why)
{
    struct fixture *f = ctx;
    f->fails++;
    f->fail_why = why;
}

static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *r)
{
    struct fixture *f = ctx;
    if (kind == GW_RCONN_MESSAGE || kind == GW_RCONN_SMESSAGE) {
        long long seq = atoll(r->element[2]->str);
        if (seq != f->last_seq + 1)
            f->in_order = false;
        f->last_seq = seq;
        if (kind == GW_RCONN_MESSAGE)
            f->messages++;
        else
            f->smessages++;
    } else {
        f->confirms++;
    }
}

static const struct gw_rconn_ops ops = { on_ready, on_fail, on_push };

struct count {
    int calls, errors, nulls;
    long long integer;
    char str[512];
};

static void on_reply(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct count *n = privdata;
    n->calls++;
    if (!r) {
        n->nulls++;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR)
        n->errors++;
    if (r->type == REDIS_REPLY_INTEGER)
        n->integer = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        snprintf(n->str, sizeof n->str, "%s", r->str);
}

static void pump(struct fixture *f, int ms, const int *until, int want)
{
    int64_t end = gw_now_us() + (int64_t)ms * 1000;
    while (gw_now_us() < end && !(until && *until >= want))
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
}

static struct gw_rconn *open_conn(struct fixture *f, const char *user, const char *pass, int db, int port)
{
    struct gw_rconn_opts o = { .name = "it", .username = user, .password = pass, .db = db,
                               .connect_timeout_ms = 2000, .max_out_bytes = 8 << 20, .max_in_bytes = 8 << 20 };
    struct gw_rconn *c = gw_rconn_new(f->base, &o, &ops, f);
    ck_assert_int_eq(gw_rconn_connect(c, "127.0.0.1", port, NULL), 0);
    return c;
}

static int cmd3(struct gw_rconn *c, const char *a, const char *b, const char *d, struct count *n, int timeout_ms)
{
    const char *argv[] = { a, b, d };
    size_t lens[] = { strlen(a), b ? strlen(b) : 0, d ? strlen(d) : 0 };
    return gw_rconn_command(c, b ? (d ? 3 : 2) : 1, argv, lens, timeout_ms, on_reply, n);
}

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    f->in_order = true;
}

START_TEST(test_setup_and_pipeline)
{
    struct fixture f;
    struct count set = { 0 }, get = { 0 }, incr = { 0 }, db = { 0 };
    fixture_init(&f);
    struct gw_rconn *c = open_conn(&f, "alice", "wonder", 2, redis_port);
    /* Issued before the connection is up: they follow AUTH and SELECT. */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(cmd3(c, "INCR", "n", NULL, &incr, 2000), 0);
    ck_assert_int_eq(cmd3(c, "SET", "k", "v", &set, 2000), 0);
    ck_assert_int_eq(cmd3(c, "GET", "k", NULL, &get, 2000), 0);
    ck_assert_int_eq(cmd3(c, "CLIENT", "INFO", NULL, &db, 2000), 0);
    pump(&f, 3000, &db.calls, 1);
    ck_assert_int_eq(f.ready, 1);
    ck_assert_int_eq(incr.calls, 1000);
    ck_assert_int_eq(incr.integer, 1000);
    ck_assert_str_eq(set.str, "OK");
    ck_assert_str_eq(get.str, "v");
    ck_assert_ptr_nonnull(strstr(db.str, " db=2 "));
    ck_assert_ptr_nonnull(strstr(db.str, " user=alice "));
    ck_assert_int_eq(f.fails, 0);
    gw_rconn_free(c);
    event_base_free(f.base);
}
END_TEST

START_TEST(test_pushes_with_commands)
{
    struct fixture f, fp;
    struct count sub = { 0 }, ssub = { 0 }, pings = { 0 }, pubs = { 0 };
    fixture_init(&f);
    fixture_init(&fp);
    event_base_free(fp.base);
    fp.base = f.base;
    struct gw_rconn *s = open_conn(&f, NULL, "secret", 0, redis_port);
    struct gw_rconn *p = open_conn(&fp, NULL, "secret", 0, redis_port);
    ck_assert_int_eq(cmd3(s, "SUBSCRIBE", "ch", NULL, &sub, 2000), 0);
    pump(&f, 2000, &sub.calls, 1);
    ck_assert_int_eq(sub.calls, 1);
    /* 500 messages while the subscriber keeps PINGing: every PING gets its
     * pong, every message comes in order, none is taken for an answer. */
    for (int i = 1; i <= 500; i++) {
        char seq[16];
        snprintf(seq, sizeof seq, "%d", i);
        ck_assert_int_eq(cmd3(p, "PUBLISH", "ch", seq, &pubs, 2000), 0);
        if (i % 10 == 0)
            ck_assert_int_eq(cmd3(s, "PING", NULL, NULL, &pings, 2000), 0);
        if (i % 50 == 0)
            pump(&f, 5, NULL, 0);
    }
    pump(&f, 3000, &f.messages, 500);
    pump(&f, 1000, &pings.calls, 50);
    ck_assert_int_eq(f.messages, 500);
    ck_assert(f.in_order);
    ck_assert_int_eq(pings.calls, 50);
    ck_assert_int_eq(pings.errors, 0);
    ck_assert_int_eq(pubs.calls, 500);
    /* Sharded pub/sub on the same connection (Redis 7): smessage is a push. */
    f.last_seq = 0;
    ck_assert_int_eq(cmd3(s, "SSUBSCRIBE", "sh", NULL, &ssub, 2000), 0);
    pump(&f, 2000, &ssub.calls, 1);
    ck_assert_int_eq(ssub.calls, 1);
    ck_assert_int_eq(cmd3(p, "SPUBLISH", "sh", "1", &pubs, 2000), 0);
    ck_assert_int_eq(cmd3(p, "SPUBLISH", "sh", "2", &pubs, 2000), 0);
    pump(&f, 2000, &f.smessages, 2);
    ck_assert_int_eq(f.smessages, 2);
    ck_assert(f.in_order);
    ck_assert_int_eq(f.fails + fp.fails, 0);
    gw_rconn_free(s);
    gw_rconn_free(p);
    event_base_free(f.base);
}
END_TEST

START_TEST(test_failures)
{
    struct fixture f;
    struct count a = { 0 }, slow = { 0 }, after = { 0 };
    fixture_init(&f);

    struct gw_rconn *c = open_conn(&f, NULL, "wrong", 0, redis_port);
    ck_assert_int_eq(cmd3(c, "PING", NULL, NULL, &a, 2000), 0);
    pump(&f, 2000, &f.fails, 1);
    ck_assert_str_eq(f.fail_why, "AUTH rejected");
    ck_assert_ptr_nonnull(strstr(gw_rconn_errstr(c), "WRONGPASS"));
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.nulls, 1);
    gw_rconn_free(c);

    c = open_conn(&f, NULL, "secret", 99, redis_port);
    pump(&f, 2000, &f.fails, 2);
    ck_assert_str_eq(f.fail_why, "SELECT rejected");
    gw_rconn_free(c);

    int closed = free_port();
    c = open_conn(&f, NULL, "secret", 0, closed);
    pump(&f, 2000, &f.fails, 3);
    ck_assert_str_eq(f.fail_why, "connect failed");
    ck_assert_str_eq(gw_rconn_errstr(c), "Connection refused");
    gw_rconn_free(c);

    /* Redis busy for 400 ms; the command wanted its answer in 100. */
    c = open_conn(&f, NULL, "secret", 0, redis_port);
    pump(&f, 2000, &f.ready, 1); /* Redis answers AUTH only after a sleep it was sent with */
    ck_assert_int_eq(f.ready, 1);
    ck_assert_int_eq(cmd3(c, "DEBUG", "SLEEP", "0.4", &slow, 100), 0);
    ck_assert_int_eq(cmd3(c, "PING", NULL, NULL, &after, 5000), 0);
    pump(&f, 2000, &f.fails, 4);
    ck_assert_str_eq(f.fail_why, "timed out");
    ck_assert_int_eq(slow.nulls, 1);
    ck_assert_int_eq(after.nulls, 1);
    pump(&f, 500, NULL, 0); /* the late answers arrive: nobody is called again */
    ck_assert_int_eq(slow.calls, 1);
    ck_assert_int_eq(after.calls, 1);
    ck_assert_int_eq(f.fails, 4);
    gw_rconn_free(c);
    ck_assert_int_eq(f.ready, 1);
    event_base_free(f.base);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    start_redis();
    Suite *s = suite_create("rconn_redis");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_setup_and_pipeline);
    tcase_add_test(tc, test_pushes_with_commands);
    tcase_add_test(tc, test_failures);
    suite_add_tcase(s, tc);
    int rc = gw_run_suite(s);
    stop_redis();
    return rc;
}
