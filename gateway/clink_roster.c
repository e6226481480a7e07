/* The node roster in cluster mode: the keys of link_cmd.c's roster with the
 * {wsgate} hash tag, so that they share one slot and the MGET that reads
 * every entry stays on one master (without the tag it gets CROSSSLOT:
 * tests/integration/test_redis_cluster.py). Best effort, like link_cmd.c's:
 * a failure shows as an empty read and the next tick tries again. */
#define GW_LOG_MODULE "clink"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clink_int.h"
#include "log.h"

#define ROSTER_SET "{wsgate}:nodes"
#define ROSTER_KEY "{wsgate}:node:"
#define ROSTER_MAX 1024
#define ROSTER_KEY_MAX 320

/* The roster's master, or NULL when it is down (or the link not live). */
static struct cshard *roster_master(struct gw_clink *cl)
{
    if (cl->state != CL_LIVE)
        return NULL;
    struct cshard *sh = gw_clink_owner(cl, ROSTER_SET, sizeof ROSTER_SET - 1);
    return sh && sh->state == SH_LIVE ? sh : NULL;
}

int gw_clink_roster_write(struct gw_clink *cl, const char *json, size_t len, int ttl_s)
{
    struct cshard *sh = roster_master(cl);
    char key[ROSTER_KEY_MAX], ttl[16];

    if (!sh)
        return -ENOTCONN;
    snprintf(key, sizeof key, ROSTER_KEY "%s", cl->cfg->node_id);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *set[] = { "SET", key, json, "EX", ttl };
    size_t set_lens[] = { 3, strlen(key), len, 2, strlen(ttl) };
    const char *sadd[] = { "SADD", ROSTER_SET, cl->cfg->node_id };
    size_t sadd_lens[] = { 4, sizeof ROSTER_SET - 1, strlen(cl->cfg->node_id) };
    int rc = gw_rconn_command(sh->cmd, 5, set, set_lens, cl->cmd_timeout_ms, NULL, NULL);
    return rc != 0 ? rc : gw_rconn_command(sh->cmd, 3, sadd, sadd_lens, cl->cmd_timeout_ms, NULL, NULL);
}

/* MGET's answer; privdata the ids asked for, NUL-separated (owned here). */
static void on_values(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_clink *cl = gw_rconn_owner(c);
    char *ids = privdata;
    const char *json[ROSTER_MAX];
    size_t jlen[ROSTER_MAX];
    int n = 0;

    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        const char *id = ids;
        for (size_t i = 0; i < reply->elements && i < ROSTER_MAX; i++, id += strlen(id) + 1) {
            const redisReply *v = reply->element[i];
            if (v->type == REDIS_REPLY_STRING) {
                json[n] = v->str;
                jlen[n++] = v->len;
            } else if (gw_rconn_state(c) == GW_RCONN_READY) {
                const char *argv[] = { "SREM", ROSTER_SET, id }; /* expired: best effort */
                size_t lens[] = { 4, sizeof ROSTER_SET - 1, strlen(id) };
                gw_rconn_command(c, 3, argv, lens, cl->cmd_timeout_ms, NULL, NULL);
            }
        }
    }
    cl->ops->on_roster(cl->ctx, n, json, jlen);
    free(ids);
}

static void on_ids(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_clink *cl = gw_rconn_owner(c);
    size_t n = reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;

    if (n > ROSTER_MAX)
        n = ROSTER_MAX;
    if (n == 0 || gw_rconn_state(c) != GW_RCONN_READY) {
        cl->ops->on_roster(cl->ctx, 0, NULL, NULL);
        return;
    }
    const char **argv = gw_xmalloc(sizeof(*argv) * (n + 1));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (n + 1));
    char (*keys)[ROSTER_KEY_MAX] = gw_xmalloc(sizeof(*keys) * n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += reply->element[i]->len + 1;
    char *ids = gw_xmalloc(total + 1), *o = ids;
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        lens[i + 1] = (size_t)snprintf(keys[i], ROSTER_KEY_MAX, ROSTER_KEY "%.*s", (int)e->len, e->str);
        if (lens[i + 1] >= ROSTER_KEY_MAX)
            lens[i + 1] = ROSTER_KEY_MAX - 1;
        argv[i + 1] = keys[i];
        memcpy(o, e->str, e->len);
        o[e->len] = '\0';
        o += e->len + 1;
    }
    if (gw_rconn_command(c, (int)n + 1, argv, lens, cl->cmd_timeout_ms, on_values, ids) != 0) {
        free(ids);
        cl->ops->on_roster(cl->ctx, 0, NULL, NULL);
    }
    free(keys);
    free(lens);
    free(argv);
}

int gw_clink_roster_read(struct gw_clink *cl)
{
    struct cshard *sh = roster_master(cl);

    if (!sh)
        return -ENOTCONN;
    const char *argv[] = { "SMEMBERS", ROSTER_SET };
    size_t lens[] = { 8, sizeof ROSTER_SET - 1 };
    return gw_rconn_command(sh->cmd, 2, argv, lens, cl->cmd_timeout_ms, on_ids, NULL);
}
