/* The cluster link's subscriptions: SSUBSCRIBE/SUNSUBSCRIBE on each key's
 * master, batched by slot, and which sunsubscribe confirmations were asked
 * for (the others mean a slot moved). A refused subscription makes its slot
 * lost (clink.c moves its keys after the next map), never the whole link. */
#define GW_LOG_MODULE "clink"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clink_int.h"
#include "log.h"
#include "slot.h"

void gw_clink_on_sub_done(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_clink *cl = gw_rconn_owner(c);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* MOVED/CLUSTERDOWN: the map is older than the cluster. A command
         * sent without its slot (privdata NULL) names it in a MOVED; any
         * other error of that one takes down its master alone. */
        struct gw_topo_redirect rd;
        bool known = privdata || gw_topo_redirect_parse(reply->str, reply->len, &rd) == 0;
        unsigned slot = privdata ? (unsigned)((uintptr_t)privdata - 1) : known ? rd.slot : 0;
        struct cshard *sh = NULL;
        for (size_t i = 0; i < cl->nsh && !sh; i++)
            sh = cl->sh[i]->sub == c ? cl->sh[i] : NULL;
        LOG_WARN("sharded subscriber slot=%d error=\"%s\"", known ? (int)slot : -1, reply->str);
        gw_stat *st = sh ? gw_clink_master_stat(sh, cl->stats->master_redirects) : NULL;
        if (st)
            gw_stat_add(st, 1);
        if (known)
            gw_clink_slot_lost(cl, slot, "subscriber error reply");
        else if (sh)
            gw_clink_shard_fail(sh, "subscriber error reply");
        else
            gw_clink_fail(cl, "subscriber error reply");
    }
}

static bool has_brace(const char *key, size_t klen)
{
    return memchr(key, '{', klen) || memchr(key, '}', klen);
}

struct keyref {
    uint16_t slot;
    int i;
};

static int by_slot(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    return x->slot != y->slot ? (x->slot < y->slot ? -1 : 1) : x->i - y->i;
}

/* verb on each key's master; a batch goes out as one command per slot, since
 * Redis refuses an SSUBSCRIBE whose channels are in different slots
 * (CROSSSLOT), even on one master. */
static int sub_command(struct gw_clink *cl, const char *verb, int n, const char *const *keys, const size_t *klens)
{
    if (cl->state != CL_CONNECTING && cl->state != CL_LIVE)
        return -ENOTCONN;
    for (int i = 0; i < n; i++)
        if (has_brace(keys[i], klens[i]))
            return -EINVAL;
    const char **argv = gw_xmalloc(sizeof(*argv) * (size_t)(n + 1));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)(n + 1));
    struct keyref *ref = gw_xmalloc(sizeof(*ref) * (size_t)n);
    int rc = 0;

    for (int i = 0; i < n; i++)
        ref[i] = (struct keyref){ gw_slot_of(keys[i], klens[i]), i };
    qsort(ref, (size_t)n, sizeof *ref, by_slot);
    argv[0] = verb;
    lens[0] = strlen(verb);
    for (int i = 0; i < n && rc == 0;) {
        unsigned slot = ref[i].slot;
        struct cshard *sh = gw_clink_owner(cl, keys[ref[i].i], klens[ref[i].i]);
        int m = 0;
        for (int j = i; j < n && ref[j].slot == slot; j++, m++) {
            argv[m + 1] = keys[ref[j].i];
            lens[m + 1] = klens[ref[j].i];
        }
        i += m;
        if (!sh && strcmp(verb, "SUNSUBSCRIBE") == 0) {
            rc = -EHOSTDOWN; /* no master of this map serves it: nothing is subscribed */
            continue;
        }
        if (!sh) {
            /* A slot no master of this map serves: a newer map will. */
            gw_clink_slot_lost(cl, slot, "a key's slot has no master in the map");
            continue;
        }
        if (sh->state == SH_DOWN || sh->state == SH_RESETTING) {
            /* Its master is down: nothing of it is subscribed there. An
             * SSUBSCRIBE is sent when it comes back (on_keys_open). */
            if (strcmp(verb, "SUNSUBSCRIBE") == 0)
                rc = -EHOSTDOWN;
            continue;
        }
        if (gw_rconn_command(sh->sub, m + 1, argv, lens, cl->cmd_timeout_ms, gw_clink_on_sub_done,
                             (void *)(uintptr_t)(slot + 1)) != 0) {
            /* Not a reason to skip the later slots, which other, healthy
             * masters may own: this master is reset, which tells the bus its
             * keys are lost (on_keys_lost) and subscribes them again when it
             * is back (on_keys_open). Stopping here would leave the later
             * slots' keys unsent while the caller believed none was, and a
             * moved slot's fence could then call them live. */
            gw_clink_shard_fail(sh, "cannot queue a sharded subscription");
            if (strcmp(verb, "SUNSUBSCRIBE") == 0)
                rc = -EHOSTDOWN;
        }
    }
    free(ref);
    free(lens);
    free(argv);
    return rc;
}

int gw_clink_subscribe(struct gw_clink *cl, const char *key, size_t klen)
{
    return sub_command(cl, "SSUBSCRIBE", 1, &key, &klen);
}

int gw_clink_subscribe_many(struct gw_clink *cl, int n, const char *const *keys, const size_t *klens)
{
    return sub_command(cl, "SSUBSCRIBE", n, keys, klens);
}

int gw_clink_unsubscribe(struct gw_clink *cl, const char *key, size_t klen)
{
    int rc = sub_command(cl, "SUNSUBSCRIBE", 1, &key, &klen);
    if (rc == 0) {
        struct gw_dict_entry *e = gw_dict_find(&cl->unsubs, key, klen);
        if (!e)
            e = gw_dict_add(&cl->unsubs, key, klen, (void *)(uintptr_t)0, NULL);
        e->value = (void *)((uintptr_t)e->value + 1);
    }
    return rc;
}

/* clink_int.h */
bool gw_clink_unsub_expected(struct gw_clink *cl, const char *key, size_t klen)
{
    struct gw_dict_entry *e = gw_dict_find(&cl->unsubs, key, klen);
    if (!e)
        return false;
    uintptr_t n = (uintptr_t)e->value - 1;
    if (n == 0)
        gw_dict_delete(&cl->unsubs, key, klen);
    else
        e->value = (void *)n;
    return true;
}

void gw_clink_pause(struct gw_clink *cl, bool pause)
{
    cl->paused = pause;
    for (size_t i = 0; i < cl->nsh; i++)
        if (cl->sh[i]->sub)
            gw_rconn_pause(cl->sh[i]->sub, pause);
}

