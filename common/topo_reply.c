/* Building a slot map from CLUSTER SHARDS and CLUSTER SLOTS replies (hiredis
 * reply trees) and from CLUSTER NODES text. Every field is checked before it
 * is used: the reply comes from the network. */
#include "topo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "topo_int.h"

/* ---- reply field helpers: each checks the type before reading */

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

static bool str_is(const redisReply *r, const char *s)
{
    return is_str(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static bool is_int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER;
}

static bool is_arr(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && (r->elements == 0 || r->element);
}

static bool id_ok(const redisReply *r)
{
    if (!is_str(r) || r->len != GW_TOPO_ID_LEN)
        return false;
    for (size_t i = 0; i < r->len; i++) {
        char c = r->str[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool port_ok(const redisReply *r)
{
    return is_int(r) && r->integer >= 1 && r->integer <= 65535;
}

/* The reply itself: an array, not an error or anything else. */
static int check_top(struct gw_topo *t, const redisReply *r, const char *cmd)
{
    if (!r)
        return gw_topo_fail(t, "%s: no reply", cmd);
    if (r->type == REDIS_REPLY_ERROR)
        return gw_topo_fail(t, "%s: error reply: %.120s", cmd, r->str ? r->str : "");
    if (!is_arr(r))
        return gw_topo_fail(t, "%s: reply is not an array (type %d)", cmd, r->type);
    return 0;
}

/* ---- CLUSTER SHARDS */

/* One node of a shard: a flat array of name/value pairs. Fills *out (host,
 * ports, id, health, offset) and sets *master. Unknown names are skipped
 * (later Redis versions add fields); known ones must have their type. */
static int shard_node(struct gw_topo *t, const redisReply *r, struct gw_topo_node *out, bool *master)
{
    const redisReply *id = NULL, *ip = NULL, *endpoint = NULL, *role = NULL;

    memset(out, 0, sizeof *out);
    if (!is_arr(r) || r->elements % 2)
        return gw_topo_fail(t, "CLUSTER SHARDS: a node is not a list of name/value pairs");
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k))
            return gw_topo_fail(t, "CLUSTER SHARDS: a node field name is not a string");
        if (str_is(k, "id")) {
            if (id || !id_ok(v))
                return gw_topo_fail(t, "CLUSTER SHARDS: bad or repeated node id");
            id = v;
        } else if (str_is(k, "port") || str_is(k, "tls-port")) {
            if (!port_ok(v))
                return gw_topo_fail(t, "CLUSTER SHARDS: bad %.*s", (int)k->len, k->str);
            if (k->len == 4)
                out->port = (uint16_t)v->integer;
            else
                out->tls_port = (uint16_t)v->integer;
        } else if (str_is(k, "ip") || str_is(k, "endpoint")) {
            if (!is_str(v) || !gw_topo_host_ok(v->str, v->len))
                return gw_topo_fail(t, "CLUSTER SHARDS: bad %.*s", (int)k->len, k->str);
            if (k->len == 2)
                ip = v;
            else
                endpoint = v;
        } else if (str_is(k, "role")) {
            if (!str_is(v, "master") && !str_is(v, "replica"))
                return gw_topo_fail(t, "CLUSTER SHARDS: unknown node role");
            role = v;
        } else if (str_is(k, "replication-offset")) {
            if (!is_int(v) || v->integer < 0)
                return gw_topo_fail(t, "CLUSTER SHARDS: bad replication-offset");
            out->repl_offset = v->integer;
        } else if (str_is(k, "health")) {
            if (!is_str(v))
                return gw_topo_fail(t, "CLUSTER SHARDS: bad health");
            /* The documentation says "failed"; 7.0.15 answers "fail". */
            out->health = str_is(v, "online")                         ? GW_TOPO_HEALTH_ONLINE
                          : str_is(v, "loading")                      ? GW_TOPO_HEALTH_LOADING
                          : str_is(v, "fail") || str_is(v, "failed") ? GW_TOPO_HEALTH_FAILED
                                                                      : GW_TOPO_HEALTH_UNKNOWN;
        }
    }
    if (!id || !role)
        return gw_topo_fail(t, "CLUSTER SHARDS: a node without id or role");
    memcpy(out->id, id->str, GW_TOPO_ID_LEN);
    *master = str_is(role, "master");
    /* The endpoint is what clients should use (cluster-preferred-endpoint-
     * type); "?" or "" means unknown, then the ip. */
    const redisReply *h = endpoint && endpoint->len && !str_is(endpoint, "?") ? endpoint : ip;
    if (*master && (!h || h->len == 0 || str_is(h, "?")))
        return gw_topo_fail(t, "CLUSTER SHARDS: master %.40s has no address", out->id);
    if (*master && !out->port && !out->tls_port)
        return gw_topo_fail(t, "CLUSTER SHARDS: master %.40s has no port", out->id);
    if (h)
        memcpy(out->host, h->str, h->len);
    return 0;
}

static int one_shard(struct gw_topo *t, const redisReply *r)
{
    const redisReply *slots = NULL, *nodes = NULL;
    size_t master = SIZE_MAX;

    if (!is_arr(r) || r->elements % 2)
        return gw_topo_fail(t, "CLUSTER SHARDS: a shard is not a list of name/value pairs");
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k))
            return gw_topo_fail(t, "CLUSTER SHARDS: a shard field name is not a string");
        if (str_is(k, "slots")) {
            if (slots || !is_arr(v) || v->elements % 2)
                return gw_topo_fail(t, "CLUSTER SHARDS: bad or repeated slots");
            slots = v;
        } else if (str_is(k, "nodes")) {
            if (nodes || !is_arr(v))
                return gw_topo_fail(t, "CLUSTER SHARDS: bad or repeated nodes");
            nodes = v;
        }
    }
    if (!slots || !nodes)
        return gw_topo_fail(t, "CLUSTER SHARDS: a shard without slots or nodes");
    for (size_t i = 0; i < nodes->elements; i++) {
        struct gw_topo_node n;
        bool is_master = false;
        int rc = shard_node(t, nodes->element[i], &n, &is_master);
        if (rc < 0)
            return rc;
        if (!is_master)
            continue;
        if (gw_topo_index(t, n.id, GW_TOPO_ID_LEN) != SIZE_MAX)
            return gw_topo_fail(t, "CLUSTER SHARDS: master %.40s listed twice", n.id);
        if (t->n_nodes == GW_TOPO_MAX_NODES)
            return gw_topo_fail(t, "CLUSTER SHARDS: more than %d masters", GW_TOPO_MAX_NODES);
        if (master != SIZE_MAX && slots->elements)
            return gw_topo_fail(t, "CLUSTER SHARDS: a shard with slots has two masters");
        master = t->n_nodes;
        *gw_topo_node_add(t) = n;
    }
    if (slots->elements && master == SIZE_MAX)
        return gw_topo_fail(t, "CLUSTER SHARDS: a shard with slots has no master");
    for (size_t i = 0; i < slots->elements; i += 2) {
        const redisReply *lo = slots->element[i], *hi = slots->element[i + 1];
        if (!is_int(lo) || !is_int(hi))
            return gw_topo_fail(t, "CLUSTER SHARDS: a slot bound is not an integer");
        int rc = gw_topo_assign(t, lo->integer, hi->integer, master, "CLUSTER SHARDS");
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gw_topo_from_shards(struct gw_topo *t, const redisReply *reply, uint64_t version)
{
    int rc;

    gw_topo_reset(t);
    t->errstr[0] = '\0';
    rc = check_top(t, reply, "CLUSTER SHARDS");
    for (size_t i = 0; rc == 0 && i < reply->elements; i++)
        rc = one_shard(t, reply->element[i]);
    if (rc < 0) {
        gw_topo_reset(t);
        return rc;
    }
    t->version = version;
    return 0;
}

/* ---- CLUSTER SLOTS */

/* One row: start, end, master [host, port, id, ...], replicas... */
static int slots_row(struct gw_topo *t, const redisReply *row, const char *seed_host)
{
    const char *cmd = "CLUSTER SLOTS";

    if (!is_arr(row) || row->elements < 3)
        return gw_topo_fail(t, "%s: a row is not [start, end, master, ...]", cmd);
    const redisReply *lo = row->element[0], *hi = row->element[1], *m = row->element[2];
    if (!is_int(lo) || !is_int(hi))
        return gw_topo_fail(t, "%s: a slot bound is not an integer", cmd);
    if (!is_arr(m) || m->elements < 3 || !is_str(m->element[0]) || !port_ok(m->element[1]) ||
        !id_ok(m->element[2]))
        return gw_topo_fail(t, "%s: a master is not [host, port, id]", cmd);
    const redisReply *host = m->element[0];
    if (!gw_topo_host_ok(host->str, host->len) || str_is(host, "?"))
        return gw_topo_fail(t, "%s: master %.40s has a bad or unknown host", cmd, m->element[2]->str);
    const char *h = host->str;
    size_t hlen = host->len;
    if (hlen == 0) {
        if (!seed_host || !seed_host[0] || !gw_topo_host_ok(seed_host, strlen(seed_host)))
            return gw_topo_fail(t, "%s: master %.40s has no host and no seed host was given", cmd,
                        m->element[2]->str);
        h = seed_host;
        hlen = strlen(seed_host);
    }
    for (size_t i = 3; i < row->elements; i++) /* replicas: shape only */
        if (!is_arr(row->element[i]) || row->element[i]->elements < 2)
            return gw_topo_fail(t, "%s: a replica is not [host, port, ...]", cmd);

    size_t idx = gw_topo_index(t, m->element[2]->str, m->element[2]->len);
    if (idx == SIZE_MAX) {
        if (t->n_nodes == GW_TOPO_MAX_NODES)
            return gw_topo_fail(t, "%s: more than %d masters", cmd, GW_TOPO_MAX_NODES);
        idx = t->n_nodes;
        struct gw_topo_node *n = gw_topo_node_add(t);
        memcpy(n->id, m->element[2]->str, GW_TOPO_ID_LEN);
        memcpy(n->host, h, hlen);
        n->port = (uint16_t)m->element[1]->integer;
    } else {
        const struct gw_topo_node *n = &t->nodes[idx];
        if (n->port != m->element[1]->integer || strlen(n->host) != hlen || memcmp(n->host, h, hlen))
            return gw_topo_fail(t, "%s: master %.40s listed at two addresses", cmd, n->id);
    }
    return gw_topo_assign(t, lo->integer, hi->integer, idx, cmd);
}

int gw_topo_from_slots(struct gw_topo *t, const redisReply *reply, const char *seed_host,
                       uint64_t version)
{
    int rc;

    gw_topo_reset(t);
    t->errstr[0] = '\0';
    rc = check_top(t, reply, "CLUSTER SLOTS");
    for (size_t i = 0; rc == 0 && i < reply->elements; i++)
        rc = slots_row(t, reply->element[i], seed_host);
    if (rc < 0) {
        gw_topo_reset(t);
        return rc;
    }
    t->version = version;
    return 0;
}

