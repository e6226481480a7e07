/* This node's presence incarnations (presence.h has the design): its
 * liveness key, refreshed every second, the check of everyone else's, the
 * purge of incarnations that are gone, and a new incarnation each time the
 * link goes live. Also the module's timer and its start and stop. */
#define GW_LOG_MODULE "presence"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "log.h"
#include "presence_int.h"

/* ---- incarnations: this node's liveness and the purge of departed ones ---- */

/* One incarnation being purged ("<node id>/<incarnation>"). */
struct purge_wait {
    struct gw_presence *p;
    char who[];
};

static struct purge_wait *purge_wait_new(struct gw_presence *p, const char *who, size_t len)
{
    struct purge_wait *w = gw_xmalloc(sizeof *w + len + 1);
    w->p = p;
    memcpy(w->who, who, len);
    w->who[len] = '\0';
    p->sweeps_in_flight++;
    return w;
}

static void purge_wait_done(struct purge_wait *w)
{
    w->p->sweeps_in_flight--;
    free(w);
}

static void on_purge_reply(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer > 0) {
        gw_stat_add(&w->p->stats->presence_members_purged, (uint64_t)reply->element[0]->integer);
        LOG_INFO("presence purged incarnation=%s members=%lld users_left=%zu", w->who,
                 reply->element[0]->integer, reply->element[3]->elements);
    }
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("presence purge failed incarnation=%s error=\"%s\"", w->who, reply->str);
    purge_wait_done(w);
}

/* The channels of a departed incarnation: one purge FCALL each (each in its
 * channel's slot), then the incarnation's index and set entry go, behind
 * them on the same connection. */
static void on_purge_channels(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;
    struct gw_presence *p = w->p;
    char prefix[KEY_MAX], nk[KEY_MAX], max[16];
    struct pkeys pk;

    if (reply && reply->type == REDIS_REPLY_ARRAY && p->link) {
        int plen = snprintf(prefix, sizeof prefix, "%s/", w->who);
        int xlen = snprintf(max, sizeof max, "%d", p->cfg->presence_max_members);
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *k = reply->element[i];
            if (k->type != REDIS_REPLY_STRING || !gw_presence_keys(k->str, k->len, &pk))
                continue;
            const char *argv[] = { "FCALL", "wsgate_presence_purge", "3", pk.set, pk.users, pk.events,
                                   k->str, prefix, max };
            size_t lens[] = { 5, 21, 1, pk.slen, pk.ulen, pk.elen, k->len, (size_t)plen, (size_t)xlen };
            struct purge_wait *one = purge_wait_new(p, w->who, strlen(w->who));
            if (gw_link_call(p->link, 9, argv, lens, on_purge_reply, one) != 0)
                purge_wait_done(one);
        }
        size_t nklen = (size_t)snprintf(nk, sizeof nk, NODE_KEY "%s", w->who);
        const char *del[] = { "DEL", nk };
        size_t del_lens[] = { 3, nklen };
        gw_link_call(p->link, 2, del, del_lens, gw_presence_on_write, p);
        gw_presence_call2(p, "SREM", NODES_SET, sizeof NODES_SET - 1, w->who, strlen(w->who));
    }
    purge_wait_done(w);
}

static void purge(struct gw_presence *p, const char *who, size_t len)
{
    char nk[KEY_MAX];
    struct purge_wait *w = purge_wait_new(p, who, len);
    size_t nklen = (size_t)snprintf(nk, sizeof nk, NODE_KEY "%.*s", (int)len, who);
    const char *argv[] = { "SMEMBERS", nk };
    size_t lens[] = { 8, nklen };

    LOG_INFO("presence incarnation gone, purging incarnation=%s", w->who);
    if (gw_link_call(p->link, 2, argv, lens, on_purge_channels, w) != 0)
        purge_wait_done(w);
}

/* EXISTS wsgate:presence:inc:<who>: 0 means the incarnation is gone. */
static void on_alive_reply(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && w->p->link)
        purge(w->p, w->who, strlen(w->who));
    purge_wait_done(w);
}

static bool is_mine(const struct gw_presence *p, const char *who, size_t len, bool *current)
{
    size_t idlen = strlen(p->cfg->node_id);
    bool mine = len > idlen && memcmp(who, p->cfg->node_id, idlen) == 0 && who[idlen] == '/';
    *current = mine && strlen(p->inc) == len - idlen - 1 && memcmp(who + idlen + 1, p->inc, len - idlen - 1) == 0;
    return mine;
}

static void on_nodes_reply(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;
    struct gw_presence *p = w->p;
    char key[KEY_MAX];

    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        bool current;
        if (e->type != REDIS_REPLY_STRING || e->len + sizeof INC_KEY >= KEY_MAX)
            continue;
        if (is_mine(p, e->str, e->len, &current)) {
            if (!current)
                purge(p, e->str, e->len); /* an earlier incarnation of this node */
            continue;
        }
        size_t klen = (size_t)snprintf(key, sizeof key, INC_KEY "%.*s", (int)e->len, e->str);
        const char *argv[] = { "EXISTS", key };
        size_t lens[] = { 6, klen };
        struct purge_wait *one = purge_wait_new(p, e->str, e->len);
        if (gw_link_call(p->link, 2, argv, lens, on_alive_reply, one) != 0)
            purge_wait_done(one);
    }
    purge_wait_done(w);
}

/* The answer to the refresh of this incarnation's key (SET XX): nil means
 * the key had expired, so the other nodes have purged (or are purging) this
 * incarnation's members: a node that was stopped or cut off for longer than
 * the TTL while its link stayed up. It registers everything again under a
 * new incarnation, as after a reconnect. */
struct refresh_wait {
    struct gw_presence *p;
    char inc[sizeof((struct gw_presence *)0)->inc];
};

static void on_refresh_reply(void *token, const redisReply *reply)
{
    struct refresh_wait *w = token;
    struct gw_presence *p = w->p;

    if (reply && reply->type == REDIS_REPLY_NIL && p->registered && strcmp(w->inc, p->inc) == 0) {
        LOG_WARN("presence incarnation expired, registering again incarnation=%s/%s", p->cfg->node_id, p->inc);
        gw_presence_live(p);
    } else if (reply) {
        gw_presence_on_write(p, reply);
    }
    free(w);
}

/* This incarnation's key, then (once live) the check of everyone's. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_presence *p = arg;
    char key[KEY_MAX];
    (void)fd;
    (void)what;

    gw_presence_leave_due(p, false);
    if (++p->ticks % TICKS_PER_CHECK != 0)
        return;
    if (!p->link || !p->registered || !gw_link_ready(p->link))
        return;
    size_t klen = (size_t)snprintf(key, sizeof key, INC_KEY "%s/%s", p->cfg->node_id, p->inc);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL, "XX" };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1, 2 };
    struct refresh_wait *rw = gw_xmalloc(sizeof *rw);
    rw->p = p;
    memcpy(rw->inc, p->inc, sizeof rw->inc);
    if (gw_link_call(p->link, 6, set, set_lens, on_refresh_reply, rw) != 0)
        free(rw);
    if (p->sweeps_in_flight)
        return;
    const char *argv[] = { "SMEMBERS", NODES_SET };
    size_t lens[] = { 8, sizeof NODES_SET - 1 };
    struct purge_wait *w = purge_wait_new(p, "", 0);
    if (gw_link_call(p->link, 2, argv, lens, on_nodes_reply, w) != 0)
        purge_wait_done(w);
}

void gw_presence_live(struct gw_presence *p)
{
    char key[KEY_MAX], who[KEY_MAX];

    if (!p->link)
        return;
    bool again = p->registered;
    char old[sizeof p->inc];
    memcpy(old, p->inc, sizeof old);
    gw_presence_new_incarnation(p);
    p->registered = true;
    /* Alive first, then listed: a sweep never sees a listed incarnation
     * without its key. */
    size_t klen = (size_t)snprintf(key, sizeof key, INC_KEY "%s/%s", p->cfg->node_id, p->inc);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1 };
    gw_link_call(p->link, 5, set, set_lens, gw_presence_on_write, p);
    size_t wlen = (size_t)snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, p->inc);
    gw_presence_call2(p, "SADD", NODES_SET, sizeof NODES_SET - 1, who, wlen);
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d)) {
        size_t nklen = gw_presence_node_key(p, p->inc, key);
        gw_presence_call2(p, "SADD", key, nklen, d->key, d->klen);
    }
    size_t members = 0;
    for (struct gw_dict_entry *d = gw_dict_first(&p->sessions); d; d = gw_dict_next(&p->sessions, d)) {
        const struct pres_sess *s = d->value;
        uint64_t session_id;
        memcpy(&session_id, d->key, sizeof session_id);
        for (int i = 0; i < s->n; i++, members++)
            gw_presence_fcall_member(p, true, session_id, &s->e[i]);
    }
    LOG_INFO("presence incarnation=%s/%s members=%zu", p->cfg->node_id, p->inc, members);
    if (again) {
        /* Registered again above first: the old entries go only now. */
        wlen = (size_t)snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, old);
        purge(p, who, wlen);
    }
}

void gw_presence_start(struct gw_presence *p, struct event_base *base)
{
    struct timeval tv = { 0, TICK_MS * 1000 };

    gw_presence_new_incarnation(p);
    p->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, p);
    if (!p->tick_ev || event_add(p->tick_ev, &tv) != 0) {
        LOG_ERR("cannot start the presence timer");
        abort();
    }
}

void gw_presence_stop(struct gw_presence *p)
{
    gw_presence_leave_due(p, true); /* queued on a live link before it closes; else the purge of others does it */
    if (p->tick_ev) {
        event_free(p->tick_ev);
        p->tick_ev = NULL;
    }
}

void gw_presence_deinit(struct gw_presence *p)
{
    for (struct gw_dict_entry *d = gw_dict_first(&p->sessions); d; d = gw_dict_next(&p->sessions, d)) {
        struct pres_sess *s = d->value;
        for (int i = 0; i < s->n; i++)
            gw_presence_entry_free(&s->e[i]);
        free(s->e);
        free(s);
    }
    gw_presence_leave_due(p, true); /* nothing sent: the link is stopped */
    gw_dict_deinit(&p->sessions);
    gw_dict_deinit(&p->chans);
    gw_dict_deinit(&p->delayed_by);
}
