/* The Redis Cluster slot map: the map itself, reading it, the diff of two
 * maps, and MOVED/ASK parsing. The reply parsers that build it are in
 * topo_reply.c. */
#include "topo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "topo_int.h"

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

void gw_topo_reset(struct gw_topo *t)
{
    t->version = 0;
    t->covered = 0;
    t->n_nodes = 0;
    for (size_t i = 0; i < GW_SLOT_COUNT; i++)
        t->owner[i] = GW_TOPO_NO_OWNER;
}

struct gw_topo *gw_topo_new(void)
{
    struct gw_topo *t = gw_xcalloc(1, sizeof *t);

    gw_topo_reset(t);
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
int gw_topo_fail(struct gw_topo *t, const char *fmt, ...)
{
    va_list ap;

    if (t->errstr[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(t->errstr, sizeof t->errstr, fmt, ap);
        va_end(ap);
    }
    return -EPROTO;
}

/* A host as Redis announces it: printable, no space, at most HOST_MAX bytes
 * (an empty one is allowed here; callers decide what it means). */
bool gw_topo_host_ok(const char *s, size_t len)
{
    if (len > GW_TOPO_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

struct gw_topo_node *gw_topo_node_add(struct gw_topo *t)
{
    if (t->n_nodes == t->cap_nodes) {
        t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 8;
        t->nodes = gw_xrealloc(t->nodes, t->cap_nodes * sizeof *t->nodes);
    }
    struct gw_topo_node *n = &t->nodes[t->n_nodes++];
    memset(n, 0, sizeof *n);
    return n;
}

size_t gw_topo_index(const struct gw_topo *t, const char *id, size_t len)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (len == GW_TOPO_ID_LEN && memcmp(t->nodes[i].id, id, len) == 0)
            return i;
    return SIZE_MAX;
}

/* Gives slots lo..hi to node idx; a slot already served is an error. */
int gw_topo_assign(struct gw_topo *t, long long lo, long long hi, size_t idx, const char *cmd)
{
    if (lo < 0 || hi >= GW_SLOT_COUNT || lo > hi)
        return gw_topo_fail(t, "%s: slot range %lld-%lld out of 0-16383", cmd, lo, hi);
    for (long long s = lo; s <= hi; s++) {
        if (t->owner[s] != GW_TOPO_NO_OWNER)
            return gw_topo_fail(t, "%s: slot %lld served by two masters (%s and %s)", cmd, s,
                        t->nodes[t->owner[s]].id, t->nodes[idx].id);
        t->owner[s] = (uint16_t)idx;
    }
    t->nodes[idx].slots += (uint32_t)(hi - lo + 1);
    t->covered += (uint32_t)(hi - lo + 1);
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

uint64_t gw_topo_epoch(const struct gw_topo *t)
{
    uint64_t e = 0;

    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->nodes[i].config_epoch > e)
            e = t->nodes[i].config_epoch;
    return e;
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
    size_t i = gw_topo_index(t, id, strlen(id));
    return i == SIZE_MAX ? NULL : &t->nodes[i];
}

const struct gw_topo_node *gw_topo_slot_owner(const struct gw_topo *t, unsigned slot)
{
    if (slot >= GW_SLOT_COUNT || t->owner[slot] == GW_TOPO_NO_OWNER)
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
    return strcmp(a->id, b->id) == 0 && strcmp(a->host, b->host) == 0 && a->port == b->port &&
           a->tls_port == b->tls_port;
}

void gw_topo_diff(const struct gw_topo *from, const struct gw_topo *to, struct gw_topo_diff *d)
{
    /* Which node of `to` each node of `from` is (GW_TOPO_NO_OWNER: none), so
     * that the slot loop compares indexes, not strings. */
    uint16_t same[GW_TOPO_MAX_NODES];
    size_t n_from = from ? from->n_nodes : 0;

    for (size_t i = 0; i < n_from; i++) {
        same[i] = GW_TOPO_NO_OWNER;
        for (size_t j = 0; j < to->n_nodes; j++)
            if (same_owner(&from->nodes[i], &to->nodes[j])) {
                same[i] = (uint16_t)j;
                break;
            }
    }
    memset(d, 0, sizeof *d);
    for (unsigned s = 0; s < GW_SLOT_COUNT; s++) {
        uint16_t a = from ? from->owner[s] : GW_TOPO_NO_OWNER, b = to->owner[s];
        bool kept = a == GW_TOPO_NO_OWNER ? b == GW_TOPO_NO_OWNER : b != GW_TOPO_NO_OWNER && same[a] == b;
        if (!kept) {
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
    if (!gw_topo_host_ok(s + i, hlen) || !parse_uint(s, len, &p, 65535, &port) || port == 0 || p != len)
        return -EBADMSG;
    r->kind = kind;
    r->slot = (uint16_t)slot;
    r->port = (uint16_t)port;
    memcpy(r->host, s + i, hlen);
    r->host[hlen] = '\0';
    return 0;
}

/* Whether s[0..len) starts with the word w (followed by a space or the end). */
static bool first_word(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);

    return len >= n && memcmp(s, w, n) == 0 && (len == n || s[n] == ' ');
}

enum gw_topo_error gw_topo_error_kind(const char *s, size_t len)
{
    if (first_word(s, len, "MOVED"))
        return GW_TOPO_ERR_MOVED;
    if (first_word(s, len, "ASK"))
        return GW_TOPO_ERR_ASK;
    if (first_word(s, len, "TRYAGAIN"))
        return GW_TOPO_ERR_TRYAGAIN;
    if (first_word(s, len, "CLUSTERDOWN"))
        return GW_TOPO_ERR_CLUSTERDOWN;
    if (first_word(s, len, "CROSSSLOT"))
        return GW_TOPO_ERR_CROSSSLOT;
    return GW_TOPO_ERR_OTHER;
}
