/* The channels this node has presence members in (presence.h has the
 * design): their local counts and their place in the incarnation's index,
 * which must cover every member Redis holds for this incarnation. With one
 * Redis every command goes in order on one connection. On a cluster the index
 * (on the {wsgate} master) and a channel's keys (on its own master) do not:
 * a channel leaves the index only once its last member's leave was answered
 * (else a leave that failed while the SREM went through would leave a member
 * no purge can find), and an index write that got no answer makes a new
 * incarnation, whose purge of this one covers this node's channels too. The
 * joins themselves are not held back for the index: a client's presence read
 * after its subscribe goes on the same connection as its join and sees it. */
#define GW_LOG_MODULE "presence"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "log.h"
#include "presence_int.h"

/* A leave waiting for its answer: for channel key of incarnation inc. */
struct leave_wait {
    struct gw_presence *p;
    char inc[sizeof((struct gw_presence *)0)->inc];
    size_t klen;
    char key[];
};

/* This node's members of key (leaves waiting their delay included), changed by delta. */
static uintptr_t count(struct gw_presence *p, const char *key, size_t klen, int delta)
{
    struct gw_dict_entry *d = gw_dict_add(&p->chans, key, klen, (void *)0, NULL);
    uintptr_t n = (uintptr_t)d->value + (uintptr_t)(intptr_t)delta;

    d->value = (void *)n;
    if (n == 0)
        gw_dict_delete(&p->chans, key, klen);
    return n;
}

/* Lists key in this incarnation's index and in the events index. */
static void index_chan(struct gw_presence *p, const char *key, size_t klen)
{
    char nk[KEY_MAX], idx[KEY_MAX], now[24];
    size_t nklen = gw_presence_node_key(p, p->inc, nk);
    size_t ilen = gw_presence_ns_key(p, CHANNELS_INDEX, "", 0, idx);
    int nlen = snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    const char *zadd[] = { "ZADD", idx, now, key };
    size_t zlens[] = { 4, ilen, (size_t)nlen, klen };

    gw_presence_call2(p, "SADD", nk, nklen, key, klen);
    if (gw_presence_call(p, idx, ilen, 4, zadd, zlens, gw_presence_on_write, p) != 0)
        p->dirty = true;
}

void gw_presence_chan_add(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e)
{
    /* The index first: with one Redis it is then always ahead of the members. */
    if (count(p, e->key, e->klen, +1) == 1 && p->registered)
        index_chan(p, e->key, e->klen);
    gw_presence_fcall_member(p, true, session_id, e, NULL, NULL);
}

/* A leave answered: when its channel has no member here any more, the
 * channel leaves the index (after the leave, never before it). */
static void on_left(void *token, const redisReply *reply)
{
    struct leave_wait *w = token;
    struct gw_presence *p = w->p;

    gw_presence_on_write(p, reply);
    if (reply && reply->type != REDIS_REPLY_ERROR && strcmp(w->inc, p->inc) == 0 &&
        !gw_dict_find(&p->chans, w->key, w->klen)) {
        char nk[KEY_MAX];
        size_t nklen = gw_presence_node_key(p, p->inc, nk);
        gw_presence_call2(p, "SREM", nk, nklen, w->key, w->klen);
    }
    free(w);
}

void gw_presence_chan_remove(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e)
{
    count(p, e->key, e->klen, -1);
    struct leave_wait *w = gw_xmalloc(sizeof *w + e->klen + 1);
    w->p = p;
    memcpy(w->inc, p->inc, sizeof w->inc);
    w->klen = e->klen;
    memcpy(w->key, e->key, e->klen);
    w->key[e->klen] = '\0';
    if (!gw_presence_fcall_member(p, false, session_id, e, on_left, w))
        free(w);
}

void gw_presence_chan_reindex(struct gw_presence *p)
{
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d))
        index_chan(p, d->key, d->klen);
}

void gw_presence_chans_free(struct gw_presence *p)
{
    gw_dict_deinit(&p->chans);
}
