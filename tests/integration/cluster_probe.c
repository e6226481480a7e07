/* A test tool for tests/integration/test_redis_cluster.py: runs the gateway's
 * own cluster code (common/slot.[ch], common/topo.[ch]) on what a real
 * cluster said, so the Python test can compare.
 *
 *   cluster_probe slots            stdin: one key per line, hex-encoded (binary
 *                                  safe); stdout: gw_slot_of of each, one a line
 *   cluster_probe colocated        the same input; stdout: 1 or 0, whether
 *                                  gw_slot_channel_colocated holds for the name
 *   cluster_probe shards|slotsreply|nodes
 *                                  stdin: RESP replies to CLUSTER SHARDS (SLOTS,
 *                                  NODES), one or more; stdout per reply: the
 *                                  map ("owner <first>-<last> <id> <host>:<port>
 *                                  <health> <config epoch>" lines, "covered N"), then from the
 *                                  second reply on, "moved <first>-<last>" for
 *                                  the diff against the reply before
 *   cluster_probe redirect         stdin: error texts, one a line; stdout:
 *                                  "<MOVED|ASK> slot host port" or "none"/"bad",
 *                                  then " kind=<gw_topo_error_kind>"
 * Exits 1 with the reason on stderr when a reply is refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "slot.h"
#include "topo.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int do_slots(int colocated)
{
    char line[8192], key[4096];

    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n"), k = 0;
        if (n % 2)
            return 1;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(line[i]), lo = hexval(line[i + 1]);
            if (hi < 0 || lo < 0)
                return 1;
            key[k++] = (char)(hi * 16 + lo);
        }
        if (colocated)
            printf("%d\n", gw_slot_channel_colocated(key, k) ? 1 : 0);
        else
            printf("%u\n", gw_slot_of(key, k));
    }
    return 0;
}

static void print_ranges(const struct gw_topo *t)
{
    unsigned s = 0;

    while (s < GW_SLOT_COUNT) {
        const struct gw_topo_node *o = gw_topo_slot_owner(t, s);
        unsigned e = s;
        while (e + 1 < GW_SLOT_COUNT && gw_topo_slot_owner(t, e + 1) == o)
            e++;
        if (o)
            printf("owner %u-%u %s %s:%u %s %llu\n", s, e, o->id, o->host, o->port,
                   gw_topo_health_name(o->health), (unsigned long long)o->config_epoch);
        s = e + 1;
    }
    printf("covered %u\n", gw_topo_covered(t));
    printf("epoch %llu\n", (unsigned long long)gw_topo_epoch(t));
}

static void print_diff(const struct gw_topo *a, const struct gw_topo *b)
{
    struct gw_topo_diff d;
    int s;

    gw_topo_diff(a, b, &d);
    for (s = gw_topo_diff_next(&d, 0); s >= 0;) {
        int e = s;
        while (e + 1 < GW_SLOT_COUNT && gw_topo_diff_next(&d, (unsigned)e + 1) == e + 1)
            e++;
        printf("moved %d-%d\n", s, e);
        s = e + 1 < GW_SLOT_COUNT ? gw_topo_diff_next(&d, (unsigned)e + 1) : -1;
    }
}

enum kind { SHARDS, SLOTS, NODES };

static int do_map(enum kind kind)
{
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, stdin);
    redisReader *rd = redisReaderCreate();
    struct gw_topo *prev = gw_topo_new(), *cur = gw_topo_new();
    void *reply = NULL;
    int n = 0, rc = 0;

    if (redisReaderFeed(rd, buf, len) != REDIS_OK)
        return 1;
    while (rc == 0 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        rc = kind == SHARDS  ? gw_topo_from_shards(cur, reply, (uint64_t)n)
             : kind == SLOTS ? gw_topo_from_slots(cur, reply, "127.0.0.1", (uint64_t)n)
                             : gw_topo_from_nodes(cur, reply, "127.0.0.1", (uint64_t)n);
        freeReplyObject(reply);
        if (rc < 0) {
            fprintf(stderr, "refused: %s\n", gw_topo_errstr(cur));
            break;
        }
        printf("map %d\n", n);
        print_ranges(cur);
        if (n++ > 0)
            print_diff(prev, cur);
        struct gw_topo *t = prev;
        prev = cur;
        cur = t;
    }
    redisReaderFree(rd);
    gw_topo_free(prev);
    gw_topo_free(cur);
    return rc < 0 ? 1 : 0;
}

static int do_redirect(void)
{
    char line[1024];
    struct gw_topo_redirect r;

    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n");
        int rc = gw_topo_redirect_parse(line, n, &r);
        static const char *const kinds[] = { "other", "moved", "ask", "tryagain", "clusterdown",
                                             "crossslot" };
        if (rc == 0)
            printf("%s %u %s %u", r.kind == GW_TOPO_MOVED ? "MOVED" : "ASK", r.slot, r.host, r.port);
        else
            printf("%s", rc == -ENOENT ? "none" : "bad");
        printf(" kind=%s\n", kinds[gw_topo_error_kind(line, n)]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "slots") == 0)
        return do_slots(0);
    if (argc == 2 && strcmp(argv[1], "colocated") == 0)
        return do_slots(1);
    if (argc == 2 && strcmp(argv[1], "shards") == 0)
        return do_map(SHARDS);
    if (argc == 2 && strcmp(argv[1], "slotsreply") == 0)
        return do_map(SLOTS);
    if (argc == 2 && strcmp(argv[1], "nodes") == 0)
        return do_map(NODES);
    if (argc == 2 && strcmp(argv[1], "redirect") == 0)
        return do_redirect();
    fprintf(stderr, "usage: cluster_probe slots|colocated|shards|slotsreply|nodes|redirect\n");
    return 2;
}
