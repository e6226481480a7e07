/* gateway/rconn.c against a socket pair: the test plays Redis on the other
 * end with scripted RESP, and checks what the connection wrote, which
 * callback got which reply, and how often. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "rconn.h"
#include "unit.h"

#define MAX_SEEN 32

struct fixture {
    struct event_base *base;
    struct gw_rconn *c;
    int peer; /* "Redis" */
    int ready, fails;
    const char *fail_why;
    int pushes;
    enum gw_rconn_push push_kind[MAX_SEEN];
    char push_arg[MAX_SEEN][32];
    /* what the pushes do: free the connection at push number free_at_push */
    int free_at_push;
};

struct seen {
    struct fixture *f;
    int calls;
    int type; /* of the last reply, -1 for NULL */
    char str[64];
    long long integer;
    size_t elements;
    bool free_conn; /* gw_rconn_free from inside this callback */
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
    ck_assert_int_lt(f->pushes, MAX_SEEN);
    f->push_kind[f->pushes] = kind;
    const redisReply *arg = r->element[r->elements - 1];
    if (arg->type == REDIS_REPLY_STRING)
        snprintf(f->push_arg[f->pushes], 32, "%s", arg->str);
    else
        snprintf(f->push_arg[f->pushes], 32, ":%lld", arg->integer);
    f->pushes++;
    if (f->free_at_push == f->pushes) {
        gw_rconn_free(c);
        f->c = NULL;
    }
}

static const struct gw_rconn_ops ops = { on_ready, on_fail, on_push };

static void on_reply(struct gw_rconn *c, const redisReply *r, void *privdata)
{
    struct seen *s = privdata;
    s->calls++;
    s->type = r ? r->type : -1;
    s->str[0] = '\0';
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
        snprintf(s->str, sizeof s->str, "%s", r->str);
    if (r && r->type == REDIS_REPLY_INTEGER)
        s->integer = r->integer;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        s->elements = r->elements;
        if (r->elements && r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(s->str, sizeof s->str, "%s", r->element[0]->str);
    }
    if (s->free_conn) {
        gw_rconn_free(c);
        s->f->c = NULL;
    }
}

static void setup_opts(struct fixture *f, const struct gw_rconn_opts *o)
{
    int sv[2];
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f->c = gw_rconn_new(f->base, o, &ops, f);
    ck_assert_int_eq(gw_rconn_adopt(f->c, sv[0]), 0);
    f->peer = sv[1];
}

static void setup(struct fixture *f)
{
    struct gw_rconn_opts o = { .name = "test", .connect_timeout_ms = 1000, .max_out_bytes = 1 << 20,
                               .max_in_bytes = 1 << 20 };
    setup_opts(f, &o);
    ck_assert_int_eq(gw_rconn_state(f->c), GW_RCONN_READY);
}

static void teardown(struct fixture *f)
{
    gw_rconn_free(f->c);
    close(f->peer);
    event_base_free(f->base);
}

/* Runs the loop for ms milliseconds (or until *until becomes nonzero). */
static void pump(struct fixture *f, int ms, const int *until)
{
    int64_t end = gw_now_us() + (int64_t)ms * 1000;
    while (gw_now_us() < end && !(until && *until)) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

static void say(struct fixture *f, const char *resp)
{
    ck_assert_int_eq(write(f->peer, resp, strlen(resp)), (ssize_t)strlen(resp));
}

/* Reads what the connection wrote until want's length arrived (1 s at most)
 * and compares it. */
static void expect_wire(struct fixture *f, const char *want)
{
    char got[4096];
    size_t n = 0, wlen = strlen(want);
    int64_t end = gw_now_us() + 1000000;
    while (n < wlen && gw_now_us() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        struct pollfd p = { .fd = f->peer, .events = POLLIN };
        if (poll(&p, 1, 5) == 1) {
            ssize_t r = read(f->peer, got + n, sizeof got - 1 - n);
            if (r > 0)
                n += (size_t)r;
        }
    }
    got[n] = '\0';
    ck_assert_str_eq(got, want);
}

static int cmd(struct fixture *f, const char *a0, const char *a1, struct seen *s, int timeout_ms)
{
    const char *argv[] = { a0, a1 };
    size_t lens[] = { strlen(a0), a1 ? strlen(a1) : 0 };
    if (s)
        s->f = f;
    return gw_rconn_command(f->c, a1 ? 2 : 1, argv, lens, timeout_ms, s ? on_reply : NULL, s);
}

START_TEST(test_pipelined_in_order)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 }, d = { 0 };
    setup(&f);
    ck_assert_int_eq(cmd(&f, "SET", "k", &a, 1000), 0);
    ck_assert_int_eq(cmd(&f, "INCR", "n", &b, 1000), 0);
    ck_assert_int_eq(cmd(&f, "GET", "k", &d, 1000), 0);
    ck_assert_uint_eq(gw_rconn_pending(f.c), 3);
    expect_wire(&f, "*2\r\n$3\r\nSET\r\n$1\r\nk\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    say(&f, "+OK\r\n:5\r\n$3\r\nfoo\r\n");
    pump(&f, 500, &d.calls);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "OK");
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.integer, 5);
    ck_assert_int_eq(d.calls, 1);
    ck_assert_str_eq(d.str, "foo");
    ck_assert_uint_eq(gw_rconn_pending(f.c), 0);
    ck_assert_int_eq(f.fails, 0);
    teardown(&f);
}
END_TEST

START_TEST(test_partial_replies)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 };
    static const char resp[] = "*3\r\n$5\r\nhello\r\n:42\r\n$-1\r\n$11\r\nhello world\r\n";
    setup(&f);
    ck_assert_int_eq(cmd(&f, "X", NULL, &a, 2000), 0);
    ck_assert_int_eq(cmd(&f, "Y", NULL, &b, 2000), 0);
    for (size_t i = 0; i < sizeof resp - 1; i++) {
        ck_assert_int_eq(write(f.peer, resp + i, 1), 1);
        pump(&f, 2, NULL);
        /* The array is complete only with its last byte (offset 24). */
        ck_assert_int_eq(a.calls, i >= 24 ? 1 : 0);
        ck_assert_int_eq(b.calls, i == sizeof resp - 2 ? 1 : 0);
    }
    ck_assert_int_eq(a.type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(a.elements, 3);
    ck_assert_str_eq(b.str, "hello world");
    teardown(&f);
}
END_TEST

START_TEST(test_pushes_between_replies)
{
    struct fixture f;
    struct seen sub = { 0 }, ping = { 0 }, ssub = { 0 };
    const char *argv[] = { "SUBSCRIBE", "a", "b" };
    size_t lens[] = { 9, 1, 1 };
    setup(&f);
    sub.f = &f;
    ck_assert_int_eq(gw_rconn_command(f.c, 3, argv, lens, 1000, on_reply, &sub), 0);
    ck_assert_int_eq(cmd(&f, "PING", NULL, &ping, 1000), 0);
    ck_assert_int_eq(cmd(&f, "SSUBSCRIBE", "s", &ssub, 1000), 0);
    /* A message for a before b is confirmed, the PING's answer between two
     * messages, an smessage, and an unsolicited sunsubscribe at the end. */
    say(&f, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm1\r\n"
            "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
            "*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nm2\r\n"
            "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm3\r\n"
            "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n"
            "*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$2\r\nm4\r\n"
            "*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n");
    pump(&f, 500, NULL);
    ck_assert_int_eq(f.fails, 0);
    ck_assert_int_eq(f.pushes, 8);
    ck_assert_int_eq(f.push_kind[0], GW_RCONN_SUBSCRIBE);
    ck_assert_int_eq(f.push_kind[1], GW_RCONN_MESSAGE);
    ck_assert_str_eq(f.push_arg[1], "m1");
    ck_assert_int_eq(f.push_kind[3], GW_RCONN_MESSAGE);
    ck_assert_str_eq(f.push_arg[3], "m2");
    ck_assert_str_eq(f.push_arg[4], "m3");
    ck_assert_int_eq(f.push_kind[5], GW_RCONN_SSUBSCRIBE);
    ck_assert_int_eq(f.push_kind[6], GW_RCONN_SMESSAGE);
    ck_assert_str_eq(f.push_arg[6], "m4");
    ck_assert_int_eq(f.push_kind[7], GW_RCONN_SUNSUBSCRIBE);
    /* SUBSCRIBE's callback once, with its last confirmation. */
    ck_assert_int_eq(sub.calls, 1);
    ck_assert_str_eq(sub.str, "subscribe");
    ck_assert_int_eq(ping.calls, 1);
    ck_assert_str_eq(ping.str, "pong");
    ck_assert_int_eq(ssub.calls, 1);
    ck_assert_uint_eq(gw_rconn_pending(f.c), 0);
    teardown(&f);
}
END_TEST

START_TEST(test_not_a_push_outside_pubsub)
{
    struct fixture f;
    struct seen a = { 0 };
    setup(&f);
    /* LRANGE of a list that holds "message", "x", "y": a reply, not a push. */
    ck_assert_int_eq(cmd(&f, "LRANGE", "l", &a, 1000), 0);
    say(&f, "*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n");
    pump(&f, 500, &a.calls);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_uint_eq(a.elements, 3);
    ck_assert_int_eq(f.pushes, 0);
    teardown(&f);
}
END_TEST

START_TEST(test_error_replies)
{
    struct fixture f;
    struct seen a = { 0 }, sub = { 0 }, b = { 0 };
    setup(&f);
    ck_assert_int_eq(cmd(&f, "FCALL", "x", &a, 1000), 0);
    ck_assert_int_eq(cmd(&f, "SUBSCRIBE", "c", &sub, 1000), 0);
    ck_assert_int_eq(cmd(&f, "PING", NULL, &b, 1000), 0);
    /* The SUBSCRIBE's error pairs with the SUBSCRIBE, not with the PING. */
    say(&f, "-ERR Function not found\r\n-NOPERM no rights\r\n+PONG\r\n");
    pump(&f, 500, &b.calls);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(a.str, "ERR Function not found");
    ck_assert_int_eq(sub.calls, 1);
    ck_assert_int_eq(sub.type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(sub.str, "NOPERM no rights");
    ck_assert_int_eq(b.calls, 1);
    ck_assert_str_eq(b.str, "PONG");
    ck_assert_int_eq(f.fails, 0);
    ck_assert_int_eq(gw_rconn_state(f.c), GW_RCONN_READY);
    teardown(&f);
}
END_TEST

START_TEST(test_unsolicited_reply_fails)
{
    struct fixture f;
    setup(&f);
    say(&f, "-ERR max number of clients reached\r\n");
    pump(&f, 500, &f.fails);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_int_eq(gw_rconn_state(f.c), GW_RCONN_FAILED);
    ck_assert_str_eq(gw_rconn_errstr(f.c), "ERR max number of clients reached");
    teardown(&f);
}
END_TEST

START_TEST(test_reply_after_timeout)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 };
    setup(&f);
    ck_assert_int_eq(cmd(&f, "GET", "slow", &a, 300), 0);
    ck_assert_int_eq(cmd(&f, "GET", "later", &b, 5000), 0);
    pump(&f, 30, NULL);
    ck_assert_int_eq(a.calls, 0); /* 300 ms leaves room for a loaded machine */
    pump(&f, 2000, &f.fails);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_str_eq(f.fail_why, "timed out");
    ck_assert_str_eq(gw_rconn_errstr(f.c), "no answer to GET in time");
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.type, -1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.type, -1);
    /* The answers come late: nobody hears them, nobody is called twice. */
    (void)!write(f.peer, "$1\r\nx\r\n$1\r\ny\r\n", 14);
    pump(&f, 100, NULL);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_int_eq(cmd(&f, "GET", "k", &a, 1000), -ENOTCONN);
    teardown(&f);
}
END_TEST

START_TEST(test_output_bound)
{
    struct fixture f;
    struct gw_rconn_opts o = { .name = "test", .connect_timeout_ms = 1000, .max_out_bytes = 100,
                               .max_in_bytes = 1 << 20 };
    char big[200];
    struct seen a = { 0 }, b = { 0 };
    setup_opts(&f, &o);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(cmd(&f, "SET", big, &a, 1000), -ENOBUFS);
    ck_assert_int_eq(cmd(&f, "GET", "k", &b, 1000), 0);
    ck_assert_uint_eq(gw_rconn_out_bytes(f.c), 20);
    ck_assert_uint_eq(gw_rconn_pending(f.c), 1);
    say(&f, "$-1\r\n");
    pump(&f, 500, &b.calls);
    ck_assert_int_eq(a.calls, 0); /* a refused command is never called back */
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.type, REDIS_REPLY_NIL);
    teardown(&f);
}
END_TEST

START_TEST(test_input_bound)
{
    struct fixture f;
    struct gw_rconn_opts o = { .name = "test", .connect_timeout_ms = 1000, .max_out_bytes = 1 << 20,
                               .max_in_bytes = 64 };
    struct seen a = { 0 };
    char chunk[128];
    setup_opts(&f, &o);
    ck_assert_int_eq(cmd(&f, "GET", "big", &a, 1000), 0);
    say(&f, "$1000\r\n");
    memset(chunk, 'y', sizeof chunk);
    ck_assert_int_eq(write(f.peer, chunk, sizeof chunk), (ssize_t)sizeof chunk);
    pump(&f, 500, &f.fails);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_str_eq(f.fail_why, "input bound exceeded");
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.type, -1);
    teardown(&f);
}
END_TEST

START_TEST(test_free_inside_reply_callback)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 }, d = { 0 };
    setup(&f);
    a.free_conn = true;
    ck_assert_int_eq(cmd(&f, "GET", "a", &a, 1000), 0);
    ck_assert_int_eq(cmd(&f, "GET", "b", &b, 1000), 0);
    ck_assert_int_eq(cmd(&f, "GET", "d", &d, 1000), 0);
    /* b's answer is in the same read: it must not reach b after the free. */
    say(&f, "$1\r\na\r\n$1\r\nb\r\n");
    pump(&f, 300, NULL);
    ck_assert_ptr_null(f.c);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "a");
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.type, -1);
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.type, -1);
    ck_assert_int_eq(f.fails, 0); /* freed by its owner: no on_fail */
    teardown(&f);
}
END_TEST

START_TEST(test_free_inside_push)
{
    struct fixture f;
    struct seen sub = { 0 }, p = { 0 };
    setup(&f);
    f.free_at_push = 2;
    ck_assert_int_eq(cmd(&f, "SUBSCRIBE", "a", &sub, 1000), 0);
    ck_assert_int_eq(cmd(&f, "PING", NULL, &p, 1000), 0);
    say(&f, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm1\r\n"
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm2\r\n");
    pump(&f, 300, NULL);
    ck_assert_ptr_null(f.c);
    ck_assert_int_eq(f.pushes, 2);
    ck_assert_int_eq(sub.calls, 1);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.type, -1);
    teardown(&f);
}
END_TEST

START_TEST(test_free_inside_fail_callbacks)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 };
    setup(&f);
    a.free_conn = true; /* the NULL answer of the timeout frees it */
    ck_assert_int_eq(cmd(&f, "GET", "a", &a, 30), 0);
    ck_assert_int_eq(cmd(&f, "GET", "b", &b, 1000), 0);
    pump(&f, 300, &b.calls);
    ck_assert_ptr_null(f.c);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(f.fails, 1);
    teardown(&f);
}
END_TEST

START_TEST(test_auth_select_first)
{
    struct fixture f;
    struct gw_rconn_opts o = { .name = "test", .username = "u", .password = "pw", .db = 3,
                               .connect_timeout_ms = 1000, .max_out_bytes = 1 << 20, .max_in_bytes = 1 << 20 };
    struct seen a = { 0 };
    setup_opts(&f, &o);
    ck_assert_int_eq(gw_rconn_state(f.c), GW_RCONN_SETUP);
    ck_assert_int_eq(cmd(&f, "PING", NULL, &a, 1000), 0);
    expect_wire(&f, "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n");
    say(&f, "+OK\r\n");
    pump(&f, 50, NULL);
    ck_assert_int_eq(f.ready, 0);
    say(&f, "+OK\r\n+PONG\r\n");
    pump(&f, 500, &a.calls);
    ck_assert_int_eq(f.ready, 1);
    ck_assert_int_eq(gw_rconn_state(f.c), GW_RCONN_READY);
    ck_assert_str_eq(a.str, "PONG");
    teardown(&f);
}
END_TEST

START_TEST(test_auth_rejected)
{
    struct fixture f;
    struct gw_rconn_opts o = { .name = "test", .password = "bad", .connect_timeout_ms = 1000,
                               .max_out_bytes = 1 << 20, .max_in_bytes = 1 << 20 };
    struct seen a = { 0 };
    setup_opts(&f, &o);
    ck_assert_int_eq(cmd(&f, "PING", NULL, &a, 1000), 0);
    say(&f, "-WRONGPASS invalid username-password pair\r\n-NOAUTH Authentication required.\r\n");
    pump(&f, 500, &f.fails);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_str_eq(f.fail_why, "AUTH rejected");
    ck_assert_str_eq(gw_rconn_errstr(f.c), "WRONGPASS invalid username-password pair");
    ck_assert_int_eq(f.ready, 0);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.type, -1);
    teardown(&f);
}
END_TEST

START_TEST(test_closed_by_peer)
{
    struct fixture f;
    struct seen a = { 0 }, b = { 0 };
    setup(&f);
    ck_assert_int_eq(cmd(&f, "GET", "a", &a, 1000), 0);
    ck_assert_int_eq(cmd(&f, "GET", "b", &b, 1000), 0);
    say(&f, "$1\r\na\r\n");
    shutdown(f.peer, SHUT_WR);
    pump(&f, 500, &f.fails);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "a");
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.type, -1);
    ck_assert_int_eq(f.fails, 1);
    ck_assert_str_eq(f.fail_why, "connection closed by Redis");
    teardown(&f);
}
END_TEST

START_TEST(test_discard_counts_messages)
{
    struct fixture f;
    struct seen sub = { 0 };
    setup(&f);
    ck_assert_int_eq(cmd(&f, "SUBSCRIBE", "a", &sub, 1000), 0);
    say(&f, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    pump(&f, 300, &sub.calls);
    gw_rconn_pause(f.c, true);
    say(&f, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm2\r\n*3\r\n$7\r\nmess");
    pump(&f, 50, NULL);
    ck_assert_int_eq(f.pushes, 1); /* paused: the messages wait in the socket */
    ck_assert(gw_rconn_readable(f.c));
    ck_assert_uint_eq(gw_rconn_discard_messages(f.c, 1 << 20), 2);
    teardown(&f);
}
END_TEST

static Suite *rconn_suite(void)
{
    Suite *s = suite_create("rconn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pipelined_in_order);
    tcase_add_test(tc, test_partial_replies);
    tcase_add_test(tc, test_pushes_between_replies);
    tcase_add_test(tc, test_not_a_push_outside_pubsub);
    tcase_add_test(tc, test_error_replies);
    tcase_add_test(tc, test_unsolicited_reply_fails);
    tcase_add_test(tc, test_reply_after_timeout);
    tcase_add_test(tc, test_output_bound);
    tcase_add_test(tc, test_input_bound);
    tcase_add_test(tc, test_free_inside_reply_callback);
    tcase_add_test(tc, test_free_inside_push);
    tcase_add_test(tc, test_free_inside_fail_callbacks);
    tcase_add_test(tc, test_auth_select_first);
    tcase_add_test(tc, test_auth_rejected);
    tcase_add_test(tc, test_closed_by_peer);
    tcase_add_test(tc, test_discard_counts_messages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the node ignores it too (main.c) */
    return gw_run_suite(rconn_suite());
}
