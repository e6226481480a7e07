/* The cluster roster. Entries are JSON the nodes wrote themselves; a read
 * joins them as they are (each came from a trusted node's own serializer).
 * Its Redis commands are built and their replies walked here, once for both
 * links: only the call that carries a command differs (gw_link_call, or
 * gw_clink_call to the master of the roster's hash slot). */
#define GW_LOG_MODULE "bus"

#include "roster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "channel.h"
#include "clink.h"
#include "json.h"
#include "link.h"
#include "log.h"

/* A master's "host:port" (host up to 255 bytes, as common/topo.h keeps it). */
#define ROSTER_ADDR_MAX 272

void gw_roster_init(struct gw_roster *r)
{
    static const char empty[] = "{\"nodes\":[]}";

    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    /* Until the first read (about a second after the link is live). */
    r->json = gw_xstrndup(empty, sizeof empty - 1);
    r->len = sizeof empty - 1;
}

static void keep(struct gw_roster *r, char *json, size_t len)
{
    pthread_mutex_lock(&r->lock);
    free(r->json);
    r->json = json;
    r->len = len;
    pthread_mutex_unlock(&r->lock);
}

/* Keeps {"nodes":[json...]}: the entries of one read, copied. */
static void store(struct gw_roster *r, int n, const char *const *json, const size_t *jlen)
{
    static const char head[] = "{\"nodes\":[";
    size_t len = sizeof head - 1 + 3;
    for (int i = 0; i < n; i++)
        len += jlen[i] + 1;
    char *out = gw_xmalloc(len), *o = out;
    memcpy(o, head, sizeof head - 1);
    o += sizeof head - 1;
    for (int i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        memcpy(o, json[i], jlen[i]);
        o += jlen[i];
    }
    *o++ = ']';
    *o++ = '}';
    keep(r, out, (size_t)(o - out));
}

/* ---- the roster in Redis ---- */

/* Single-Redis keys; cluster mode puts them under the {wsgate} hash tag, so
 * that they share one slot and the MGET that reads every entry stays on one
 * master (without the tag: CROSSSLOT, tests/integration/test_redis_cluster.py). */
#define SET_PLAIN "wsgate:nodes"
#define KEY_PLAIN "wsgate:node:"
#define SET_TAGGED "{wsgate}:nodes"
#define KEY_TAGGED "{wsgate}:node:"
#define ROSTER_MAX 1024 /* nodes one read reports */

/* Sends one roster command on the link in use; the one place that differs
 * between the two links. Returns as gw_link_call (cb not called on failure). */
static int call(struct gw_roster *r, int argc, const char *const *argv, const size_t *lens, gw_link_reply_fn cb,
                void *token)
{
    if (r->clink)
        return gw_clink_call(r->clink, r->set, strlen(r->set), argc, argv, lens, cb, token);
    return gw_link_call(r->link, argc, argv, lens, cb, token);
}

/* This node's entry (borrowed json) under <key prefix><node id> for
 * GW_ROSTER_TTL_S, and its id in the set. Best effort: 0 or the call's error. */
static int write_entry(struct gw_roster *r, const char *json, size_t len)
{
    char key[128], ttl[16];
    size_t klen = (size_t)snprintf(key, sizeof key, "%s%s", r->key_prefix, r->node_id);

    if (klen >= sizeof key)
        return -EINVAL; /* node ids are at most 64 bytes (config_opts.c) */
    snprintf(ttl, sizeof ttl, "%d", GW_ROSTER_TTL_S);
    const char *set[] = { "SET", key, json, "EX", ttl };
    size_t set_lens[] = { 3, klen, len, 2, strlen(ttl) };
    const char *sadd[] = { "SADD", r->set, r->node_id };
    size_t sadd_lens[] = { 4, strlen(r->set), strlen(r->node_id) };
    int rc = call(r, 5, set, set_lens, NULL, NULL);
    return rc != 0 ? rc : call(r, 3, sadd, sadd_lens, NULL, NULL);
}

/* One read between SMEMBERS' answer and MGET's: the ids asked for, each
 * NUL-terminated, one after the other. Owned by the MGET's callback. */
struct read_ids {
    struct gw_roster *r;
    size_t n;
    char ids[];
};

/* MGET's answer: an entry per id, nil for one that expired, whose id is then
 * removed from the set (best effort: the next read retries). Stores what
 * came, nothing when the read failed. Takes ri. */
static void on_values(void *token, const redisReply *reply)
{
    struct read_ids *ri = token;
    struct gw_roster *r = ri->r;
    const char *json[ROSTER_MAX];
    size_t jlen[ROSTER_MAX];
    int n = 0;

    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        const char *id = ri->ids;
        for (size_t i = 0; i < reply->elements && i < ri->n; i++, id += strlen(id) + 1) {
            const redisReply *v = reply->element[i];
            if (v->type == REDIS_REPLY_STRING) {
                json[n] = v->str;
                jlen[n++] = v->len;
            } else {
                const char *argv[] = { "SREM", r->set, id };
                size_t lens[] = { 4, strlen(r->set), strlen(id) };
                call(r, 3, argv, lens, NULL, NULL);
            }
        }
    }
    store(r, n, json, jlen);
    free(ri);
}

/* SMEMBERS' answer: one MGET of every id's key (at most ROSTER_MAX). An empty
 * or failed answer, or an MGET that cannot be sent, stores an empty roster. */
static void on_ids(void *token, const redisReply *reply)
{
    struct gw_roster *r = token;
    size_t n = reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    size_t plen = strlen(r->key_prefix), keys_len = 0, ids_len = 0;

    if (n > ROSTER_MAX)
        n = ROSTER_MAX;
    for (size_t i = 0; i < n; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            n = 0; /* not a set's answer */
            break;
        }
        keys_len += plen + reply->element[i]->len;
        ids_len += reply->element[i]->len + 1;
    }
    if (n == 0) {
        store(r, 0, NULL, NULL);
        return;
    }
    const char **argv = gw_xmalloc(sizeof(*argv) * (n + 1));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (n + 1));
    char *keys = gw_xmalloc(keys_len), *k = keys;
    struct read_ids *ri = gw_xmalloc(sizeof *ri + ids_len);
    char *id = ri->ids;

    ri->r = r;
    ri->n = n;
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        memcpy(k, r->key_prefix, plen);
        memcpy(k + plen, e->str, e->len);
        argv[i + 1] = k;
        lens[i + 1] = plen + e->len;
        k += plen + e->len;
        memcpy(id, e->str, e->len);
        id[e->len] = '\0';
        id += e->len + 1;
    }
    if (call(r, (int)n + 1, argv, lens, on_values, ri) != 0) {
        free(ri);
        store(r, 0, NULL, NULL);
    }
    free(keys);
    free(lens);
    free(argv);
}

/* Every entry of the roster: SMEMBERS, then one MGET (on_ids, on_values). */
static int read_all(struct gw_roster *r)
{
    const char *argv[] = { "SMEMBERS", r->set };
    size_t lens[] = { 8, strlen(r->set) };
    return call(r, 2, argv, lens, on_ids, r);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_roster *r = arg;
    size_t len;
    char *mine = r->describe(r->ctx, &len);

    if (!r->link && !r->clink) {
        const char *one[] = { mine };
        store(r, 1, one, &len);
    } else if ((r->clink ? gw_clink_ready(r->clink) : gw_link_ready(r->link)) && write_entry(r, mine, len) == 0) {
        read_all(r);
    }
    free(mine);
}

void gw_roster_start(struct gw_roster *r, struct event_base *base, struct gw_link *link, struct gw_clink *clink,
                     const char *node_id, gw_roster_describe_fn describe, void *ctx)
{
    struct timeval tv = { 1, 0 };

    r->link = link;
    r->clink = clink;
    r->node_id = node_id;
    r->set = clink ? SET_TAGGED : SET_PLAIN;
    r->key_prefix = clink ? KEY_TAGGED : KEY_PLAIN;
    r->describe = describe;
    r->ctx = ctx;
    r->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, r);
    if (!r->tick_ev || event_add(r->tick_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the roster timer");
        abort();
    }
}

void gw_roster_stop(struct gw_roster *r)
{
    if (r->tick_ev)
        event_free(r->tick_ev);
    r->tick_ev = NULL;
}

void gw_roster_deinit(struct gw_roster *r)
{
    free(r->json);
    r->json = NULL;
    pthread_mutex_destroy(&r->lock);
}

char *gw_roster_copy(struct gw_roster *r, size_t *len)
{
    pthread_mutex_lock(&r->lock);
    char *out = gw_xmalloc(r->len + 1);
    memcpy(out, r->json, r->len);
    out[r->len] = '\0';
    *len = r->len;
    pthread_mutex_unlock(&r->lock);
    return out;
}

/* Sums top over the workers into out (one entry per name) and sorts out by
 * subscribers, most first. Returns how many out holds (at most n). */
static int merge_top(const struct gw_roster_channel *top, int n, struct gw_roster_channel *out)
{
    int m = 0;

    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < m && strcmp(out[j].name, top[i].name) != 0)
            j++;
        if (j == m)
            out[m++] = top[i];
        else
            out[j].subscribers += top[i].subscribers;
    }
    /* Insertion sort, stable: at most 64 workers x 8 entries. */
    for (int i = 1; i < m; i++) {
        struct gw_roster_channel c = out[i];
        int j = i;
        for (; j > 0 && out[j - 1].subscribers < c.subscribers; j--)
            out[j] = out[j - 1];
        out[j] = c;
    }
    return m;
}

/* Room for redis_json's text. */
static size_t redis_len(const struct gw_roster_self *self)
{
    size_t n = 64;

    for (int i = 0; i < self->nmasters; i++)
        n += 160 + 6 * strlen(self->masters[i].host);
    return n;
}

/* ,"redis":{"mode":...,"masters":[{"address":...,"slots":...,"link":...,
 * "rtt_ms":...,"reconnects":...}]} into out (room: redis_len). The host comes
 * from the cluster's own answers: escaped all the same. */
static int redis_json(const struct gw_roster_self *self, char *out, size_t cap)
{
    int o = snprintf(out, cap, ",\"redis\":{\"mode\":\"%s\"", self->redis_mode ? self->redis_mode : "standalone");

    if (self->nmasters > 0)
        o += snprintf(out + o, cap - (size_t)o, ",\"masters\":[");
    for (int i = 0; i < self->nmasters; i++) {
        const struct gw_roster_master *m = &self->masters[i];
        char addr[ROSTER_ADDR_MAX];
        size_t alen = (size_t)snprintf(addr, sizeof addr, "%s:%d", m->host, m->port);
        if (alen >= sizeof addr)
            alen = sizeof addr - 1;
        o += snprintf(out + o, cap - (size_t)o, "%s{\"address\":", i ? "," : "");
        o += (int)gw_json_escape(out + o, addr, alen);
        o += snprintf(out + o, cap - (size_t)o, ",\"slots\":%u,\"link\":\"%s\",\"rtt_ms\":%.3f,\"reconnects\":%llu}",
                      m->slots, m->link, (double)m->rtt_us / 1000.0, (unsigned long long)m->reconnects);
    }
    if (self->nmasters > 0)
        o += snprintf(out + o, cap - (size_t)o, "]");
    o += snprintf(out + o, cap - (size_t)o, "}");
    return o;
}

char *gw_roster_entry(const struct gw_roster_self *self, size_t *len)
{
    struct gw_roster_channel *top = gw_xmalloc(sizeof(*top) * (size_t)(self->ntop ? self->ntop : 1));
    int ntop = merge_top(self->top, self->ntop, top);
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    /* The listen host is the operator's text, of any length: escaped, and
     * the buffer sized from it. */
    size_t alen = strlen(self->host) + 8;
    char *addr = gw_xmalloc(alen);
    alen = (size_t)snprintf(addr, alen, "%s:%d", self->host, self->port);
    char *addr_json = gw_xmalloc(gw_json_escape_len(addr, alen) + 1);
    addr_json[gw_json_escape(addr_json, addr, alen)] = '\0';
    size_t cap = 512 + strlen(self->id) + strlen(self->version) + strlen(addr_json) +
                 GW_ROSTER_TOP_CHANNELS * (GW_CHANNEL_MAX + 48) + redis_len(self);
    char *buf = gw_xmalloc(cap);
    int o = snprintf(buf, cap,
                     "{\"id\":\"%s\",\"address\":%s,\"version\":\"%s\",\"ready\":%s,\"draining\":%s,"
                     "\"connections\":%llu,\"subscriptions\":%llu,\"channels\":%llu,\"messages_in\":%llu,"
                     "\"messages_out\":%llu,\"shed\":%llu,\"time_ms\":%lld,\"top_channels\":[",
                     self->id, addr_json, self->version, self->ready ? "true" : "false",
                     self->draining ? "true" : "false", (unsigned long long)self->connections,
                     (unsigned long long)self->subscriptions, (unsigned long long)self->channels,
                     (unsigned long long)self->messages_in, (unsigned long long)self->messages_out,
                     (unsigned long long)self->shed, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    free(addr_json);
    free(addr);
    for (int i = 0; i < ntop && i < GW_ROSTER_TOP_CHANNELS; i++)
        o += snprintf(buf + o, cap - (size_t)o, "%s{\"channel\":\"%s\",\"subscribers\":%u}", i ? "," : "",
                      top[i].name, top[i].subscribers);
    o += snprintf(buf + o, cap - (size_t)o, "]");
    o += redis_json(self, buf + o, cap - (size_t)o);
    o += snprintf(buf + o, cap - (size_t)o, "}");
    free(top);
    *len = (size_t)o;
    return buf;
}
