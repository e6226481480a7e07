/* The cluster roster. Entries are JSON the nodes wrote themselves; a read
 * joins them as they are (each came from a trusted node's own serializer). */
#define GW_LOG_MODULE "bus"

#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "link.h"
#include "log.h"

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

    if (!r->link) {
        const char *one[] = { mine };
        gw_roster_store(r, 1, one, &len);
    } else if (gw_link_ready(r->link) && gw_link_roster_write(r->link, mine, len, GW_ROSTER_TTL_S) == 0) {
        gw_link_roster_read(r->link);
    }
    free(mine);
}

void gw_roster_start(struct gw_roster *r, struct event_base *base, struct gw_link *link,
                     gw_roster_describe_fn describe, void *ctx)
{
    struct timeval tv = { 1, 0 };

    r->link = link;
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
