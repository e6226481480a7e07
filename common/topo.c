/* A Redis Cluster slot map built from CLUSTER SHARDS / CLUSTER SLOTS replies,
 * its diff, and MOVED/ASK parsing. Every field of a reply is checked before
 * it is used: the reply comes from the network. */
#include "topo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"

#define NO_OWNER UINT16_MAX

/* The map. owner[] holds an index into nodes (< GW_TOPO_MAX_NODES, so it
 * fits in 16 bits and never equals NO_OWNER). */
struct gw_topo {
    uint64_t version;
    uint32_t covered;
    size_t n_nodes, cap_nodes;
    struct gw_topo_node *nodes; /* owned */
    uint16_t owner[GW_SLOT_COUNT];
    char errstr[200];
};

const char *gw_topo_health_name(enum gw_topo_health h)
{
    switch (h) {
    case GW_TOPO_HEALTH_ONLINE: return "online";
    case GW_TOPO_HEALTH_LOADING: return "loading";
    case GW_TOPO_HEALTH_FAILED: return "failed";
    case GW_TOPO_HEALTH_UNKNOWN: break;
    }
    return "unknown";
}

static void topo_reset(struct gw_topo *t)
{
    t->version = 0;
    t->covered = 0;
    t->n_nodes = 0;
    for (size_t i = 0; i < GW_SLOT_COUNT; i++)
        t->owner[i] = NO_OWNER;
}

struct gw_topo *gw_topo_new(void)
{
    struct gw_topo *t = gw_xcalloc(1, sizeof *t);

    topo_reset(t);
    return t;
}

void gw_topo_free(struct gw_topo *t)
{
    if (!t)
        return;
    free(t->nodes);
    free(t);
}

/* Records why the build failed (the first reason only) and returns -EPROTO. */
__attribute__((format(printf, 2, 3))) static int fail(struct gw_topo *t, const char *fmt, ...)
{
    va_list ap;

    if (t->errstr[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(t->errstr, sizeof t->errstr, fmt, ap);
        va_end(ap);
    }
    return -EPROTO;
}

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

/* A host as Redis announces it: printable, no space, at most HOST_MAX bytes
 * (an empty one is allowed here; callers decide what it means). */
static bool host_ok(const char *s, size_t len)
{
    if (len > GW_TOPO_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
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
        return fail(t, "%s: no reply", cmd);
    if (r->type == REDIS_REPLY_ERROR)
        return fail(t, "%s: error reply: %.120s", cmd, r->str ? r->str : "");
    if (!is_arr(r))
        return fail(t, "%s: reply is not an array (type %d)", cmd, r->type);
    return 0;
}

static struct gw_topo_node *node_add(struct gw_topo *t)
{
    if (t->n_nodes == t->cap_nodes) {
        t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 8;
        t->nodes = gw_xrealloc(t->nodes, t->cap_nodes * sizeof *t->nodes);
    }
    struct gw_topo_node *n = &t->nodes[t->n_nodes++];
    memset(n, 0, sizeof *n);
    return n;
}

static size_t node_index(const struct gw_topo *t, const char *id, size_t len)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (len == GW_TOPO_ID_LEN && memcmp(t->nodes[i].id, id, len) == 0)
            return i;
    return SIZE_MAX;
}

/* Gives slots lo..hi to node idx; a slot already served is an error. */
static int assign(struct gw_topo *t, long long lo, long long hi, size_t idx, const char *cmd)
{
    if (lo < 0 || hi >= GW_SLOT_COUNT || lo > hi)
        return fail(t, "%s: slot range %lld-%lld out of 0-16383", cmd, lo, hi);
    for (long long s = lo; s <= hi; s++) {
        if (t->owner[s] != NO_OWNER)
            return fail(t, "%s: slot %lld served by two masters (%s and %s)", cmd, s,
                        t->nodes[t->owner[s]].id, t->nodes[idx].id);
        t->owner[s] = (uint16_t)idx;
    }
    t->nodes[idx].slots += (uint32_t)(hi - lo + 1);
    t->covered += (uint32_t)(hi - lo + 1);
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
        return fail(t, "CLUSTER SHARDS: a node is not a list of name/value pairs");
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k))
            return fail(t, "CLUSTER SHARDS: a node field name is not a string");
        if (str_is(k, "id")) {
            if (id || !id_ok(v))
                return fail(t, "CLUSTER SHARDS: bad or repeated node id");
            id = v;
        } else if (str_is(k, "port") || str_is(k, "tls-port")) {
            if (!port_ok(v))
                return fail(t, "CLUSTER SHARDS: bad %.*s", (int)k->len, k->str);
            if (k->len == 4)
                out->port = (uint16_t)v->integer;
            else
                out->tls_port = (uint16_t)v->integer;
        } else if (str_is(k, "ip") || str_is(k, "endpoint")) {
            if (!is_str(v) || !host_ok(v->str, v->len))
                return fail(t, "CLUSTER SHARDS: bad %.*s", (int)k->len, k->str);
            if (k->len == 2)
                ip = v;
            else
                endpoint = v;
        } else if (str_is(k, "role")) {
            if (!str_is(v, "master") && !str_is(v, "replica"))
                return fail(t, "CLUSTER SHARDS: unknown node role");
            role = v;
        } else if (str_is(k, "replication-offset")) {
            if (!is_int(v) || v->integer < 0)
                return fail(t, "CLUSTER SHARDS: bad replication-offset");
            out->repl_offset = v->integer;
        } else if (str_is(k, "health")) {
            if (!is_str(v))
                return fail(t, "CLUSTER SHARDS: bad health");
            /* The documentation says "failed"; 7.0.15 answers "fail". */
            out->health = str_is(v, "online")                         ? GW_TOPO_HEALTH_ONLINE
                          : str_is(v, "loading")                      ? GW_TOPO_HEALTH_LOADING
                          : str_is(v, "fail") || str_is(v, "failed") ? GW_TOPO_HEALTH_FAILED
                                                                      : GW_TOPO_HEALTH_UNKNOWN;
        }
    }
    if (!id || !role)
        return fail(t, "CLUSTER SHARDS: a node without id or role");
    memcpy(out->id, id->str, GW_TOPO_ID_LEN);
    *master = str_is(role, "master");
    /* The endpoint is what clients should use (cluster-preferred-endpoint-
     * type); "?" or "" means unknown, then the ip. */
    const redisReply *h = endpoint && endpoint->len && !str_is(endpoint, "?") ? endpoint : ip;
    if (*master && (!h || h->len == 0 || str_is(h, "?")))
        return fail(t, "CLUSTER SHARDS: master %.40s has no address", out->id);
    if (*master && !out->port && !out->tls_port)
        return fail(t, "CLUSTER SHARDS: master %.40s has no port", out->id);
    if (h)
        memcpy(out->host, h->str, h->len);
    return 0;
}

static int one_shard(struct gw_topo *t, const redisReply *r)
{
    const redisReply *slots = NULL, *nodes = NULL;
    size_t master = SIZE_MAX;

    if (!is_arr(r) || r->elements % 2)
        return fail(t, "CLUSTER SHARDS: a shard is not a list of name/value pairs");
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k))
            return fail(t, "CLUSTER SHARDS: a shard field name is not a string");
        if (str_is(k, "slots")) {
            if (slots || !is_arr(v) || v->elements % 2)
                return fail(t, "CLUSTER SHARDS: bad or repeated slots");
            slots = v;
        } else if (str_is(k, "nodes")) {
            if (nodes || !is_arr(v))
                return fail(t, "CLUSTER SHARDS: bad or repeated nodes");
            nodes = v;
        }
    }
    if (!slots || !nodes)
        return fail(t, "CLUSTER SHARDS: a shard without slots or nodes");
    for (size_t i = 0; i < nodes->elements; i++) {
        struct gw_topo_node n;
        bool is_master = false;
        int rc = shard_node(t, nodes->element[i], &n, &is_master);
        if (rc < 0)
            return rc;
        if (!is_master)
            continue;
        if (node_index(t, n.id, GW_TOPO_ID_LEN) != SIZE_MAX)
            return fail(t, "CLUSTER SHARDS: master %.40s listed twice", n.id);
        if (t->n_nodes == GW_TOPO_MAX_NODES)
            return fail(t, "CLUSTER SHARDS: more than %d masters", GW_TOPO_MAX_NODES);
        if (master != SIZE_MAX && slots->elements)
            return fail(t, "CLUSTER SHARDS: a shard with slots has two masters");
        master = t->n_nodes;
        *node_add(t) = n;
    }
    if (slots->elements && master == SIZE_MAX)
        return fail(t, "CLUSTER SHARDS: a shard with slots has no master");
    for (size_t i = 0; i < slots->elements; i += 2) {
        const redisReply *lo = slots->element[i], *hi = slots->element[i + 1];
        if (!is_int(lo) || !is_int(hi))
            return fail(t, "CLUSTER SHARDS: a slot bound is not an integer");
        int rc = assign(t, lo->integer, hi->integer, master, "CLUSTER SHARDS");
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gw_topo_from_shards(struct gw_topo *t, const redisReply *reply, uint64_t version)
{
    int rc;

    topo_reset(t);
    t->errstr[0] = '\0';
    rc = check_top(t, reply, "CLUSTER SHARDS");
    for (size_t i = 0; rc == 0 && i < reply->elements; i++)
        rc = one_shard(t, reply->element[i]);
    if (rc < 0) {
        topo_reset(t);
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
        return fail(t, "%s: a row is not [start, end, master, ...]", cmd);
    const redisReply *lo = row->element[0], *hi = row->element[1], *m = row->element[2];
    if (!is_int(lo) || !is_int(hi))
        return fail(t, "%s: a slot bound is not an integer", cmd);
    if (!is_arr(m) || m->elements < 3 || !is_str(m->element[0]) || !port_ok(m->element[1]) ||
        !id_ok(m->element[2]))
        return fail(t, "%s: a master is not [host, port, id]", cmd);
    const redisReply *host = m->element[0];
    if (!host_ok(host->str, host->len) || str_is(host, "?"))
        return fail(t, "%s: master %.40s has a bad or unknown host", cmd, m->element[2]->str);
    const char *h = host->str;
    size_t hlen = host->len;
    if (hlen == 0) {
        if (!seed_host || !seed_host[0] || !host_ok(seed_host, strlen(seed_host)))
            return fail(t, "%s: master %.40s has no host and no seed host was given", cmd,
                        m->element[2]->str);
        h = seed_host;
        hlen = strlen(seed_host);
    }
    for (size_t i = 3; i < row->elements; i++) /* replicas: shape only */
        if (!is_arr(row->element[i]) || row->element[i]->elements < 2)
            return fail(t, "%s: a replica is not [host, port, ...]", cmd);

    size_t idx = node_index(t, m->element[2]->str, m->element[2]->len);
    if (idx == SIZE_MAX) {
        if (t->n_nodes == GW_TOPO_MAX_NODES)
            return fail(t, "%s: more than %d masters", cmd, GW_TOPO_MAX_NODES);
        idx = t->n_nodes;
        struct gw_topo_node *n = node_add(t);
        memcpy(n->id, m->element[2]->str, GW_TOPO_ID_LEN);
        memcpy(n->host, h, hlen);
        n->port = (uint16_t)m->element[1]->integer;
    } else {
        const struct gw_topo_node *n = &t->nodes[idx];
        if (n->port != m->element[1]->integer || strlen(n->host) != hlen || memcmp(n->host, h, hlen))
            return fail(t, "%s: master %.40s listed at two addresses", cmd, n->id);
    }
    return assign(t, lo->integer, hi->integer, idx, cmd);
}

int gw_topo_from_slots(struct gw_topo *t, const redisReply *reply, const char *seed_host,
                       uint64_t version)
{
    int rc;

    topo_reset(t);
    t->errstr[0] = '\0';
    rc = check_top(t, reply, "CLUSTER SLOTS");
    for (size_t i = 0; rc == 0 && i < reply->elements; i++)
        rc = slots_row(t, reply->element[i], seed_host);
    if (rc < 0) {
        topo_reset(t);
        return rc;
    }
    t->version = version;
    return 0;
}

/* ---- reading a map */

const char *gw_topo_errstr(const struct gw_topo *t)
{
    return t->errstr;
}

uint64_t gw_topo_version(const struct gw_topo *t)
{
    return t->version;
}

uint32_t gw_topo_covered(const struct gw_topo *t)
{
    return t->covered;
}

size_t gw_topo_node_count(const struct gw_topo *t)
{
    return t->n_nodes;
}

const struct gw_topo_node *gw_topo_node(const struct gw_topo *t, size_t i)
{
    return i < t->n_nodes ? &t->nodes[i] : NULL;
}

const struct gw_topo_node *gw_topo_find(const struct gw_topo *t, const char *id)
{
    size_t i = node_index(t, id, strlen(id));
    return i == SIZE_MAX ? NULL : &t->nodes[i];
}

const struct gw_topo_node *gw_topo_slot_owner(const struct gw_topo *t, unsigned slot)
{
    if (slot >= GW_SLOT_COUNT || t->owner[slot] == NO_OWNER)
        return NULL;
    return &t->nodes[t->owner[slot]];
}

const struct gw_topo_node *gw_topo_key_owner(const struct gw_topo *t, const char *key, size_t len)
{
    return gw_topo_slot_owner(t, gw_slot_of(key, len));
}

/* ---- diff */

static bool same_owner(const struct gw_topo_node *a, const struct gw_topo_node *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a->id, b->id) == 0 && strcmp(a->host, b->host) == 0 && a->port == b->port &&
           a->tls_port == b->tls_port;
}

void gw_topo_diff(const struct gw_topo *from, const struct gw_topo *to, struct gw_topo_diff *d)
{
    memset(d, 0, sizeof *d);
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++) {
        const struct gw_topo_node *a = from ? gw_topo_slot_owner(from, s) : NULL;
        if (!same_owner(a, gw_topo_slot_owner(to, s))) {
            d->bits[s / 8] |= (uint8_t)(1u << (s % 8));
            d->count++;
        }
    }
}

int gw_topo_diff_next(const struct gw_topo_diff *d, unsigned from)
{
    for (unsigned s = from; s < GW_SLOT_COUNT; s++) {
        if (d->bits[s / 8] == 0) {
            s |= 7; /* skip the rest of an empty byte */
            continue;
        }
        if (d->bits[s / 8] & (1u << (s % 8)))
            return (int)s;
    }
    return -1;
}

/* ---- MOVED / ASK */

/* A decimal number of 1..digits_max digits at s[*i], at most max. */
static bool parse_uint(const char *s, size_t len, size_t *i, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    size_t start = *i;

    while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < 6)
        v = v * 10 + (unsigned long)(s[(*i)++] - '0');
    if (*i == start || v > max || (*i < len && s[*i] >= '0' && s[*i] <= '9'))
        return false;
    *out = v;
    return true;
}

int gw_topo_redirect_parse(const char *s, size_t len, struct gw_topo_redirect *r)
{
    enum gw_topo_redirect_kind kind;
    unsigned long slot, port;
    size_t i;

    if (len >= 6 && memcmp(s, "MOVED ", 6) == 0) {
        kind = GW_TOPO_MOVED;
        i = 6;
    } else if (len >= 4 && memcmp(s, "ASK ", 4) == 0) {
        kind = GW_TOPO_ASK;
        i = 4;
    } else {
        return -ENOENT;
    }
    if (!parse_uint(s, len, &i, GW_SLOT_COUNT - 1, &slot) || i >= len || s[i++] != ' ')
        return -EBADMSG;
    /* host:port to the end; the port follows the last ':' (v6 hosts have
     * colons of their own). */
    const char *colon = NULL;
    for (size_t j = i; j < len; j++)
        if (s[j] == ':')
            colon = s + j;
    if (!colon)
        return -EBADMSG;
    size_t hlen = (size_t)(colon - (s + i));
    size_t p = (size_t)(colon - s) + 1;
    if (!host_ok(s + i, hlen) || !parse_uint(s, len, &p, 65535, &port) || port == 0 || p != len)
        return -EBADMSG;
    r->kind = kind;
    r->slot = (uint16_t)slot;
    r->port = (uint16_t)port;
    memcpy(r->host, s + i, hlen);
    r->host[hlen] = '\0';
    return 0;
}
