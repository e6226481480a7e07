/* The cluster link's commands: the wsgate Function library's calls,
 * SPUBLISH and any other command routed by a key (gw_clink_call), each sent
 * to its key's master on that master's command connection, with Redis
 * Cluster's answers followed: MOVED (a fresh map is asked for, the command
 * resent where Redis said), ASK (ASKING and the command on the importing
 * master, once), TRYAGAIN and CLUSTERDOWN (resent after a pause). The control
 * channels' SSUBSCRIBE (hash-tagged on purpose). And the library's loading on
 * every master. */
#define GW_LOG_MODULE "clink"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clink_int.h"
#include "fnreply.h"
#include "log.h"

/* Redirections and pauses one command may go through before it fails. */
#define MAX_TRIES 16
#define PAUSE_MS 100

enum ccmd_kind {
    CC_PUBLISH, /* ops->on_published with the FCALL's place */
    CC_PLAIN,   /* ops->on_published, no place */
    CC_READ,    /* ops->on_read */
    CC_RETIRE,  /* logged only */
    CC_CALL,    /* cb (may be NULL) */
    CC_COMMAND, /* ops->on_reply */
    CC_COUNTED, /* ops->on_counted */
};

/* One command and what to do with its answer; owned by whoever holds it: the
 * connection (as privdata), the waiting list, or the caller finishing it. */
struct ccmd {
    struct gw_clink *cl;
    enum ccmd_kind kind;
    void *token;
    gw_link_reply_fn cb; /* CC_CALL */
    char *key; /* the route: its slot picks the master */
    size_t klen;
    int argc;
    char **argv;
    size_t *lens;
    int tries;
    struct event *timer; /* while waiting out a pause */
    struct ccmd *prev, *next;
};

static void ccmd_free(struct ccmd *cc)
{
    for (int i = 0; i < cc->argc; i++)
        free(cc->argv[i]);
    free(cc->argv);
    free(cc->lens);
    free(cc->key);
    if (cc->timer)
        event_free(cc->timer);
    free(cc);
}

/* An FCALL error that means the library is gone (FUNCTION FLUSH, a master
 * replaced under us): only a fresh link, which reloads it, can help. */
static void check_fn_error(struct gw_clink *cl, const redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "Function not found"))
        gw_clink_fail(cl, "the wsgate function library is missing on a master");
}

/* Hands the answer (NULL: none, or an error) to the bus; frees cc. */
static void finish(struct ccmd *cc, const redisReply *reply)
{
    struct gw_clink *cl = cc->cl;
    struct gw_position at = { 0 };
    bool err = reply && reply->type == REDIS_REPLY_ERROR;

    if (err) {
        uint64_t n = ++cl->publish_errors;
        if ((n & (n - 1)) == 0)
            LOG_WARN("command failed key=%s error=\"%s\" errors=%" PRIu64, cc->key, reply->str, n);
        check_fn_error(cl, reply);
    }
    switch (cc->kind) {
    case CC_PUBLISH:
        cl->ops->on_published(cl->ctx, cc->token, gw_fn_parse_published(reply, &at) ? &at : NULL);
        break;
    case CC_PLAIN:
        cl->ops->on_published(cl->ctx, cc->token, reply && reply->type == REDIS_REPLY_INTEGER ? &at : NULL);
        break;
    case CC_READ: {
        struct gw_history_page page;
        struct gw_history_entry *entries = NULL;
        bool ok = reply && !err && gw_fn_parse_history(reply, &page, &entries);
        cl->ops->on_read(cl->ctx, cc->token, ok ? &page : NULL);
        free(entries);
        break;
    }
    case CC_RETIRE:
        if (reply && reply->type == REDIS_REPLY_INTEGER)
            LOG_INFO("epoch retire result=%s", reply->integer == 1 ? "retired" : "already_changed");
        break;
    case CC_CALL:
        if (cc->cb)
            cc->cb(cc->token, reply);
        break;
    case CC_COMMAND:
        cl->ops->on_reply(cl->ctx, cc->token, reply);
        break;
    case CC_COUNTED:
        cl->ops->on_counted(cl->ctx, cc->token, reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1);
        break;
    }
    ccmd_free(cc);
}

static void on_reply(struct gw_rconn *c, const redisReply *reply, void *privdata);

/* Sends cc to sh (after ASKING when asking). Returns as gw_rconn_command. */
static int send_to(struct ccmd *cc, struct cshard *sh, bool asking)
{
    if (!sh || !sh->cmd)
        return -ENOTCONN;
    if (asking) {
        static const char *const a[] = { "ASKING" };
        static const size_t al[] = { 6 };
        int rc = gw_rconn_command(sh->cmd, 1, a, al, cc->cl->cmd_timeout_ms, NULL, NULL);
        if (rc != 0)
            return rc;
    }
    return gw_rconn_command(sh->cmd, cc->argc, (const char *const *)cc->argv, cc->lens, cc->cl->cmd_timeout_ms,
                            on_reply, cc);
}

static void unlink_waiting(struct ccmd *cc)
{
    if (cc->prev)
        cc->prev->next = cc->next;
    else
        cc->cl->waiting = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    cc->prev = cc->next = NULL;
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg)
{
    struct ccmd *cc = arg;
    struct gw_clink *cl = cc->cl;

    unlink_waiting(cc);
    event_free(cc->timer);
    cc->timer = NULL;
    if (cl->state != CL_LIVE || send_to(cc, gw_clink_owner(cl, cc->key, cc->klen), false) != 0)
        finish(cc, NULL);
}

static void wait_and_retry(struct ccmd *cc)
{
    struct gw_clink *cl = cc->cl;
    struct timeval tv = { 0, PAUSE_MS * 1000 };

    cc->timer = evtimer_new(cl->base, on_pause_over, cc);
    if (!cc->timer || evtimer_add(cc->timer, &tv) != 0) {
        finish(cc, NULL);
        return;
    }
    cc->next = cl->waiting;
    if (cl->waiting)
        cl->waiting->prev = cc;
    cl->waiting = cc;
}

/* A MOVED or ASK from the master whose command connection is c: counted on
 * that master's series (/metrics), next to the subscriptions it dropped. */
static void count_redirect(struct gw_clink *cl, const struct gw_rconn *c)
{
    for (size_t i = 0; i < cl->nsh; i++) {
        gw_stat *st = cl->sh[i]->cmd == c ? gw_clink_master_stat(cl->sh[i], cl->stats->master_redirects) : NULL;
        if (st)
            gw_stat_add(st, 1);
    }
}

static void on_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct ccmd *cc = privdata;
    struct gw_clink *cl = cc->cl;
    struct gw_topo_redirect rd;

    if (!reply || reply->type != REDIS_REPLY_ERROR || ++cc->tries > MAX_TRIES) {
        finish(cc, reply);
        return;
    }
    switch (gw_topo_error_kind(reply->str, reply->len)) {
    case GW_TOPO_ERR_MOVED:
    case GW_TOPO_ERR_ASK:
        if (gw_topo_redirect_parse(reply->str, reply->len, &rd) != 0)
            break;
        cl->redirects++;
        gw_stat_add(&cl->stats->redis_redirects, 1);
        count_redirect(cl, c);
        if (rd.kind == GW_TOPO_MOVED)
            gw_clink_refresh(cl, "MOVED");
        struct cshard *to = gw_clink_shard_at(cl, rd.host, rd.port);
        LOG_DBG("%s key=%s to=%s:%d", rd.kind == GW_TOPO_MOVED ? "MOVED" : "ASK", cc->key, rd.host, rd.port);
        if (to && send_to(cc, to, rd.kind == GW_TOPO_ASK) == 0)
            return;
        if (rd.kind == GW_TOPO_MOVED) {
            /* A master this link has no connection to: the new map brings it. */
            wait_and_retry(cc);
            return;
        }
        break;
    case GW_TOPO_ERR_CLUSTERDOWN:
        gw_clink_refresh(cl, "CLUSTERDOWN");
        wait_and_retry(cc);
        return;
    case GW_TOPO_ERR_TRYAGAIN:
        wait_and_retry(cc);
        return;
    case GW_TOPO_ERR_CROSSSLOT:
    case GW_TOPO_ERR_OTHER:
        break;
    }
    finish(cc, reply);
}

/* Copies the command and sends it to key's master. Returns 0 (the answer
 * follows) or -ENOTCONN / the connection's refusal (nothing follows). */
static int submit(struct gw_clink *cl, enum ccmd_kind kind, const char *key, size_t klen, int argc,
                  const char *const *argv, const size_t *lens, gw_link_reply_fn cb, void *token)
{
    if (cl->state != CL_LIVE)
        return -ENOTCONN;
    struct cshard *sh = gw_clink_owner(cl, key, klen);
    /* A master being torn down would only fail the command later. */
    if (!sh || !sh->cmd || sh->state == SH_RESETTING || sh->state == SH_DOWN)
        return -ENOTCONN;
    struct ccmd *cc = gw_xcalloc(1, sizeof *cc);
    cc->cl = cl;
    cc->kind = kind;
    cc->token = token;
    cc->cb = cb;
    cc->key = gw_xstrndup(key, klen);
    cc->klen = klen;
    cc->argc = argc;
    cc->argv = gw_xmalloc(sizeof(char *) * (size_t)argc);
    cc->lens = gw_xmalloc(sizeof(size_t) * (size_t)argc);
    for (int i = 0; i < argc; i++) {
        cc->argv[i] = gw_xmalloc(lens[i] + 1);
        memcpy(cc->argv[i], argv[i], lens[i]);
        cc->argv[i][lens[i]] = '\0';
        cc->lens[i] = lens[i];
    }
    int rc = send_to(cc, sh, false);
    if (rc != 0) {
        cc->token = NULL;
        for (int i = 0; i < cc->argc; i++)
            free(cc->argv[i]);
        cc->argc = 0;
        ccmd_free(cc);
    }
    return rc;
}

static bool braced(const char *key, size_t klen)
{
    return memchr(key, '{', klen) || memchr(key, '}', klen);
}

int gw_clink_publish(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                     void *token)
{
    char meta[GW_FN_KEY_MAX], stream[GW_FN_KEY_MAX];
    size_t mlen, slen;

    if (braced(key, klen) || !gw_fn_history_keys(key, klen, meta, &mlen, stream, &slen))
        return -EIO;
    const char *argv[] = { "FCALL", "wsgate_publish", "2", meta, stream, key, payload,
                           cl->history_size, cl->history_ttl, "shard" };
    size_t lens[] = { 5, 14, 1, mlen, slen, klen, len, strlen(cl->history_size), strlen(cl->history_ttl), 5 };
    return submit(cl, CC_PUBLISH, key, klen, 10, argv, lens, NULL, token);
}

int gw_clink_publish_plain(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                           void *token)
{
    if (braced(key, klen))
        return -EIO;
    const char *argv[] = { "SPUBLISH", key, payload };
    size_t lens[] = { 8, klen, len };
    return submit(cl, CC_PLAIN, key, klen, 3, argv, lens, NULL, token);
}

int gw_clink_read(struct gw_clink *cl, const char *key, size_t klen, bool latest, uint64_t since, int limit,
                  size_t max_bytes, void *token)
{
    struct gw_fn_history_call call;

    if (braced(key, klen) || !gw_fn_history_call(&call, key, klen, latest, since, limit, max_bytes))
        return -EIO;
    return submit(cl, CC_READ, key, klen, 9, call.argv, call.lens, NULL, token);
}

int gw_clink_retire_epoch(struct gw_clink *cl, const char *key, size_t klen, const char *epoch, size_t elen,
                          uint64_t below)
{
    struct gw_fn_retire_call c;

    if (braced(key, klen) || !gw_fn_retire_call(&c, key, klen, epoch, elen, below))
        return -EIO;
    return submit(cl, CC_RETIRE, key, klen, 8, c.argv, c.lens, NULL, NULL);
}

int gw_clink_call(struct gw_clink *cl, const char *route, size_t rlen, int argc, const char *const *argv,
                  const size_t *lens, gw_link_reply_fn cb, void *arg)
{
    return submit(cl, CC_CALL, route, rlen, argc, argv, lens, cb, arg);
}

int gw_clink_command(struct gw_clink *cl, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens, void *token)
{
    return submit(cl, CC_COMMAND, route, rlen, argc, argv, lens, NULL, token);
}

int gw_clink_publish_counted(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                             void *token)
{
    const char *argv[] = { "SPUBLISH", key, payload };
    size_t lens[] = { 8, klen, len };
    return submit(cl, CC_COUNTED, key, klen, 3, argv, lens, NULL, token);
}

/* One SSUBSCRIBE per key (keys of different slots cannot share one), on the
 * subscriber connection of its master; a master that is down gets it when it
 * comes back (the bus's on_keys_open asks again). */
int gw_clink_subscribe_tagged(struct gw_clink *cl, int n, const char *const *keys, const size_t *klens)
{
    if (cl->state != CL_CONNECTING && cl->state != CL_LIVE)
        return -ENOTCONN;
    for (int i = 0; i < n; i++) {
        struct cshard *sh = gw_clink_owner(cl, keys[i], klens[i]);
        if (!sh) {
            gw_clink_refresh(cl, "a key's slot has no master in the map");
            return -ENOTCONN;
        }
        if (sh->state == SH_DOWN || sh->state == SH_RESETTING || !sh->sub)
            continue;
        const char *argv[] = { "SSUBSCRIBE", keys[i] };
        size_t lens[] = { 10, klens[i] };
        int rc = gw_rconn_command(sh->sub, 2, argv, lens, cl->cmd_timeout_ms, gw_clink_on_sub_done, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void gw_clink_cmds_stop(struct gw_clink *cl)
{
    while (cl->waiting) {
        struct ccmd *cc = cl->waiting;
        unlink_waiting(cc);
        finish(cc, NULL);
    }
}

/* ---- the function library, on every master ---- */

static void on_fn_load(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct cshard *sh = privdata;

    if (!reply)
        return; /* the connection failed: the link resets */
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_ERR("cannot load the wsgate function library master=%s:%d error=\"%s\"", sh->host, sh->port, reply->str);
        gw_clink_fail(sh->cl, "FUNCTION LOAD refused");
        return;
    }
    LOG_INFO("loaded the wsgate function library master=%s:%d version=%lld", sh->host, sh->port,
             sh->cl->fn_version);
    gw_clink_fn_loaded(sh);
}

/* As link_cmd.c: load unless this master has this version or a newer one. */
static void on_fn_version(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct cshard *sh = privdata;
    const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", (const char *)gw_redis_function };
    size_t lens[] = { 8, 4, 7, gw_redis_function_len };

    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= sh->cl->fn_version) {
        gw_clink_fn_loaded(sh);
        return;
    }
    if (gw_rconn_command(sh->cmd, 4, argv, lens, sh->cl->cmd_timeout_ms, on_fn_load, sh) != 0)
        gw_clink_fail(sh->cl, "cannot queue FUNCTION LOAD");
}

void gw_clink_load_functions(struct cshard *sh)
{
    static const char *const argv[] = { "FCALL_RO", "wsgate_version", "0" };
    static const size_t lens[] = { 8, 14, 1 };

    if (gw_rconn_command(sh->cmd, 3, argv, lens, sh->cl->cmd_timeout_ms, on_fn_version, sh) != 0)
        gw_clink_fail(sh->cl, "cannot queue FCALL_RO wsgate_version");
}
