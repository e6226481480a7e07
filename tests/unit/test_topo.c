/* The cluster slot map (common/topo.[ch]): CLUSTER SHARDS and CLUSTER SLOTS
 * replies in the shapes Redis 7.0.15 sends (seen on the test cluster of
 * tests/integration/wsgate_cluster.py, including the one after a failover),
 * each fed as RESP bytes through hiredis' own redisReader, as the connection
 * layer will; refused replies; lookups; the diff; MOVED/ASK parsing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <hiredis/hiredis.h>

#include "topo.h"
#include "unit.h"

#define ID_A "e5465adbbe590c2a6ec32e4d772c030c77aba06e"
#define ID_B "bbdb6ca7bd399182a9730e5bc471aad8072b2a06"
#define ID_C "bf1c337e6bdb0d5534d26a5f26f406b5ca04d592"
#define ID_R "72c3fe002e6c04a200350c2a97821ad4bd2494c6"
#define ID_P "c44bc4ca79395996d56dedc98ea3893c0838d4a3"

/* ---- RESP writing: a tiny builder, so each case reads as its reply's shape */

static char resp[16384];
static size_t rlen;

static void put(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rlen += (size_t)vsnprintf(resp + rlen, sizeof resp - rlen, fmt, ap);
    va_end(ap);
    ck_assert_uint_lt(rlen, sizeof resp);
}
static void arr(int n) { put("*%d\r\n", n); }
static void bulk(const char *s) { put("$%zu\r\n%s\r\n", strlen(s), s); }
static void num(long long v) { put(":%lld\r\n", v); }

/* One CLUSTER SHARDS node, as 7.0.15 writes it (14 elements). */
static void shard_node(const char *id, int port, const char *role, const char *health)
{
    arr(14);
    bulk("id"), bulk(id), bulk("port"), num(port), bulk("ip"), bulk("127.0.0.1");
    bulk("endpoint"), bulk("127.0.0.1"), bulk("role"), bulk(role);
    bulk("replication-offset"), num(0), bulk("health"), bulk(health);
}

static redisReply *parsed(void)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    ck_assert_int_eq(redisReaderFeed(rd, resp, rlen), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(rd);
    rlen = 0;
    return reply;
}

/* The three-shard cluster redis-cli --cluster create makes: A 0-5460, B
 * 5461-10922, C 10923-16383, a replica in C's shard. */
static redisReply *shards_healthy(void)
{
    arr(3);
    arr(4), bulk("slots"), arr(2), num(0), num(5460), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    arr(4), bulk("slots"), arr(2), num(5461), num(10922), bulk("nodes"), arr(1);
    shard_node(ID_B, 7002, "master", "online");
    arr(4), bulk("slots"), arr(2), num(10923), num(16383), bulk("nodes"), arr(2);
    shard_node(ID_C, 7003, "master", "online");
    shard_node(ID_R, 7006, "replica", "loading");
    return parsed();
}

/* After B was SIGKILLed and P promoted: B is a failed master with no slots,
 * in a shard of its own (as 7.0.15 shows it). */
static redisReply *shards_after_failover(void)
{
    arr(4);
    arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node(ID_B, 7002, "master", "fail");
    arr(4), bulk("slots"), arr(2), num(5461), num(10922), bulk("nodes"), arr(1);
    shard_node(ID_P, 7005, "master", "online");
    arr(4), bulk("slots"), arr(2), num(0), num(5460), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    arr(4), bulk("slots"), arr(2), num(10923), num(16383), bulk("nodes"), arr(1);
    shard_node(ID_C, 7003, "master", "online");
    return parsed();
}

START_TEST(shards_build_and_lookup)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r = shards_healthy();

    ck_assert_int_eq(gw_topo_from_shards(t, r, 7), 0);
    ck_assert_str_eq(gw_topo_errstr(t), "");
    ck_assert_uint_eq(gw_topo_version(t), 7);
    ck_assert_uint_eq(gw_topo_covered(t), 16384);
    ck_assert_uint_eq(gw_topo_node_count(t), 3); /* the replica is not a node */
    ck_assert_str_eq(gw_topo_slot_owner(t, 0)->id, ID_A);
    ck_assert_str_eq(gw_topo_slot_owner(t, 5460)->id, ID_A);
    ck_assert_str_eq(gw_topo_slot_owner(t, 5461)->id, ID_B);
    ck_assert_str_eq(gw_topo_slot_owner(t, 16383)->id, ID_C);
    ck_assert_ptr_null(gw_topo_slot_owner(t, 16384));
    const struct gw_topo_node *c = gw_topo_find(t, ID_C);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->host, "127.0.0.1");
    ck_assert_uint_eq(c->port, 7003);
    ck_assert_uint_eq(c->tls_port, 0);
    ck_assert_uint_eq(c->slots, 16384 - 10923);
    ck_assert_int_eq(c->health, GW_TOPO_HEALTH_ONLINE);
    ck_assert_ptr_null(gw_topo_find(t, ID_R));
    /* By key: "foo" is slot 12182 (C), "{foo}:meta" too, "bar" 5061 (A). */
    ck_assert_ptr_eq(gw_topo_key_owner(t, "foo", 3), c);
    ck_assert_ptr_eq(gw_topo_key_owner(t, "{foo}:meta", 10), c);
    ck_assert_str_eq(gw_topo_key_owner(t, "bar", 3)->id, ID_A);
    freeReplyObject(r);
    gw_topo_free(t);
}
END_TEST

START_TEST(shards_failover_and_diff)
{
    struct gw_topo *a = gw_topo_new(), *b = gw_topo_new();
    redisReply *r1 = shards_healthy(), *r2 = shards_after_failover();
    struct gw_topo_diff d;

    ck_assert_int_eq(gw_topo_from_shards(a, r1, 1), 0);
    ck_assert_int_eq(gw_topo_from_shards(b, r2, 2), 0);
    ck_assert_uint_eq(gw_topo_node_count(b), 4);
    const struct gw_topo_node *dead = gw_topo_find(b, ID_B);
    ck_assert_ptr_nonnull(dead);
    ck_assert_int_eq(dead->health, GW_TOPO_HEALTH_FAILED);
    ck_assert_uint_eq(dead->slots, 0);
    ck_assert_str_eq(gw_topo_slot_owner(b, 6000)->id, ID_P);

    /* Exactly B's slots moved (to P), nothing else. */
    gw_topo_diff(a, b, &d);
    ck_assert_uint_eq(d.count, 10922 - 5461 + 1);
    ck_assert_int_eq(gw_topo_diff_next(&d, 0), 5461);
    ck_assert_int_eq(gw_topo_diff_next(&d, 7000), 7000);
    ck_assert_int_eq(gw_topo_diff_next(&d, 10923), -1);
    int n = 0, last = -1;
    for (int s = gw_topo_diff_next(&d, 0); s >= 0; s = gw_topo_diff_next(&d, (unsigned)s + 1))
        n++, last = s;
    ck_assert_int_eq(n, (int)d.count);
    ck_assert_int_eq(last, 10922);

    /* Same map: nothing moved. From nothing: every slot moved. */
    gw_topo_diff(b, b, &d);
    ck_assert_uint_eq(d.count, 0);
    ck_assert_int_eq(gw_topo_diff_next(&d, 0), -1);
    gw_topo_diff(NULL, b, &d);
    ck_assert_uint_eq(d.count, 16384);
    freeReplyObject(r1);
    freeReplyObject(r2);
    gw_topo_free(a);
    gw_topo_free(b);
}
END_TEST

START_TEST(diff_counts_a_new_address)
{
    struct gw_topo *a = gw_topo_new(), *b = gw_topo_new();
    struct gw_topo_diff d;
    redisReply *r1, *r2;

    /* The same node ID on another port (restarted elsewhere): a move. */
    arr(1), arr(3), num(0), num(99), arr(3), bulk("10.0.0.1"), num(7001), bulk(ID_A);
    r1 = parsed();
    arr(1), arr(3), num(0), num(99), arr(3), bulk("10.0.0.1"), num(7009), bulk(ID_A);
    r2 = parsed();
    ck_assert_int_eq(gw_topo_from_slots(a, r1, NULL, 1), 0);
    ck_assert_int_eq(gw_topo_from_slots(b, r2, NULL, 2), 0);
    gw_topo_diff(a, b, &d);
    ck_assert_uint_eq(d.count, 100);
    /* Served, then unserved: a move too. */
    struct gw_topo *empty = gw_topo_new();
    gw_topo_diff(a, empty, &d);
    ck_assert_uint_eq(d.count, 100);
    ck_assert_int_eq(gw_topo_diff_next(&d, 0), 0);
    ck_assert_int_eq(gw_topo_diff_next(&d, 100), -1);
    gw_topo_free(empty);
    freeReplyObject(r1);
    freeReplyObject(r2);
    gw_topo_free(a);
    gw_topo_free(b);
}
END_TEST

START_TEST(slots_build)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r;

    /* 7.0.15's CLUSTER SLOTS: [start, end, [host, port, id, {metadata}], replicas...];
     * one master serving two ranges; an empty host means the seed's. */
    arr(3);
    arr(4), num(0), num(5460), arr(4), bulk("127.0.0.1"), num(7001), bulk(ID_A), arr(0);
    arr(4), bulk("127.0.0.1"), num(7004), bulk(ID_R), arr(0);
    arr(3), num(5461), num(10922), arr(4), bulk(""), num(7002), bulk(ID_B), arr(0);
    arr(3), num(10923), num(16383), arr(4), bulk("127.0.0.1"), num(7001), bulk(ID_A), arr(0);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_slots(t, r, "seed.example", 3), 0);
    ck_assert_uint_eq(gw_topo_node_count(t), 2);
    ck_assert_uint_eq(gw_topo_covered(t), 16384);
    ck_assert_uint_eq(gw_topo_find(t, ID_A)->slots, 5461 + 5461);
    ck_assert_str_eq(gw_topo_find(t, ID_B)->host, "seed.example");
    ck_assert_int_eq(gw_topo_find(t, ID_B)->health, GW_TOPO_HEALTH_UNKNOWN);
    /* Without a seed host the empty host is refused, and the map is empty. */
    ck_assert_int_eq(gw_topo_from_slots(t, r, NULL, 4), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "no host"));
    ck_assert_uint_eq(gw_topo_node_count(t), 0);
    ck_assert_uint_eq(gw_topo_covered(t), 0);
    ck_assert_ptr_null(gw_topo_slot_owner(t, 0));
    freeReplyObject(r);
    gw_topo_free(t);
}
END_TEST

/* Each malformed reply is refused with a reason naming the problem, and
 * leaves the map empty even when a good map was there before. */
static void refused_shards(const char *why)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *bad = parsed(), *good = shards_healthy();

    ck_assert_int_eq(gw_topo_from_shards(t, good, 1), 0);
    ck_assert_int_eq(gw_topo_from_shards(t, bad, 2), -EPROTO);
    ck_assert_msg(strstr(gw_topo_errstr(t), why), "errstr \"%s\", want \"%s\"", gw_topo_errstr(t),
                  why);
    ck_assert_uint_eq(gw_topo_node_count(t), 0);
    ck_assert_uint_eq(gw_topo_covered(t), 0);
    ck_assert_uint_eq(gw_topo_version(t), 0);
    freeReplyObject(bad);
    freeReplyObject(good);
    gw_topo_free(t);
}

START_TEST(shards_refused)
{
    put("-ERR This instance has cluster support disabled\r\n");
    refused_shards("cluster support disabled");
    num(3);
    refused_shards("not an array");
    arr(1), arr(3), bulk("slots"), arr(0), bulk("nodes");
    refused_shards("name/value pairs");
    arr(1), arr(2), bulk("slots"), arr(0);
    refused_shards("without slots or nodes");
    /* A slot range out of bounds, reversed, odd. */
    arr(1), arr(4), bulk("slots"), arr(2), num(0), num(16384), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    refused_shards("out of 0-16383");
    arr(1), arr(4), bulk("slots"), arr(2), num(9), num(3), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    refused_shards("out of 0-16383");
    arr(1), arr(4), bulk("slots"), arr(1), num(9), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    refused_shards("bad or repeated slots");
    /* Two shards claiming slot 100. */
    arr(2);
    arr(4), bulk("slots"), arr(2), num(0), num(100), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    arr(4), bulk("slots"), arr(2), num(100), num(200), bulk("nodes"), arr(1);
    shard_node(ID_B, 7002, "master", "online");
    refused_shards("slot 100 served by two masters");
    /* Slots with no master, or with two. */
    arr(1), arr(4), bulk("slots"), arr(2), num(0), num(1), bulk("nodes"), arr(1);
    shard_node(ID_R, 7004, "replica", "online");
    refused_shards("has no master");
    arr(1), arr(4), bulk("slots"), arr(2), num(0), num(1), bulk("nodes"), arr(2);
    shard_node(ID_A, 7001, "master", "online");
    shard_node(ID_B, 7002, "master", "online");
    refused_shards("two masters");
    /* Bad node fields: id, port, role, missing address. */
    arr(1), arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node("e5465adbbe590c2a6ec32e4d772c030c77aba06", 7001, "master", "online");
    refused_shards("bad or repeated node id");
    arr(1), arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node(ID_A, 70000, "master", "online");
    refused_shards("bad port");
    arr(1), arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "leader", "online");
    refused_shards("unknown node role");
    arr(1), arr(4), bulk("slots"), arr(2), num(0), num(1), bulk("nodes"), arr(1);
    arr(6), bulk("id"), bulk(ID_A), bulk("port"), num(7001), bulk("role"), bulk("master");
    refused_shards("has no address");
    arr(1), arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    arr(6), bulk("id"), bulk(ID_A), bulk("ip"), bulk("bad host"), bulk("role"), bulk("master");
    refused_shards("bad ip");
    /* The same master in two shards. */
    arr(2);
    arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    arr(4), bulk("slots"), arr(0), bulk("nodes"), arr(1);
    shard_node(ID_A, 7001, "master", "online");
    refused_shards("listed twice");
}
END_TEST

START_TEST(shards_tolerates_new_fields)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r;

    /* A later Redis adds fields (7.2: shard-id); TLS-only nodes have no port. */
    arr(1), arr(6), bulk("slots"), arr(2), num(0), num(16383), bulk("shard-id"), bulk("x");
    bulk("nodes"), arr(1);
    arr(10), bulk("id"), bulk(ID_A), bulk("tls-port"), num(7443), bulk("ip"), bulk("10.1.1.1");
    bulk("endpoint"), bulk("redis-0.cluster.local"), bulk("role"), bulk("master");
    r = parsed();
    ck_assert_int_eq(gw_topo_from_shards(t, r, 9), 0);
    const struct gw_topo_node *n = gw_topo_slot_owner(t, 42);
    ck_assert_str_eq(n->host, "redis-0.cluster.local");
    ck_assert_uint_eq(n->port, 0);
    ck_assert_uint_eq(n->tls_port, 7443);
    freeReplyObject(r);
    gw_topo_free(t);
}
END_TEST

START_TEST(slots_refused)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r;

    arr(1), arr(3), num(0), num(10), arr(3), bulk("?"), num(7001), bulk(ID_A);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_slots(t, r, "h", 1), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "unknown host"));
    freeReplyObject(r);
    arr(2), arr(3), num(0), num(10), arr(3), bulk("a"), num(7001), bulk(ID_A);
    arr(3), num(11), num(20), arr(3), bulk("b"), num(7001), bulk(ID_A);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_slots(t, r, "h", 1), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "two addresses"));
    freeReplyObject(r);
    arr(1), arr(3), num(0), num(10), arr(2), bulk("a"), num(7001);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_slots(t, r, "h", 1), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "is not [host, port, id]"));
    freeReplyObject(r);
    arr(1), arr(2), num(0), num(10);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_slots(t, r, "h", 1), -EPROTO);
    freeReplyObject(r);
    ck_assert_int_eq(gw_topo_from_slots(t, NULL, "h", 1), -EPROTO);
    ck_assert_str_eq(gw_topo_errstr(t), "CLUSTER SLOTS: no reply");
    gw_topo_free(t);
}
END_TEST

/* CLUSTER NODES as 7.0.15 wrote it on the test cluster, before and after the
 * SIGKILL of the master of 5461-10922 (its replica db0b... promoted with
 * config epoch 7). */
#define N_R1 "930294963d79a13e5fd758b1e8b5b50b2f83bd80"
#define N_R2 "db0b15e2f83d52b655e183f7cc29aa4f23116ae3"
#define N_M2 "4a1a32e4920ebbdf1be37cba9e633e88eeb440be"
#define N_M1 "e7d6828c21de8d504f33e8ad87978972088af822"
#define N_M3 "1ff3d32fd7934bbb8a5ad74b7a507c57ccd4ec37"
#define N_R3 "7d597f3b9e1a9456003d7ecb051c52f343ce352b"
static const char nodes_before[] =
    N_R1 " 127.0.0.1:50389@60389 slave " N_M3 " 0 1796624318747 3 connected\n"
    N_R2 " 127.0.0.1:52613@62613 slave " N_M2 " 0 1796624318948 2 connected\n"
    N_M2 " 127.0.0.1:39739@49739 master - 0 1796624319050 2 connected 5461-10922\n"
    N_M1 " 127.0.0.1:45153@55153 myself,master - 0 1796624318000 1 connected 0-5460\n"
    N_M3 " 127.0.0.1:37321@47321 master - 0 1796624319049 3 connected 10923-16383\n"
    N_R3 " 127.0.0.1:52447@62447 slave " N_M1 " 0 1796624318848 1 connected\n";
static const char nodes_after[] =
    N_R1 " 127.0.0.1:50389@60389 slave " N_M3 " 0 1796624321264 3 connected\n"
    N_R2 " 127.0.0.1:52613@62613 master - 0 1796624321062 7 connected 5461-10922\n"
    N_M2 " 127.0.0.1:39739@49739 master,fail - 1796624319552 1796624319050 2 disconnected\n"
    N_M1 " 127.0.0.1:45153@55153 myself,master - 0 1796624321000 1 connected 0-5460\n"
    N_M3 " 127.0.0.1:37321@47321 master - 0 1796624321000 3 connected 10923-16383\n"
    N_R3 " 127.0.0.1:52447@62447 slave " N_M1 " 0 1796624321365 1 connected\n";

static redisReply *nodes_reply(const char *text)
{
    bulk(text);
    return parsed();
}

START_TEST(nodes_build_epoch_and_diff)
{
    struct gw_topo *a = gw_topo_new(), *b = gw_topo_new();
    redisReply *r1 = nodes_reply(nodes_before), *r2 = nodes_reply(nodes_after);
    struct gw_topo_diff d;

    ck_assert_int_eq(gw_topo_from_nodes(a, r1, NULL, 1), 0);
    ck_assert_int_eq(gw_topo_from_nodes(b, r2, NULL, 2), 0);
    ck_assert_uint_eq(gw_topo_node_count(a), 3);
    ck_assert_uint_eq(gw_topo_covered(a), 16384);
    ck_assert_str_eq(gw_topo_slot_owner(a, 6000)->id, N_M2);
    ck_assert_uint_eq(gw_topo_slot_owner(a, 6000)->port, 39739);
    ck_assert_uint_eq(gw_topo_slot_owner(a, 6000)->config_epoch, 2);
    ck_assert_int_eq(gw_topo_slot_owner(a, 0)->health, GW_TOPO_HEALTH_ONLINE);
    ck_assert_uint_eq(gw_topo_epoch(a), 3);
    /* After: the promoted replica serves with epoch 7, the dead master is failed. */
    ck_assert_uint_eq(gw_topo_node_count(b), 4);
    ck_assert_str_eq(gw_topo_slot_owner(b, 6000)->id, N_R2);
    ck_assert_int_eq(gw_topo_find(b, N_M2)->health, GW_TOPO_HEALTH_FAILED);
    ck_assert_uint_eq(gw_topo_find(b, N_M2)->slots, 0);
    ck_assert_uint_eq(gw_topo_epoch(b), 7);
    ck_assert_uint_gt(gw_topo_epoch(b), gw_topo_epoch(a)); /* the newer view */
    gw_topo_diff(a, b, &d);
    ck_assert_uint_eq(d.count, 10922 - 5461 + 1);
    ck_assert_int_eq(gw_topo_diff_next(&d, 0), 5461);
    /* SHARDS and SLOTS carry no epoch. */
    redisReply *sh = shards_healthy();
    ck_assert_int_eq(gw_topo_from_shards(a, sh, 3), 0);
    ck_assert_uint_eq(gw_topo_epoch(a), 0);
    freeReplyObject(sh);
    freeReplyObject(r1);
    freeReplyObject(r2);
    gw_topo_free(a);
    gw_topo_free(b);
}
END_TEST

START_TEST(nodes_special_lines)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r;

    /* A slot being migrated stays with its server; single slots and ranges;
     * an empty address on "myself" is the seed host; a handshake node and an
     * address-less master without slots are skipped; a hostname is allowed. */
    r = nodes_reply(ID_A " :7001@17001 myself,master - 0 0 5 connected 0-99 100 "
                    "[100->-" ID_B "]\n"
                    ID_B " 10.0.0.2:7002@17002,redis-b.local master - 0 0 6 connected 101-200 "
                    "[100-<-" ID_A "]\n"
                    ID_C " 10.0.0.3:7003@17003 handshake - 0 0 0 disconnected\n"
                    ID_R " :0@0 master,noaddr - 0 0 0 disconnected\n");
    ck_assert_msg(gw_topo_from_nodes(t, r, "seed", 1) == 0, "%s", gw_topo_errstr(t));
    ck_assert_uint_eq(gw_topo_node_count(t), 2);
    ck_assert_str_eq(gw_topo_slot_owner(t, 100)->id, ID_A);
    ck_assert_str_eq(gw_topo_slot_owner(t, 100)->host, "seed");
    ck_assert_str_eq(gw_topo_slot_owner(t, 150)->host, "10.0.0.2");
    ck_assert_uint_eq(gw_topo_covered(t), 201);
    ck_assert_uint_eq(gw_topo_epoch(t), 6);
    /* Without a seed host the address-less myself serving slots is refused. */
    ck_assert_int_eq(gw_topo_from_nodes(t, r, NULL, 2), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "has no address"));
    freeReplyObject(r);
    gw_topo_free(t);
}
END_TEST

static void nodes_bad(const char *text, const char *why)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r = nodes_reply(text);

    ck_assert_int_eq(gw_topo_from_nodes(t, r, "seed", 1), -EPROTO);
    ck_assert_msg(strstr(gw_topo_errstr(t), why), "errstr \"%s\", want \"%s\"", gw_topo_errstr(t),
                  why);
    ck_assert_uint_eq(gw_topo_node_count(t), 0);
    ck_assert_uint_eq(gw_topo_covered(t), 0);
    freeReplyObject(r);
    gw_topo_free(t);
}

START_TEST(nodes_refused)
{
    struct gw_topo *t = gw_topo_new();
    redisReply *r;

    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected 0-5", "last line without a newline");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1\n", "without the 8 fields");
    nodes_bad("xyz 1.2.3.4:1@2 master - 0 0 1 connected\n", "bad node id");
    nodes_bad(ID_A " 1.2.3.4:1 master - 0 0 1 connected\n", "without @cport");
    nodes_bad(ID_A " 1.2.3.4:99999@2 master - 0 0 1 connected\n", "bad address");
    nodes_bad(ID_A " 1.2.3.4:1@2 master nobody 0 0 1 connected\n", "bad master id");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 x connected\n", "bad ping, pong or epoch");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 99999999999999999999 connected\n", "epoch");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 up\n", "bad link state");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected 0-16384\n", "bad slot field");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected 9-3\n", "out of 0-16383");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected 5 \n", "bad slot field");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected [5->-abc]\n", "bad migrating");
    nodes_bad(ID_A " 1.2.3.4:1@2 slave " ID_B " 0 0 1 connected 0-5\n", "not a master");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected 0-5\n"
              ID_B " 1.2.3.5:1@2 master - 0 0 2 connected 5\n", "slot 5 served by two masters");
    nodes_bad(ID_A " 1.2.3.4:1@2 master - 0 0 1 connected\n"
              ID_A " 1.2.3.4:1@2 master - 0 0 1 connected\n", "listed twice");
    nodes_bad(ID_A " :0@0 master,noaddr - 0 0 1 connected 7\n", "has no address");
    /* Not a string at all. */
    arr(0);
    r = parsed();
    ck_assert_int_eq(gw_topo_from_nodes(t, r, NULL, 1), -EPROTO);
    ck_assert_ptr_nonnull(strstr(gw_topo_errstr(t), "not a string"));
    freeReplyObject(r);
    gw_topo_free(t);
}
END_TEST

static void redirect_bad(const char *s)
{
    struct gw_topo_redirect r;

    ck_assert_msg(gw_topo_redirect_parse(s, strlen(s), &r) == -EBADMSG, "%s accepted", s);
}

START_TEST(redirects)
{
    struct gw_topo_redirect r;
    const char *m = "MOVED 3999 127.0.0.1:6381";

    ck_assert_int_eq(gw_topo_redirect_parse(m, strlen(m), &r), 0);
    ck_assert_int_eq(r.kind, GW_TOPO_MOVED);
    ck_assert_uint_eq(r.slot, 3999);
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_uint_eq(r.port, 6381);
    m = "ASK 16383 ::1:7000";
    ck_assert_int_eq(gw_topo_redirect_parse(m, strlen(m), &r), 0);
    ck_assert_int_eq(r.kind, GW_TOPO_ASK);
    ck_assert_uint_eq(r.slot, 16383);
    ck_assert_str_eq(r.host, "::1");
    ck_assert_uint_eq(r.port, 7000);
    m = "MOVED 0 :6380"; /* Redis does not know its endpoint: same host */
    ck_assert_int_eq(gw_topo_redirect_parse(m, strlen(m), &r), 0);
    ck_assert_str_eq(r.host, "");
    /* Not redirections: untouched. */
    r.slot = 77;
    m = "CLUSTERDOWN The cluster is down";
    ck_assert_int_eq(gw_topo_redirect_parse(m, strlen(m), &r), -ENOENT);
    m = "TRYAGAIN Multiple keys request during rehashing of slot";
    ck_assert_int_eq(gw_topo_redirect_parse(m, strlen(m), &r), -ENOENT);
    ck_assert_int_eq(gw_topo_redirect_parse("MOVED", 5, &r), -ENOENT);
    ck_assert_uint_eq(r.slot, 77);
    redirect_bad("MOVED 16384 127.0.0.1:6381");
    redirect_bad("MOVED 3999127.0.0.1:6381");
    redirect_bad("MOVED  3999 127.0.0.1:6381");
    redirect_bad("MOVED -1 127.0.0.1:6381");
    redirect_bad("MOVED 3999 127.0.0.1");
    redirect_bad("MOVED 3999 127.0.0.1:");
    redirect_bad("MOVED 3999 127.0.0.1:0");
    redirect_bad("MOVED 3999 127.0.0.1:65536");
    redirect_bad("MOVED 3999 127.0.0.1:6381 ");
    redirect_bad("MOVED 3999 127.0.0.1:6381x");
    redirect_bad("MOVED 3999 bad host:6381");
    redirect_bad("MOVED 0000003999 h:1");
    /* The length is the caller's: a NUL inside is a byte like another. */
    ck_assert_int_eq(gw_topo_redirect_parse("ASK 1 h:1\0junk", 14, &r), -EBADMSG);
}
END_TEST

START_TEST(error_kinds)
{
    static const struct {
        const char *text;
        enum gw_topo_error kind;
    } cases[] = {
        { "MOVED 3999 127.0.0.1:6381", GW_TOPO_ERR_MOVED },
        { "ASK 3999 127.0.0.1:6381", GW_TOPO_ERR_ASK },
        { "TRYAGAIN Multiple keys request during rehashing of slot", GW_TOPO_ERR_TRYAGAIN },
        { "CLUSTERDOWN Hash slot not served", GW_TOPO_ERR_CLUSTERDOWN },
        { "CLUSTERDOWN The cluster is down", GW_TOPO_ERR_CLUSTERDOWN },
        { "CROSSSLOT Keys in request don't hash to the same slot", GW_TOPO_ERR_CROSSSLOT },
        { "CLUSTERDOWN", GW_TOPO_ERR_CLUSTERDOWN },
        { "ERR wsgate: channel name required", GW_TOPO_ERR_OTHER },
        { "ASKING", GW_TOPO_ERR_OTHER }, /* a word that starts like one is not it */
        { "MOVEDX 1 h:1", GW_TOPO_ERR_OTHER },
        { "moved 1 h:1", GW_TOPO_ERR_OTHER },
        { "", GW_TOPO_ERR_OTHER },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(gw_topo_error_kind(cases[i].text, strlen(cases[i].text)) == cases[i].kind, "%s",
                      cases[i].text);
    /* The length is the caller's. */
    ck_assert_int_eq(gw_topo_error_kind("ASK 1 h:1", 3), GW_TOPO_ERR_ASK);
    ck_assert_int_eq(gw_topo_error_kind("TRYAGAIN", 3), GW_TOPO_ERR_OTHER);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topo");
    TCase *tc = tcase_create("topo");

    tcase_add_test(tc, shards_build_and_lookup);
    tcase_add_test(tc, shards_failover_and_diff);
    tcase_add_test(tc, diff_counts_a_new_address);
    tcase_add_test(tc, slots_build);
    tcase_add_test(tc, shards_refused);
    tcase_add_test(tc, shards_tolerates_new_fields);
    tcase_add_test(tc, slots_refused);
    tcase_add_test(tc, nodes_build_epoch_and_diff);
    tcase_add_test(tc, nodes_special_lines);
    tcase_add_test(tc, nodes_refused);
    tcase_add_test(tc, redirects);
    tcase_add_test(tc, error_kinds);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
