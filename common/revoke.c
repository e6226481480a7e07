/* The node's copy of the token revocations (see revoke.h). */
#include "revoke.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "text.h"

struct gw_revoke_entry {
    int64_t at, until;
    bool lifted;
    uint64_t seq; /* the change that wrote it */
};

void gw_revoke_init(struct gw_revoke *r)
{
    pthread_mutex_init(&r->lock, NULL);
    gw_dict_init(&r->users);
    r->seq = 0;
}

static void free_all_locked(struct gw_revoke *r)
{
    for (struct gw_dict_entry *e = gw_dict_first(&r->users); e; e = gw_dict_next(&r->users, e))
        free(e->value);
}

void gw_revoke_deinit(struct gw_revoke *r)
{
    free_all_locked(r);
    gw_dict_deinit(&r->users);
    pthread_mutex_destroy(&r->lock);
}

static void put_locked(struct gw_revoke *r, const char *user, size_t len, int64_t at, int64_t until, bool lifted,
                       uint64_t seq)
{
    struct gw_dict_entry *e = gw_dict_find(&r->users, user, len);
    struct gw_revoke_entry *v = e ? e->value : gw_xmalloc(sizeof(*v));

    *v = (struct gw_revoke_entry){ at, until, lifted, seq };
    if (!e)
        gw_dict_add(&r->users, user, len, v, NULL);
}

uint64_t gw_revoke_set(struct gw_revoke *r, const char *user, size_t len, int64_t at, int64_t until, bool lifted)
{
    uint64_t seq;

    pthread_mutex_lock(&r->lock);
    seq = ++r->seq;
    put_locked(r, user, len, at, until, lifted, seq);
    pthread_mutex_unlock(&r->lock);
    return seq;
}

uint64_t gw_revoke_stamp(struct gw_revoke *r)
{
    uint64_t seq;

    pthread_mutex_lock(&r->lock);
    seq = r->seq;
    pthread_mutex_unlock(&r->lock);
    return seq;
}

void gw_revoke_reload(struct gw_revoke *r, uint64_t stamp, const struct gw_revoke_item *items, size_t n, int64_t now)
{
    pthread_mutex_lock(&r->lock);
    /* What the read could not know about (changed after stamp) stays;
     * everything older is replaced by the read. */
    for (struct gw_dict_entry *e = gw_dict_first(&r->users), *next; e; e = next) {
        struct gw_revoke_entry *v = e->value;
        next = gw_dict_next(&r->users, e);
        if (v->seq <= stamp || v->until <= now) {
            gw_dict_delete(&r->users, e->key, e->klen);
            free(v);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].until <= now || gw_dict_find(&r->users, items[i].user, items[i].len))
            continue;
        put_locked(r, items[i].user, items[i].len, items[i].at, items[i].until, false, stamp);
    }
    pthread_mutex_unlock(&r->lock);
}

bool gw_revoke_refuses(struct gw_revoke *r, const char *user, size_t len, bool has_iat, int64_t iat, int64_t now)
{
    bool refuse = false;

    pthread_mutex_lock(&r->lock);
    if (r->users.count) {
        struct gw_dict_entry *e = gw_dict_find(&r->users, user, len);
        const struct gw_revoke_entry *v = e ? e->value : NULL;
        refuse = v && !v->lifted && now < v->until && (!has_iat || iat <= v->at);
    }
    pthread_mutex_unlock(&r->lock);
    return refuse;
}

size_t gw_revoke_count(struct gw_revoke *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->users.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t gw_revoke_format_value(char *out, int64_t at, int64_t until)
{
    return (size_t)snprintf(out, 48, "%" PRId64 " %" PRId64, at, until);
}

int gw_revoke_parse_value(const char *s, size_t len, int64_t *at, int64_t *until)
{
    char buf[48];
    const char *sp = memchr(s, ' ', len);
    long long a, u;

    if (!sp || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    buf[sp - s] = '\0';
    if (gw_text_parse_ll(buf, &a) != 0 || gw_text_parse_ll(buf + (sp - s) + 1, &u) != 0 || a < 0 || u <= a)
        return -EINVAL;
    *at = a;
    *until = u;
    return 0;
}
