/* The channels this node has presence members in (presence.h has the
 * design): their local counts and their place in the incarnation's index,
 * which must cover every member Redis holds for this incarnation. On a
 * cluster the index (on the {wsgate} master) and a channel's keys (on its own
 * master) are on two connections that nothing orders, so the order is made
 * here: a member's join is sent only once its channel's listing (SADD to the
 * index, after the incarnation's own registration) was answered OK, and a
 * channel leaves the index only once every leave of its members here was
 * answered OK. A listing that fails forgets the held joins: the next
 * incarnation (the 1 s check makes one) lists and joins everything again.
 * Reads of a channel wait behind its held joins, so that a client's read
 * after its subscribe still sees its own join (same connection as the join).
 * With one Redis the same rules hold (the order there is free anyway). */
#define GW_LOG_MODULE "presence"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "log.h"
#include "presence_int.h"

/* A listing or a leave waiting for its answer: for channel key of incarnation inc. */
struct chan_wait {
    struct gw_presence *p;
    char inc[sizeof((struct gw_presence *)0)->inc];
    size_t klen;
    char key[];
};

static struct chan_wait *chan_wait_new(struct gw_presence *p, const char *key, size_t klen)
{
    struct chan_wait *w = gw_xmalloc(sizeof *w + klen + 1);
    w->p = p;
    memcpy(w->inc, p->inc, sizeof w->inc);
    w->klen = klen;
    memcpy(w->key, key, klen);
    w->key[klen] = '\0';
    return w;
}

static struct pchan *chan_find(struct gw_presence *p, const char *key, size_t klen)
{
    struct gw_dict_entry *d = gw_dict_find(&p->chans, key, klen);
    return d ? d->value : NULL;
}

/* The one place a channel changes state: keeps p->unlisted true. */
static void set_state(struct gw_presence *p, struct pchan *c, enum pchan_state s)
{
    if (c->state != PCHAN_LISTED && s == PCHAN_LISTED)
        p->unlisted--;
    else if (c->state == PCHAN_LISTED && s != PCHAN_LISTED)
        p->unlisted++;
    c->state = s;
}

/* c's held reads, sent (its joins went first, or will never go). */
static void send_reads(struct gw_presence *p, struct pchan *c)
{
    struct gw_list reads;

    gw_list_init(&reads);
    gw_list_splice(&reads, &c->reads); /* sending may reach c again */
    while (!gw_list_empty(&reads)) {
        struct gw_list *l = reads.prev; /* the oldest */
        gw_list_remove(l);
        p->up->read_send(p, gw_container_of(l, struct pres_read, link));
    }
}

/* c (key) gives up its listing: its held joins forgotten, its reads sent. */
static void give_up(struct gw_presence *p, struct pchan *c)
{
    set_state(p, c, PCHAN_IDLE);
    c->njoins = 0;
    send_reads(p, c);
}

/* Drops channel key when nothing of it is left here (no member, no leave in
 * flight); with every leave answered OK it leaves the index too. */
static void chan_maybe_free(struct gw_presence *p, const char *key, size_t klen, struct pchan *c)
{
    if (c->members || c->leaving)
        return;
    if (c->state == PCHAN_LISTED && !c->leave_failed && p->inc_state == GW_PRESENCE_INC_LISTED) {
        char nk[KEY_MAX];
        size_t nklen = gw_presence_node_key(p, p->inc, nk);
        gw_presence_call2(p, "SREM", nk, nklen, key, klen);
    }
    set_state(p, c, PCHAN_LISTED); /* out of the count of unlisted ones */
    send_reads(p, c);
    free(c->joins);
    free(c);
    gw_dict_delete(&p->chans, key, klen);
}

/* The listing of w->key was answered: OK under a listed incarnation, its
 * held joins go, then its held reads. */
static void on_listed(void *token, const redisReply *reply)
{
    struct chan_wait *w = token;
    struct gw_presence *p = w->p;
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;

    gw_presence_on_write(p, reply);
    if (strcmp(w->inc, p->inc) != 0) {
        free(w); /* an earlier incarnation's: the current one lists its own */
        return;
    }
    struct pchan *c = chan_find(p, w->key, w->klen);
    if (!c) {
        /* Its members left before the answer (no join was sent): out again. */
        if (ok && p->inc_state == GW_PRESENCE_INC_LISTED) {
            char nk[KEY_MAX];
            size_t nklen = gw_presence_node_key(p, p->inc, nk);
            gw_presence_call2(p, "SREM", nk, nklen, w->key, w->klen);
        }
    } else if (c->state == PCHAN_LISTING && ok && p->inc_state == GW_PRESENCE_INC_LISTED) {
        uint64_t *joins = c->joins;
        size_t n = c->njoins;
        c->joins = NULL;
        c->njoins = c->cap = 0;
        set_state(p, c, PCHAN_LISTED);
        for (size_t i = 0; i < n; i++) {
            const struct pres_entry *e = p->up->member(p, joins[i], w->key, w->klen);
            if (e) /* still here (a join held twice goes twice: HSETNX keeps one) */
                gw_presence_fcall_member(p, true, joins[i], e, NULL, NULL);
        }
        free(joins);
        if ((c = chan_find(p, w->key, w->klen)) != NULL) /* found again: a reply above may have dropped it */
            send_reads(p, c);
    } else if (c->state == PCHAN_LISTING) {
        if (reply) /* no answer: gw_presence_on_write marked p->dirty */
            p->dirty = true;
        LOG_WARN("presence channel not listed, its joins wait for the next incarnation channel=%s", w->key);
        give_up(p, c);
    }
    free(w);
}

/* Sends the listing of channel key (c) in this incarnation's index and in
 * the events index; its joins and reads wait for the answer. */
static void list_chan(struct gw_presence *p, const char *key, size_t klen, struct pchan *c)
{
    char nk[KEY_MAX], idx[KEY_MAX], now[24];
    size_t nklen = gw_presence_node_key(p, p->inc, nk);
    size_t ilen = gw_presence_ns_key(p, CHANNELS_INDEX, "", 0, idx);
    int nlen = snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    const char *sadd[] = { "SADD", nk, key };
    size_t slens[] = { 4, nklen, klen };
    const char *zadd[] = { "ZADD", idx, now, key };
    size_t zlens[] = { 4, ilen, (size_t)nlen, klen };
    struct chan_wait *w = chan_wait_new(p, key, klen);

    set_state(p, c, PCHAN_LISTING);
    if (gw_presence_call(p, nk, nklen, 3, sadd, slens, on_listed, w) != 0) {
        free(w);
        p->dirty = true;
        give_up(p, c);
        return;
    }
    if (gw_presence_call(p, idx, ilen, 4, zadd, zlens, gw_presence_on_write, p) != 0)
        p->dirty = true;
}

/* Channel key's entry, made (and its listing started) when new. */
static struct pchan *chan_get(struct gw_presence *p, const char *key, size_t klen)
{
    struct pchan *c = chan_find(p, key, klen);
    if (c)
        return c;
    c = gw_xcalloc(1, sizeof *c);
    c->state = PCHAN_LISTED;
    gw_list_init(&c->reads);
    gw_dict_add(&p->chans, key, klen, c, NULL);
    switch (p->inc_state) {
    case GW_PRESENCE_INC_LISTED:
        list_chan(p, key, klen, c);
        break;
    case GW_PRESENCE_INC_LISTING:
        set_state(p, c, PCHAN_WAITING);
        break;
    case GW_PRESENCE_INC_NEW:
    case GW_PRESENCE_INC_FAILED:
        set_state(p, c, PCHAN_IDLE);
        break;
    }
    return c;
}

static void hold(struct pchan *c, uint64_t session_id)
{
    if (c->njoins == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->joins = gw_xrealloc(c->joins, c->cap * sizeof *c->joins);
    }
    c->joins[c->njoins++] = session_id;
}

void gw_presence_chan_add(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e)
{
    struct pchan *c = chan_get(p, e->key, e->klen);

    c->members++;
    switch (c->state) {
    case PCHAN_LISTED:
        gw_presence_fcall_member(p, true, session_id, e, NULL, NULL);
        break;
    case PCHAN_WAITING:
    case PCHAN_LISTING:
        hold(c, session_id);
        break;
    case PCHAN_IDLE:
        break; /* the next incarnation joins it */
    }
}

/* A leave answered: the channel goes when it was the last thing of it here. */
static void on_left(void *token, const redisReply *reply)
{
    struct chan_wait *w = token;
    struct gw_presence *p = w->p;
    struct pchan *c = chan_find(p, w->key, w->klen);

    gw_presence_on_write(p, reply);
    if (c) {
        c->leaving--;
        if ((!reply || reply->type == REDIS_REPLY_ERROR) && strcmp(w->inc, p->inc) == 0)
            c->leave_failed = true; /* the member may still be there: the index keeps the channel */
        chan_maybe_free(p, w->key, w->klen, c);
    }
    free(w);
}

void gw_presence_chan_remove(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e)
{
    struct pchan *c = chan_find(p, e->key, e->klen);

    if (!c)
        return;
    c->members--;
    /* Not listed: this incarnation never joined it (an earlier one's purge removes it there). */
    if (c->state == PCHAN_LISTED) {
        struct chan_wait *w = chan_wait_new(p, e->key, e->klen);
        if (gw_presence_fcall_member(p, false, session_id, e, on_left, w))
            c->leaving++;
        else {
            free(w);
            c->leave_failed = true;
        }
    }
    chan_maybe_free(p, e->key, e->klen, c);
}

bool gw_presence_chan_hold_read(struct gw_presence *p, const char *key, size_t klen, struct pres_read *w)
{
    struct pchan *c = chan_find(p, key, klen);

    if (!c || (c->state != PCHAN_WAITING && c->state != PCHAN_LISTING))
        return false;
    gw_list_push(&c->reads, &w->link); /* newest first: sent last */
    return true;
}

void gw_presence_chan_reindex(struct gw_presence *p)
{
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d)) {
        struct pchan *c = d->value;
        c->njoins = 0;
        c->leave_failed = false; /* the index is a new one: this incarnation's leaves judge it */
        set_state(p, c, PCHAN_WAITING);
    }
}

void gw_presence_chan_hold_join(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen)
{
    struct pchan *c = chan_find(p, key, klen);

    if (c && (c->state == PCHAN_WAITING || c->state == PCHAN_LISTING))
        hold(c, session_id);
}

void gw_presence_chan_registered(struct gw_presence *p, bool ok)
{
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d)) {
        struct pchan *c = d->value;
        if (c->state != PCHAN_WAITING)
            continue;
        if (ok)
            list_chan(p, d->key, d->klen, c);
        else
            give_up(p, c);
    }
}

bool gw_presence_chans_listed(const struct gw_presence *p)
{
    return p->inc_state == GW_PRESENCE_INC_LISTED && p->unlisted == 0;
}

void gw_presence_chans_free(struct gw_presence *p)
{
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d)) {
        struct pchan *c = d->value;
        struct gw_list *l;
        while ((l = gw_list_pop(&c->reads)) != NULL)
            free(gw_container_of(l, struct pres_read, link)); /* stopping: no worker waits any more */
        free(c->joins);
        free(c);
    }
    gw_dict_deinit(&p->chans);
}
