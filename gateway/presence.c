/* This node's presence members in Redis, clients' presence reads, and the
 * purge of departed node incarnations (presence.h has the design). */
#define GW_LOG_MODULE "presence"

#include "presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "log.h"

#define NODES_SET "wsgate:presence:nodes"
#define INC_KEY "wsgate:presence:inc:"
#define NODE_KEY "wsgate:presence:node:"
#define KEY_MAX 600
#define INC_TTL "5"

/* One channel this node's session is present in. */
struct pres_entry {
    char *key; /* the channel's Redis key (prefix included), owned */
    size_t klen;
    char *user, *info; /* as joined, owned; NULL: none */
};

struct pres_sess {
    int n, cap;
    struct pres_entry *e; /* owned */
};

void gw_presence_req_free(struct gw_presence_req *r)
{
    if (!r)
        return;
    free(r->user);
    free(r->info);
    free(r);
}

void gw_presence_init(struct gw_presence *p, const struct gw_config *cfg, struct gw_link *link,
                      void (*post)(void *ctx, int worker, struct gw_wmail *m), void *ctx)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->link = link;
    p->post = post;
    p->ctx = ctx;
    gw_dict_init(&p->sessions);
    gw_dict_init(&p->chans);
}

/* A new incarnation: wall-clock microseconds and a random part, hex. Only
 * its difference from this node's earlier ones matters. */
static void new_incarnation(struct gw_presence *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(p->inc, sizeof p->inc, "%" PRIx64 "%04x",
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, (unsigned)rand() & 0xffffu);
    p->registered = false;
}

/* "{key}:presence" and "{key}:presence:users" (wsgate.lua). */
static bool pres_keys(const char *key, size_t klen, char *set, size_t *slen, char *users, size_t *ulen)
{
    if (klen + 20 > KEY_MAX)
        return false;
    *slen = (size_t)snprintf(set, KEY_MAX, "{%.*s}:presence", (int)klen, key);
    *ulen = (size_t)snprintf(users, KEY_MAX, "{%.*s}:presence:users", (int)klen, key);
    return true;
}

static size_t node_key(const struct gw_presence *p, const char *inc, char *out)
{
    return (size_t)snprintf(out, KEY_MAX, NODE_KEY "%s/%s", p->cfg->node_id, inc);
}

/* Fire and forget: the outcome only matters to the log. */
static void on_write_reply(void *token, const redisReply *reply)
{
    (void)token;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("presence write failed error=\"%s\"", reply->str);
}

static void call2(struct gw_presence *p, const char *cmd, const char *key, size_t klen, const char *member,
                  size_t mlen)
{
    const char *argv[] = { cmd, key, member };
    size_t lens[] = { strlen(cmd), klen, mlen };
    gw_link_call(p->link, 3, argv, lens, on_write_reply, NULL);
}

/* FCALL wsgate_presence_join|leave for one member of this incarnation. */
static void fcall_member(struct gw_presence *p, bool join, uint64_t session_id, const struct pres_entry *e)
{
    char set[KEY_MAX], users[KEY_MAX], member[160];
    size_t slen, ulen;

    if (!p->link || !p->registered || !pres_keys(e->key, e->klen, set, &slen, users, &ulen))
        return;
    int mlen = snprintf(member, sizeof member, "%s/%s/%" PRIx64, p->cfg->node_id, p->inc, session_id);
    const char *user = e->user ? e->user : "", *info = e->info ? e->info : "";
    const char *argv[] = { "FCALL", join ? "wsgate_presence_join" : "wsgate_presence_leave", "2", set, users,
                           e->key, member, user, info };
    size_t lens[] = { 5, strlen(argv[1]), 1, slen, ulen, e->klen, (size_t)mlen, strlen(user), strlen(info) };
    gw_link_call(p->link, join ? 9 : 7, argv, lens, on_write_reply, NULL);
}

/* The node's index of channels: SADD on the first local member, SREM after the last. */
static void chan_count(struct gw_presence *p, const char *key, size_t klen, int delta)
{
    char nk[KEY_MAX];
    int existed = 0;
    struct gw_dict_entry *d = gw_dict_add(&p->chans, key, klen, (void *)0, &existed);
    uintptr_t n = (uintptr_t)d->value + (uintptr_t)(intptr_t)delta;

    d->value = (void *)n;
    if (n == 0)
        gw_dict_delete(&p->chans, key, klen);
    if (!p->link || !p->registered || !((delta > 0 && n == 1) || n == 0))
        return;
    size_t nklen = node_key(p, p->inc, nk);
    call2(p, n ? "SADD" : "SREM", nk, nklen, key, klen);
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

static void join(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen,
                 const struct gw_presence_req *r)
{
    struct pres_sess *s = sess_find(p, session_id);

    if (entry_find(s, key, klen) >= 0)
        return;
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
    chan_count(p, key, klen, +1); /* the index first: it must always cover the members */
    fcall_member(p, true, session_id, e);
}

static void entry_free(struct pres_entry *e)
{
    free(e->key);
    free(e->user);
    free(e->info);
}

/* Removes s's entry i (in Redis too) and the session when it was its last. */
static void leave_at(struct gw_presence *p, uint64_t session_id, struct pres_sess *s, int i)
{
    struct pres_entry e = s->e[i];

    s->e[i] = s->e[--s->n];
    fcall_member(p, false, session_id, &e);
    chan_count(p, e.key, e.klen, -1);
    entry_free(&e);
    if (s->n == 0) {
        free(s->e);
        free(s);
        gw_dict_delete(&p->sessions, &session_id, sizeof session_id);
    }
}

void gw_presence_left(struct gw_presence *p, uint64_t session_id)
{
    struct pres_sess *s;
    while ((s = sess_find(p, session_id)) != NULL)
        leave_at(p, session_id, s, s->n - 1);
}

/* ---- reads ---- */

struct read_wait {
    struct gw_presence *p;
    int worker;
    uint64_t session_id;
    enum gw_presence_op op;
    bool has_id;
    int64_t id;
    size_t nlen;
    char name[]; /* client-facing channel name */
};

static uint64_t reply_count(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
}

/* The members page of wsgate_presence_members: { cursor, conns, users, { member, value, ... } }. */
static struct gw_frame *members_frame(const struct read_wait *w, const redisReply *r)
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
    struct read_wait *w = token;
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

static void read_members(struct gw_presence *p, int worker, uint64_t session_id, const char *name, size_t nlen,
                         const char *key, size_t klen, const struct gw_presence_req *r)
{
    char set[KEY_MAX], users[KEY_MAX], limit[16];
    size_t slen = 0, ulen = 0;
    struct read_wait *w = gw_xmalloc(sizeof *w + nlen + 1);

    *w = (struct read_wait){ p, worker, session_id, r->op, r->has_id, r->id, nlen };
    memcpy(w->name, name, nlen);
    w->name[nlen] = '\0';
    int rc = -1;
    if (p->link && pres_keys(key, klen, set, &slen, users, &ulen)) {
        snprintf(limit, sizeof limit, "%d", r->limit);
        bool stats = r->op == GW_PRESENCE_STATS;
        const char *argv[] = { "FCALL_RO", stats ? "wsgate_presence_stats" : "wsgate_presence_members", "2", set,
                               users, key, r->cursor, limit };
        size_t lens[] = { 8, strlen(argv[1]), 1, slen, ulen, klen, strlen(r->cursor), strlen(limit) };
        rc = gw_link_call(p->link, stats ? 6 : 8, argv, lens, on_read_reply, w);
    }
    if (rc != 0)
        on_read_reply(w, NULL); /* answers unavailable and frees w */
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
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer > 0)
        LOG_INFO("presence purged incarnation=%s members=%lld users_left=%zu", w->who,
                 reply->element[0]->integer, reply->element[3]->elements);
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
    char set[KEY_MAX], users[KEY_MAX], prefix[KEY_MAX], nk[KEY_MAX];
    size_t slen, ulen;

    if (reply && reply->type == REDIS_REPLY_ARRAY && p->link) {
        int plen = snprintf(prefix, sizeof prefix, "%s/", w->who);
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *k = reply->element[i];
            if (k->type != REDIS_REPLY_STRING || !pres_keys(k->str, k->len, set, &slen, users, &ulen))
                continue;
            const char *argv[] = { "FCALL", "wsgate_presence_purge", "2", set, users, k->str, prefix, "" };
            size_t lens[] = { 5, 21, 1, slen, ulen, k->len, (size_t)plen, 0 };
            struct purge_wait *one = purge_wait_new(p, w->who, strlen(w->who));
            if (gw_link_call(p->link, 8, argv, lens, on_purge_reply, one) != 0)
                purge_wait_done(one);
        }
        size_t nklen = (size_t)snprintf(nk, sizeof nk, NODE_KEY "%s", w->who);
        const char *del[] = { "DEL", nk };
        size_t del_lens[] = { 3, nklen };
        gw_link_call(p->link, 2, del, del_lens, on_write_reply, NULL);
        call2(p, "SREM", NODES_SET, sizeof NODES_SET - 1, w->who, strlen(w->who));
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

/* This incarnation's key, then (once live) the check of everyone's. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_presence *p = arg;
    char key[KEY_MAX];
    (void)fd;
    (void)what;

    if (!p->link || !p->registered || !gw_link_ready(p->link))
        return;
    size_t klen = (size_t)snprintf(key, sizeof key, INC_KEY "%s/%s", p->cfg->node_id, p->inc);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1 };
    gw_link_call(p->link, 5, set, set_lens, on_write_reply, NULL);
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
    new_incarnation(p);
    p->registered = true;
    /* Alive first, then listed: a sweep never sees a listed incarnation
     * without its key. */
    size_t klen = (size_t)snprintf(key, sizeof key, INC_KEY "%s/%s", p->cfg->node_id, p->inc);
    const char *set[] = { "SET", key, "1", "EX", INC_TTL };
    size_t set_lens[] = { 3, klen, 1, 2, sizeof INC_TTL - 1 };
    gw_link_call(p->link, 5, set, set_lens, on_write_reply, NULL);
    size_t wlen = (size_t)snprintf(who, sizeof who, "%s/%s", p->cfg->node_id, p->inc);
    call2(p, "SADD", NODES_SET, sizeof NODES_SET - 1, who, wlen);
    for (struct gw_dict_entry *d = gw_dict_first(&p->chans); d; d = gw_dict_next(&p->chans, d)) {
        size_t nklen = node_key(p, p->inc, key);
        call2(p, "SADD", key, nklen, d->key, d->klen);
    }
    size_t members = 0;
    for (struct gw_dict_entry *d = gw_dict_first(&p->sessions); d; d = gw_dict_next(&p->sessions, d)) {
        const struct pres_sess *s = d->value;
        uint64_t session_id;
        memcpy(&session_id, d->key, sizeof session_id);
        for (int i = 0; i < s->n; i++, members++)
            fcall_member(p, true, session_id, &s->e[i]);
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
    struct timeval tv = { 1, 0 };

    new_incarnation(p);
    p->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, p);
    if (!p->tick_ev || event_add(p->tick_ev, &tv) != 0) {
        LOG_ERR("cannot start the presence timer");
        abort();
    }
}

void gw_presence_stop(struct gw_presence *p)
{
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
            entry_free(&s->e[i]);
        free(s->e);
        free(s);
    }
    gw_dict_deinit(&p->sessions);
    gw_dict_deinit(&p->chans);
}
