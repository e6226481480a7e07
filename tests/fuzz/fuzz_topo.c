/* libFuzzer harness for the cluster slot map (common/topo.[ch]). The input is
 * RESP bytes, parsed by hiredis' own redisReader exactly as the connection
 * layer parses Redis' answers; every complete reply is offered to the three
 * builders (CLUSTER SHARDS, CLUSTER SLOTS, CLUSTER NODES), and each error or
 * string reply to the MOVED/ASK parser. Properties: a build either succeeds with a
 * consistent map (covered = the sum of the nodes' slots, every owner a
 * listed node, valid ids and hosts) or fails with a reason and an empty map;
 * a diff names exactly the slots whose owner differs by id, host or port
 * (checked slot by slot against a string comparison). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "topo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const struct gw_topo *t, int rc)
{
    uint32_t sum = 0, owned = 0;

    if (rc != 0) {
        if (rc != -EPROTO || gw_topo_errstr(t)[0] == '\0' || gw_topo_node_count(t) != 0 ||
            gw_topo_covered(t) != 0)
            abort();
        return;
    }
    for (size_t i = 0; i < gw_topo_node_count(t); i++) {
        const struct gw_topo_node *n = gw_topo_node(t, i);
        if (strlen(n->id) != GW_TOPO_ID_LEN || n->host[0] == '\0' || (!n->port && !n->tls_port))
            abort();
        if (gw_topo_find(t, n->id) != n)
            abort();
        sum += n->slots;
    }
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++) {
        const struct gw_topo_node *o = gw_topo_slot_owner(t, s);
        if (!o)
            continue;
        owned++;
        if (o < gw_topo_node(t, 0) || o > gw_topo_node(t, gw_topo_node_count(t) - 1))
            abort();
    }
    if (sum != owned || owned != gw_topo_covered(t))
        abort();
}

/* The diff's definition, slot by slot with strings: the reference that the
 * index-based gw_topo_diff must agree with. */
static bool moved(const struct gw_topo *a, const struct gw_topo *b, unsigned s)
{
    const struct gw_topo_node *x = gw_topo_slot_owner(a, s), *y = gw_topo_slot_owner(b, s);

    if (!x || !y)
        return x != y;
    return strcmp(x->id, y->id) || strcmp(x->host, y->host) || x->port != y->port ||
           x->tls_port != y->tls_port;
}

static void check_diff(const struct gw_topo *a, const struct gw_topo *b)
{
    struct gw_topo_diff d;
    uint32_t n = 0;
    int next = 0;

    gw_topo_diff(a, b, &d);
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++) {
        if (!moved(a, b, s))
            continue;
        if (gw_topo_diff_next(&d, (unsigned)next) != (int)s)
            abort();
        next = (int)s + 1;
        n++;
    }
    if (n != d.count || (next < GW_SLOT_COUNT && gw_topo_diff_next(&d, (unsigned)next) != -1))
        abort();
    gw_topo_diff(b, b, &d);
    if (d.count != 0)
        abort();
}

static void check_redirect(const redisReply *r)
{
    struct gw_topo_redirect rd;
    int rc;

    if ((r->type != REDIS_REPLY_ERROR && r->type != REDIS_REPLY_STRING) || !r->str)
        return;
    rc = gw_topo_redirect_parse(r->str, r->len, &rd);
    if (rc == 0 && (rd.slot >= GW_SLOT_COUNT || rd.port == 0 || strlen(rd.host) > GW_TOPO_HOST_MAX))
        abort();
    if (rc != 0 && rc != -ENOENT && rc != -EBADMSG)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    struct gw_topo *prev, *cur;
    void *reply = NULL;
    int n = 0;

    if (size > 65536)
        return 0;
    rd = redisReaderCreate();
    if (!rd)
        abort();
    prev = gw_topo_new();
    cur = gw_topo_new();
    if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK)
        abort();
    while (n++ < 16 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        struct gw_topo *t = prev;
        check_map(cur, gw_topo_from_shards(cur, reply, 1));
        check_diff(prev, cur);
        check_map(prev, gw_topo_from_slots(prev, reply, (n & 1) ? "seed" : NULL, 2));
        check_diff(cur, prev);
        check_map(prev, gw_topo_from_nodes(prev, reply, (n & 2) ? "seed" : NULL, 3));
        check_diff(cur, prev);
        check_redirect(reply);
        freeReplyObject(reply);
        reply = NULL;
        prev = cur;
        cur = t;
    }
    redisReaderFree(rd);
    gw_topo_free(prev);
    gw_topo_free(cur);
    return 0;
}
