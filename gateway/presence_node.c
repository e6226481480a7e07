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
#include "clock.h"
#include "log.h"
#include "presence_int.h"

/* ---- incarnations: this node's liveness and the purge of departed ones ---- */

/* One incarnation being checked or purged ("<node id>/<incarnation>"). A
 * purge counts its channels' FCALLs: the incarnation's index and listing go
 * only after the last one answered and none failed. */
struct purge_wait {
    struct gw_presence *p;
    int pending; /* purge FCALLs not answered yet */
    bool failed; /* one of them got no answer or an error */
    bool whole;  /* the index was read: drop it and the listing at the end */
    char who[];
};

static struct purge_wait *purge_wait_new(struct gw_presence *p, const char *who, size_t len)
{
    struct purge_wait *w = gw_xcalloc(1, sizeof *w + len + 1);
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

/* Every channel of w answered: a complete purge drops the index and the
 * listing (both on the node-wide keys' master, in this order); a failed one
 * leaves them for the next check, which purges again (an idempotent walk). */
static void purge_finish(struct purge_wait *w)
{
    struct gw_presence *p = w->p;
    char nk[KEY_MAX], ns[KEY_MAX];

    if (w->whole && !w->failed) {
        size_t nklen = gw_presence_ns_key(p, NODE_KEY, w->who, strlen(w->who), nk);
        const char *del[] = { "DEL", nk };
        size_t del_lens[] = { 3, nklen };
        gw_presence_call(p, nk, nklen, 2, del, del_lens, gw_presence_on_write, p);
        size_t nslen = gw_presence_ns_key(p, NODES_SET, "", 0, ns);
        gw_presence_call2(p, "SREM", ns, nslen, w->who, strlen(w->who));
    } else if (w->failed) {
        LOG_WARN("presence purge incomplete, trying again at the next check incarnation=%s", w->who);
    }
    purge_wait_done(w);
}

static void on_purge_reply(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer > 0) {
        gw_stat_add(&w->p->stats->presence_members_purged, (uint64_t)reply->element[0]->integer);
        LOG_INFO("presence purged incarnation=%s members=%lld users_left=%zu", w->who,
                 reply->element[0]->integer, reply->element[3]->elements);
    } else if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        w->failed = true;
        if (reply && reply->type == REDIS_REPLY_ERROR)
            LOG_WARN("presence purge failed incarnation=%s error=\"%s\"", w->who, reply->str);
    }
    if (--w->pending == 0)
        purge_finish(w);
}

/* One channel's purge FCALL (on its master) for w. */
static void purge_channel(struct purge_wait *w, const char *key, size_t klen, const char *prefix, size_t plen)
{
    w->pending++;
    if (gw_presence_fcall_purge(w->p, key, klen, prefix, plen, on_purge_reply, w) != 0) {
        w->failed = true;
        w->pending--;
    }
}

/* The channels of a departed incarnation (its index; with local, also this
 * node's own channels): one purge FCALL each, in its channel's slot. */
static void purge_channels(struct purge_wait *w, const redisReply *reply, bool local)
{
    struct gw_presence *p = w->p;
    char prefix[KEY_MAX];
    int plen = snprintf(prefix, sizeof prefix, "%s/", w->who);

    w->pending = 1; /* held until every FCALL is sent */
    for (size_t i = 0; reply && i < reply->elements; i++) {
        const redisReply *k = reply->element[i];
        if (k->type == REDIS_REPLY_STRING && !(local && gw_dict_find(&p->chans, k->str, k->len)))
            purge_channel(w, k->str, k->len, prefix, (size_t)plen);
    }
    for (struct gw_dict_entry *d = local ? gw_dict_first(&p->chans) : NULL; d; d = gw_dict_next(&p->chans, d))
        purge_channel(w, d->key, d->klen, prefix, (size_t)plen);
    if (--w->pending == 0)
        purge_finish(w);
}

static void on_purge_index(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        purge_wait_done(w); /* the next check tries again */
        return;
    }
    w->whole = true;
    purge_channels(w, reply, false);
}

/* A previous incarnation of this node: its index may miss a channel whose
 * listing got no answer (which is why there is a new one), so this node's
 * channels are purged of it too. */
static void on_purge_own_index(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    w->whole = reply && reply->type == REDIS_REPLY_ARRAY;
    purge_channels(w, w->whole ? reply : NULL, true);
}

static void purge(struct gw_presence *p, const char *who, size_t len, bool own)
{
    char nk[KEY_MAX];
    struct purge_wait *w = purge_wait_new(p, who, len);
    size_t nklen = gw_presence_ns_key(p, NODE_KEY, who, len, nk);
    const char *argv[] = { "SMEMBERS", nk };
    size_t lens[] = { 8, nklen };

    LOG_INFO("presence incarnation gone, purging incarnation=%s", w->who);
    if (gw_presence_call(p, nk, nklen, 2, argv, lens, own ? on_purge_own_index : on_purge_index, w) != 0)
        purge_wait_done(w);
}

/* EXISTS <ns>inc:<who>: 0 means the incarnation is gone. */
static void on_alive_reply(void *token, const redisReply *reply)
{
    struct purge_wait *w = token;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        if (gw_now_us() >= w->p->purge_hold_until_us)
            purge(w->p, w->who, strlen(w->who), false);
        else
            LOG_DBG("presence incarnation gone, purge held after an outage incarnation=%s", w->who);
    }
    purge_wait_done(w);
}

/* This node could not reach the node-wide keys just now. */
static void hold_purges(struct gw_presence *p)
{
    p->purge_hold_until_us = gw_now_us() + PURGE_HOLD_US;
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
        if (e->type != REDIS_REPLY_STRING || e->len + sizeof INC_KEY + sizeof p->ns >= KEY_MAX)
            continue;
        if (is_mine(p, e->str, e->len, &current)) {
            /* An earlier incarnation of this node: only once this one has
             * every member (else a user here throughout would leave and join). */
            if (!current && gw_presence_chans_listed(p))
                purge(p, e->str, e->len, true);
            continue;
        }
        size_t klen = gw_presence_ns_key(p, INC_KEY, e->str, e->len, key);
        const char *argv[] = { "EXISTS", key };
        size_t lens[] = { 6, klen };
        struct purge_wait *one = purge_wait_new(p, e->str, e->len);
        if (gw_presence_call(p, key, klen, 2, argv, lens, on_alive_reply, one) != 0)
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

    if (reply && reply->type == REDIS_REPLY_NIL && p->inc_state == GW_PRESENCE_INC_LISTED &&
        strcmp(w->inc, p->inc) == 0) {
        LOG_WARN("presence incarnation expired, registering again incarnation=%s/%s", p->cfg->node_id, p->inc);
        gw_presence_live(p);
    } else if (reply) {
        gw_presence_on_write(p, reply);
    } else {
        hold_purges(p);
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
    if (p->old_inc[0] && gw_presence_chans_listed(p)) {
        /* Every member joined under this incarnation: the previous one's
         * entries go now (each channel's purge after its joins, on the same
         * connection). */
        char who[KEY_MAX];
        int wlen = snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, p->old_inc);
        p->old_inc[0] = '\0';
        purge(p, who, (size_t)wlen, true);
    }
    if (++p->ticks % TICKS_PER_CHECK != 0)
        return;
    if (p->inc_state == GW_PRESENCE_INC_NEW)
        return;
    if (!gw_presence_link_ready(p)) {
        hold_purges(p);
        return;
    }
    /* While one master of a cluster is down, every new incarnation fails
     * there again: they come 1, 2, 4... up to 16 s apart, not every second. */
    if (!p->dirty)
        p->relive_backoff = 0;
    else if (!p->sweeps_in_flight && p->ticks >= p->relive_at) {
        p->relive_backoff = p->relive_backoff ? (p->relive_backoff < 16 ? p->relive_backoff * 2 : 16) : 1;
        p->relive_at = p->ticks + p->relive_backoff * TICKS_PER_CHECK;
        LOG_WARN("presence writes got no answer, registering again incarnation=%s/%s", p->cfg->node_id, p->inc);
        gw_presence_live(p);
        return;
    }
    char who[KEY_MAX];
    int wlen = snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, p->inc);
    size_t klen = gw_presence_ns_key(p, INC_KEY, who, (size_t)wlen, key);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL, "XX" };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1, 2 };
    struct refresh_wait *rw = gw_xmalloc(sizeof *rw);
    rw->p = p;
    memcpy(rw->inc, p->inc, sizeof rw->inc);
    if (gw_presence_call(p, key, klen, 6, set, set_lens, on_refresh_reply, rw) != 0) {
        free(rw);
        hold_purges(p);
    }
    if (p->sweeps_in_flight)
        return;
    char ns[KEY_MAX];
    size_t nslen = gw_presence_ns_key(p, NODES_SET, "", 0, ns);
    const char *argv[] = { "SMEMBERS", ns };
    size_t lens[] = { 8, nslen };
    struct purge_wait *w = purge_wait_new(p, "", 0);
    if (gw_presence_call(p, ns, nslen, 2, argv, lens, on_nodes_reply, w) != 0)
        purge_wait_done(w);
}

/* The registration of an incarnation: its key (SET EX) and its listing in
 * <ns>nodes (SADD), both answered OK before any channel of it is listed. */
struct reg_wait {
    struct gw_presence *p;
    int pending;
    bool ok;
    char inc[sizeof((struct gw_presence *)0)->inc];
};

static void reg_answered(struct reg_wait *w)
{
    struct gw_presence *p = w->p;

    if (strcmp(w->inc, p->inc) == 0 && p->inc_state == GW_PRESENCE_INC_LISTING) {
        if (w->ok) {
            p->inc_state = GW_PRESENCE_INC_LISTED;
        } else {
            p->inc_state = GW_PRESENCE_INC_FAILED;
            p->dirty = true;
            LOG_WARN("presence registration failed, trying again incarnation=%s/%s", p->cfg->node_id, p->inc);
        }
        gw_presence_chan_registered(p, w->ok);
    }
    free(w);
}

static void on_reg_reply(void *token, const redisReply *reply)
{
    struct reg_wait *w = token;

    gw_presence_on_write(w->p, reply);
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        w->ok = false;
    if (--w->pending == 0)
        reg_answered(w);
}

void gw_presence_live(struct gw_presence *p)
{
    char key[KEY_MAX], who[KEY_MAX], ns[KEY_MAX];

    if (!p->link && !p->clink)
        return;
    bool again = p->inc_state != GW_PRESENCE_INC_NEW;
    if (again) {
        hold_purges(p); /* the link was down: so may everyone's have been */
        /* The previous incarnation is purged once this one has joined every
         * member; an older one still waiting is left to the 1 s check. */
        if (!p->old_inc[0])
            memcpy(p->old_inc, p->inc, sizeof p->old_inc);
    }
    gw_presence_new_incarnation(p);
    p->inc_state = GW_PRESENCE_INC_LISTING;
    p->dirty = false;
    size_t members = gw_presence_rejoin(p); /* held for the channels' listings */
    /* Alive first, then listed: a sweep never sees a listed incarnation
     * without its key (one connection: on a cluster both keys share a slot). */
    struct reg_wait *w = gw_xcalloc(1, sizeof *w);
    w->p = p;
    w->ok = true;
    w->pending = 2;
    memcpy(w->inc, p->inc, sizeof w->inc);
    size_t wlen = (size_t)snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, p->inc);
    size_t klen = gw_presence_ns_key(p, INC_KEY, who, wlen, key);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1 };
    if (gw_presence_call(p, key, klen, 5, set, set_lens, on_reg_reply, w) != 0) {
        w->ok = false;
        w->pending--;
    }
    size_t nslen = gw_presence_ns_key(p, NODES_SET, "", 0, ns);
    const char *sadd[] = { "SADD", ns, who };
    size_t sadd_lens[] = { 4, nslen, wlen };
    if (gw_presence_call(p, ns, nslen, 3, sadd, sadd_lens, on_reg_reply, w) != 0) {
        w->ok = false;
        w->pending--;
    }
    LOG_INFO("presence incarnation=%s/%s members=%zu", p->cfg->node_id, p->inc, members);
    if (w->pending == 0)
        reg_answered(w);
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
    gw_presence_chans_free(p);
    gw_dict_deinit(&p->delayed_by);
}
