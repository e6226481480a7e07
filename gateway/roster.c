/* The cluster roster. Entries are JSON the nodes wrote themselves; a read
 * joins them as they are (each came from a trusted node's own serializer). */
#define GW_LOG_MODULE "bus"

#include "roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

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

void gw_roster_store(struct gw_roster *r, int n, const char *const *json, const size_t *jlen)
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

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_roster *r = arg;
    size_t len;
    char *mine = r->describe(r->ctx, &len);

    if (r->clink) {
        if (gw_clink_ready(r->clink) && gw_clink_roster_write(r->clink, mine, len, GW_ROSTER_TTL_S) == 0)
            gw_clink_roster_read(r->clink);
    } else if (!r->link) {
        const char *one[] = { mine };
        gw_roster_store(r, 1, one, &len);
    } else if (gw_link_ready(r->link) && gw_link_roster_write(r->link, mine, len, GW_ROSTER_TTL_S) == 0) {
        gw_link_roster_read(r->link);
    }
    free(mine);
}

void gw_roster_start(struct gw_roster *r, struct event_base *base, struct gw_link *link, struct gw_clink *clink,
                     gw_roster_describe_fn describe, void *ctx)
{
    struct timeval tv = { 1, 0 };

    r->link = link;
    r->clink = clink;
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
