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


/* ---- CLUSTER NODES: "<id> <ip:port@cport[,hostname]> <flags> <master>
 * <ping-sent> <pong-recv> <config-epoch> <link-state> [<slot> ...]" */

#define NODES "CLUSTER NODES"

/* One space-separated field of a line. */
struct field {
    const char *s;
    size_t len;
};

/* The first `max` fields of line into f; *rest is what follows them (NULL
 * when the line ends there). Returns how many fields were found (< max when
 * the line is shorter). Empty fields (two spaces) count as fields. */
static size_t split(const char *line, size_t len, struct field *f, size_t max, const char **rest)
{
    size_t n = 0, i = 0;

    *rest = NULL;
    while (n < max && i <= len) {
        size_t j = i;
        while (j < len && line[j] != ' ')
            j++;
        f[n].s = line + i;
        f[n].len = j - i;
        n++;
        i = j + 1;
    }
    if (n == max && i <= len)
        *rest = line + i;
    return n;
}

static bool field_is(const struct field *f, const char *w)
{
    return f->len == strlen(w) && memcmp(f->s, w, f->len) == 0;
}

/* A whole field of decimal digits, at most max. */
static bool field_num(const char *s, size_t len, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool hex_id(const struct field *f)
{
    if (f->len != GW_TOPO_ID_LEN)
        return false;
    for (size_t i = 0; i < f->len; i++)
        if (!((f->s[i] >= '0' && f->s[i] <= '9') || (f->s[i] >= 'a' && f->s[i] <= 'f')))
            return false;
    return true;
}

/* Whether the comma-separated flags hold word w. */
static bool has_flag(const struct field *flags, const char *w)
{
    size_t wl = strlen(w), i = 0;

    while (i < flags->len) {
        size_t j = i;
        while (j < flags->len && flags->s[j] != ',')
            j++;
        if (j - i == wl && memcmp(flags->s + i, w, wl) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* "ip:port@cport[,hostname]": the ip (may be empty) and the port. */
static int parse_addr(struct gw_topo *t, const struct field *a, struct field *ip, uint16_t *port)
{
    const char *at = memchr(a->s, '@', a->len), *colon = NULL;
    unsigned long long p, cp;

    if (!at)
        return gw_topo_fail(t, NODES ": address without @cport");
    for (const char *c = a->s; c < at; c++)
        if (*c == ':')
            colon = c;
    const char *comma = memchr(at, ',', a->len - (size_t)(at - a->s));
    const char *cend = comma ? comma : a->s + a->len;
    if (!colon || !field_num(colon + 1, (size_t)(at - colon - 1), 65535, &p) ||
        !field_num(at + 1, (size_t)(cend - at - 1), 65535, &cp))
        return gw_topo_fail(t, NODES ": bad address");
    if (comma && !gw_topo_host_ok(comma + 1, (size_t)(a->s + a->len - comma - 1)))
        return gw_topo_fail(t, NODES ": bad hostname");
    ip->s = a->s;
    ip->len = (size_t)(colon - a->s);
    if (!gw_topo_host_ok(ip->s, ip->len))
        return gw_topo_fail(t, NODES ": bad ip");
    *port = (uint16_t)p;
    return 0;
}

/* The slot fields of a master's line: [s, end), space-separated. */
static int nodes_slots(struct gw_topo *t, const char *s, const char *end, size_t idx)
{
    while (s && s <= end) {
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        size_t len = sp ? (size_t)(sp - s) : (size_t)(end - s);
        const char *dash = memchr(s, '-', len);
        unsigned long long lo, hi;
        if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
            /* "[N->-id]" migrating / "[N-<-id]" importing: validated, not served */
            if (!dash || !field_num(s + 1, (size_t)(dash - s - 1), GW_SLOT_COUNT - 1, &lo) ||
                len - (size_t)(dash - s) != 4 + GW_TOPO_ID_LEN || (dash[1] != '>' && dash[1] != '<') ||
                dash[2] != '-')
                return gw_topo_fail(t, NODES ": bad migrating slot field");
        } else {
            if (dash ? !field_num(s, (size_t)(dash - s), GW_SLOT_COUNT - 1, &lo) ||
                           !field_num(dash + 1, len - (size_t)(dash - s) - 1, GW_SLOT_COUNT - 1, &hi)
                     : !field_num(s, len, GW_SLOT_COUNT - 1, &lo))
                return gw_topo_fail(t, NODES ": bad slot field");
            if (!dash)
                hi = lo;
            int rc = gw_topo_assign(t, (long long)lo, (long long)hi, idx, NODES);
            if (rc < 0)
                return rc;
        }
        s = sp ? sp + 1 : NULL;
    }
    return 0;
}

static int nodes_line(struct gw_topo *t, const char *line, size_t len, const char *seed_host)
{
    struct field f[8], ip = { NULL, 0 };
    const char *slots;
    uint16_t port = 0;
    unsigned long long epoch, ms;
    int rc;

    if (split(line, len, f, 8, &slots) < 8)
        return gw_topo_fail(t, NODES ": a line without the 8 fields");
    if (!hex_id(&f[0]))
        return gw_topo_fail(t, NODES ": bad node id");
    if ((rc = parse_addr(t, &f[1], &ip, &port)) < 0)
        return rc;
    if (f[2].len == 0 || !gw_topo_host_ok(f[2].s, f[2].len))
        return gw_topo_fail(t, NODES ": bad flags");
    if (!field_is(&f[3], "-") && !hex_id(&f[3]))
        return gw_topo_fail(t, NODES ": bad master id");
    if (!field_num(f[4].s, f[4].len, UINT64_MAX, &ms) || !field_num(f[5].s, f[5].len, UINT64_MAX, &ms) ||
        !field_num(f[6].s, f[6].len, UINT64_MAX, &epoch))
        return gw_topo_fail(t, NODES ": bad ping, pong or epoch");
    if (!field_is(&f[7], "connected") && !field_is(&f[7], "disconnected"))
        return gw_topo_fail(t, NODES ": bad link state");
    bool master = has_flag(&f[2], "master");
    if (!master || has_flag(&f[2], "handshake")) {
        if (slots)
            return gw_topo_fail(t, NODES ": slots on a node that is not a master");
        return 0;
    }
    if (ip.len == 0 && has_flag(&f[2], "myself") && seed_host && seed_host[0] &&
        gw_topo_host_ok(seed_host, strlen(seed_host))) {
        ip.s = seed_host;
        ip.len = strlen(seed_host);
    }
    if (ip.len == 0 || port == 0 || has_flag(&f[2], "noaddr")) {
        if (slots)
            return gw_topo_fail(t, NODES ": master %.40s serves slots and has no address", f[0].s);
        return 0;
    }
    if (gw_topo_index(t, f[0].s, f[0].len) != SIZE_MAX)
        return gw_topo_fail(t, NODES ": node %.40s listed twice", f[0].s);
    if (t->n_nodes == GW_TOPO_MAX_NODES)
        return gw_topo_fail(t, NODES ": more than %d masters", GW_TOPO_MAX_NODES);
    size_t idx = t->n_nodes;
    struct gw_topo_node *node = gw_topo_node_add(t);
    memcpy(node->id, f[0].s, GW_TOPO_ID_LEN);
    memcpy(node->host, ip.s, ip.len);
    node->port = port;
    node->config_epoch = epoch;
    node->health = has_flag(&f[2], "fail")                                   ? GW_TOPO_HEALTH_FAILED
                   : has_flag(&f[2], "fail?") || field_is(&f[7], "disconnected") ? GW_TOPO_HEALTH_UNKNOWN
                                                                            : GW_TOPO_HEALTH_ONLINE;
    return nodes_slots(t, slots, line + len, idx);
}

int gw_topo_from_nodes(struct gw_topo *t, const redisReply *reply, const char *seed_host,
                       uint64_t version)
{
    int rc = 0;

    gw_topo_reset(t);
    t->errstr[0] = '\0';
    if (!reply)
        rc = gw_topo_fail(t, NODES ": no reply");
    else if (reply->type == REDIS_REPLY_ERROR)
        rc = gw_topo_fail(t, NODES ": error reply: %.120s", reply->str ? reply->str : "");
    else if (!is_str(reply))
        rc = gw_topo_fail(t, NODES ": reply is not a string (type %d)", reply->type);
    for (size_t i = 0; rc == 0 && i < reply->len;) {
        const char *nl = memchr(reply->str + i, '\n', reply->len - i);
        if (!nl)
            rc = gw_topo_fail(t, NODES ": last line without a newline");
        else
            rc = nodes_line(t, reply->str + i, (size_t)(nl - (reply->str + i)), seed_host);
        i = nl ? (size_t)(nl - reply->str) + 1 : reply->len;
    }
    if (rc < 0) {
        gw_topo_reset(t);
        return rc;
    }
    t->version = version;
    return 0;
}
