/* This node's presence members in Redis, clients' presence reads, and the
 * purge of departed node incarnations (presence.h has the design). */
#define GW_LOG_MODULE "presence"

#include "presence_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clock.h"
#include "list.h"
#include "log.h"

/* A connection that left, kept a member for --presence-leave-delay (oldest
 * last in p->delayed; found by session id + key in p->delayed_by). */
struct delayed {
    struct gw_list link;
    int64_t due_us;
    uint64_t session_id;
    struct pres_entry e; /* owned */
    size_t idlen;
    char id[]; /* session id (8 bytes) then the key: the delayed_by key */
};

void gw_presence_req_free(struct gw_presence_req *r)
{
    if (!r)
        return;
    free(r->user);
    free(r->info);
    free(r);
}

static const struct pres_entry *member_of(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen);
static void read_send(struct gw_presence *p, struct pres_read *w);
static const struct gw_presence_chan_up chan_up = { member_of, read_send };

void gw_presence_init(struct gw_presence *p, const struct gw_config *cfg, struct gw_link *link, struct gw_clink *clink,
                      struct gw_bus_stats *stats, void (*post)(void *ctx, int worker, struct gw_wmail *m), void *ctx)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->up = &chan_up;
    p->stats = stats;
    p->link = link;
    p->clink = clink;
    snprintf(p->ns, sizeof p->ns, "%s", clink ? "{wsgate}:presence:" : "wsgate:presence:");
    p->post = post;
    p->ctx = ctx;
    gw_dict_init(&p->sessions);
    gw_dict_init(&p->chans);
    gw_dict_init(&p->delayed_by);
    gw_list_init(&p->delayed);
}

/* A new incarnation: wall-clock microseconds and a random part, hex. Only
 * its difference from this node's earlier ones matters. */
void gw_presence_new_incarnation(struct gw_presence *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(p->inc, sizeof p->inc, "%" PRIx64 "%04x",
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, (unsigned)rand() & 0xffffu);
    p->inc_state = GW_PRESENCE_INC_NEW;
}

static struct pres_sess *sess_find(struct gw_presence *p, uint64_t session_id)
{
    struct gw_dict_entry *d = gw_dict_find(&p->sessions, &session_id, sizeof session_id);
    return d ? d->value : NULL;
}

static int entry_find(const struct pres_sess *s, const char *key, size_t klen)
{
    for (int i = 0; s && i < s->n; i++)
        if (s->e[i].klen == klen && memcmp(s->e[i].key, key, klen) == 0)
            return i;
    return -1;
}

static bool undelay(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen);

static void join(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen,
                 const struct gw_presence_req *r)
{
    struct pres_sess *s = sess_find(p, session_id);

    if (entry_find(s, key, klen) >= 0)
        return;
    bool kept = undelay(p, session_id, key, klen); /* still a member in Redis */
    if (!s) {
        s = gw_xcalloc(1, sizeof *s);
        gw_dict_add(&p->sessions, &session_id, sizeof session_id, s, NULL);
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 2;
        s->e = gw_xrealloc(s->e, (size_t)s->cap * sizeof *s->e);
    }
    struct pres_entry *e = &s->e[s->n++];
    e->key = gw_xstrdup(key);
    e->klen = klen;
    e->user = r->user ? gw_xstrdup(r->user) : NULL;
    e->info = r->info ? gw_xstrdup(r->info) : NULL;
    if (kept)
        return; /* its delayed leave counted it in chans already */
    gw_presence_chan_add(p, session_id, e);
}

void gw_presence_entry_free(struct pres_entry *e)
{
    free(e->key);
    free(e->user);
    free(e->info);
}

static void leave_now(struct gw_presence *p, uint64_t session_id, struct pres_entry *e)
{
    gw_presence_chan_remove(p, session_id, e);
    gw_presence_entry_free(e);
}

static size_t delayed_id(uint64_t session_id, const char *key, size_t klen, char *out)
{
    memcpy(out, &session_id, sizeof session_id);
    memcpy(out + sizeof session_id, key, klen);
    return sizeof session_id + klen;
}

/* Keeps e a member for --presence-leave-delay: a reconnect meanwhile (any
 * node) joins while its old connection still counts, so the user's count
 * never reaches 0 and neither a leave nor a join is told. */
static void delay_leave(struct gw_presence *p, uint64_t session_id, struct pres_entry *e)
{
    struct delayed *d = gw_xmalloc(sizeof *d + sizeof session_id + e->klen);
    d->due_us = gw_now_us() + (int64_t)p->cfg->presence_leave_delay_s * 1000000;
    d->session_id = session_id;
    d->e = *e;
    d->idlen = delayed_id(session_id, e->key, e->klen, d->id);
    gw_list_push(&p->delayed, &d->link);
    gw_dict_add(&p->delayed_by, d->id, d->idlen, d, NULL);
}

static void delayed_free(struct gw_presence *p, struct delayed *d)
{
    gw_dict_delete(&p->delayed_by, d->id, d->idlen);
    gw_list_remove(&d->link);
    free(d);
}

/* The same session subscribes again before its leave was due: the leave is
 * forgotten (the member never left Redis). */
static bool undelay(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen)
{
    char id[8 + KEY_MAX];
    if (klen > KEY_MAX)
        return false;
    struct gw_dict_entry *de = gw_dict_find(&p->delayed_by, id, delayed_id(session_id, key, klen, id));
    if (!de)
        return false;
    struct delayed *d = de->value;
    gw_presence_entry_free(&d->e);
    delayed_free(p, d);
    return true;
}

/* The leaves whose delay is over (all or, at stop, every one). */
void gw_presence_leave_due(struct gw_presence *p, bool all)
{
    int64_t now = gw_now_us();
    while (!gw_list_empty(&p->delayed)) {
        struct delayed *d = gw_container_of(p->delayed.prev, struct delayed, link);
        if (!all && d->due_us > now)
            break;
        leave_now(p, d->session_id, &d->e);
        delayed_free(p, d);
    }
}

/* Removes s's entry i (in Redis too) and the session when it was its last. */
static void leave_at(struct gw_presence *p, uint64_t session_id, struct pres_sess *s, int i)
{
    struct pres_entry e = s->e[i];

    s->e[i] = s->e[--s->n];
    if (p->cfg->presence_leave_delay_s > 0)
        delay_leave(p, session_id, &e); /* takes e's strings */
    else
        leave_now(p, session_id, &e);
    if (s->n == 0) {
        free(s->e);
        free(s);
        gw_dict_delete(&p->sessions, &session_id, sizeof session_id);
    }
}

/* fn for every member (delayed leaves too); returns how many. */
static size_t each_member(struct gw_presence *p,
                          void (*fn)(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e))
{
    size_t members = 0;

    for (struct gw_dict_entry *d = gw_dict_first(&p->sessions); d; d = gw_dict_next(&p->sessions, d)) {
        const struct pres_sess *s = d->value;
        uint64_t session_id;
        memcpy(&session_id, d->key, sizeof session_id);
        for (int i = 0; i < s->n; i++, members++)
            fn(p, session_id, &s->e[i]);
    }
    /* A leave still waiting its delay is a member too: without this, the old
     * incarnation's purge would tell its leave early, and a subscribe again
     * within the delay (which keeps it) would leave the user with no member. */
    for (struct gw_list *l = p->delayed.next; l != &p->delayed; l = l->next, members++) {
        const struct delayed *d = gw_container_of(l, struct delayed, link);
        fn(p, d->session_id, &d->e);
    }
    return members;
}

static void hold_member(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e)
{
    gw_presence_chan_hold_join(p, session_id, e->key, e->klen);
}

size_t gw_presence_rejoin(struct gw_presence *p)
{
    gw_presence_chan_reindex(p);
    return each_member(p, hold_member);
}

/* gw_presence_chan_up.member */
static const struct pres_entry *member_of(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen)
{
    const struct pres_sess *s = sess_find(p, session_id);
    int i = entry_find(s, key, klen);
    char id[8 + KEY_MAX];

    if (i >= 0)
        return &s->e[i];
    if (klen > KEY_MAX)
        return NULL;
    struct gw_dict_entry *de = gw_dict_find(&p->delayed_by, id, delayed_id(session_id, key, klen, id));
    return de ? &((const struct delayed *)de->value)->e : NULL;
}

void gw_presence_left(struct gw_presence *p, uint64_t session_id)
{
    struct pres_sess *s;
    while ((s = sess_find(p, session_id)) != NULL)
        leave_at(p, session_id, s, s->n - 1);
}

/* ---- reads ---- */

static uint64_t reply_count(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
}

/* The members page of wsgate_presence_members: { cursor, conns, users, { member, value, ... } }. */
static struct gw_frame *members_frame(const struct pres_read *w, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[3]->type != REDIS_REPLY_ARRAY || r->element[0]->len > GW_PRESENCE_CURSOR_MAX)
        return NULL;
    const redisReply *flat = r->element[3];
    size_t n = flat->elements / 2;
    struct gw_presence_member *m = gw_xcalloc(n ? n : 1, sizeof *m);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *mem = flat->element[2 * i], *val = flat->element[2 * i + 1];
        if (mem->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        const char *nl = memchr(val->str, '\n', val->len);
        m[k].client = mem->str;
        m[k].client_len = mem->len;
        m[k].user = val->str;
        m[k].user_len = nl ? (size_t)(nl - val->str) : val->len;
        m[k].info = nl ? nl + 1 : "";
        m[k].info_len = nl ? val->len - (size_t)(nl + 1 - val->str) : 0;
        k++;
    }
    struct gw_frame *f = gw_codec_presence(w->has_id, w->id, w->name, w->nlen, reply_count(r->element[1]),
                                           reply_count(r->element[2]), r->element[0]->str, m, k);
    free(m);
    return f;
}

static void on_read_reply(void *token, const redisReply *reply)
{
    struct pres_read *w = token;
    struct gw_frame *f = NULL;

    if (reply && w->op == GW_PRESENCE_STATS && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2)
        f = gw_codec_presence_stats(w->has_id, w->id, w->name, w->nlen, reply_count(reply->element[0]),
                                    reply_count(reply->element[1]));
    else if (reply && w->op == GW_PRESENCE_MEMBERS)
        f = members_frame(w, reply);
    if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("presence read failed error=\"%s\"", reply->str);
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_PRESENCE_RESULT, NULL, 0);
    m->session_id = w->session_id;
    m->has_id = w->has_id;
    m->id = w->id;
    m->frame = f;
    w->p->post(w->p->ctx, w->worker, m);
    free(w);
}

/* gw_presence_chan_up.read_send */
static void read_send(struct gw_presence *p, struct pres_read *w)
{
    struct pkeys k;
    char limit[16];
    const char *key = w->name + w->nlen + 1;
    int rc = -1;

    if (gw_presence_keys(key, w->klen, &k)) {
        snprintf(limit, sizeof limit, "%d", w->limit);
        bool stats = w->op == GW_PRESENCE_STATS;
        const char *argv[] = { "FCALL_RO", stats ? "wsgate_presence_stats" : "wsgate_presence_members", "2", k.set,
                               k.users, key, w->cursor, limit };
        size_t lens[] = { 8, strlen(argv[1]), 1, k.slen, k.ulen, w->klen, strlen(w->cursor), strlen(limit) };
        rc = gw_presence_call(p, k.set, k.slen, stats ? 6 : 8, argv, lens, on_read_reply, w);
    }
    if (rc != 0)
        on_read_reply(w, NULL); /* answers unavailable and frees w */
}

/* A read goes behind the channel's held joins, if any (presence_chan.c). */
static void read_members(struct gw_presence *p, int worker, uint64_t session_id, const char *name, size_t nlen,
                         const char *key, size_t klen, const struct gw_presence_req *r)
{
    struct pres_read *w = gw_xcalloc(1, sizeof *w + nlen + 1 + klen + 1);

    gw_list_init(&w->link);
    w->p = p;
    w->worker = worker;
    w->session_id = session_id;
    w->op = r->op;
    w->has_id = r->has_id;
    w->id = r->id;
    w->limit = r->limit;
    snprintf(w->cursor, sizeof w->cursor, "%s", r->cursor);
    w->nlen = nlen;
    w->klen = klen;
    memcpy(w->name, name, nlen);
    memcpy(w->name + nlen + 1, key, klen);
    if (!gw_presence_chan_hold_read(p, key, klen, w))
        read_send(p, w);
}

void gw_presence_handle(struct gw_presence *p, int worker, uint64_t session_id, const char *name, size_t nlen,
                        const char *key, size_t klen, const struct gw_presence_req *r)
{
    struct pres_sess *s;
    int i;

    switch (r->op) {
    case GW_PRESENCE_JOIN:
        join(p, session_id, key, klen, r);
        break;
    case GW_PRESENCE_LEAVE:
        s = sess_find(p, session_id);
        if ((i = entry_find(s, key, klen)) >= 0)
            leave_at(p, session_id, s, i);
        break;
    case GW_PRESENCE_MEMBERS:
    case GW_PRESENCE_STATS:
        read_members(p, worker, session_id, name, nlen, key, klen, r);
        break;
    }
}
