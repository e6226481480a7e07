/* The link's commands: every publish, history read and epoch retire goes
 * through the wsgate Function library (deploy/redis/wsgate.lua, compiled into the
 * binary), which this file loads on every fresh link when Redis has an older
 * version or none (a Redis restarted without persistence has lost it). */
/* The tag stays "bus": operators' log queries predate the split. */
#define GW_LOG_MODULE "bus"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "link_int.h"
#include "log.h"
#include "rconn.h"

#include "fnreply.h"

#define KEY_MAX GW_FN_KEY_MAX

/* Every command of this file goes on the publisher connection with the
 * link's deadline. Returns as gw_rconn_command, or -ENOTCONN without one. */
static int pub_command(struct gw_link *link, int argc, const char *const *argv, const size_t *lens,
                       gw_rconn_reply_fn cb, void *privdata)
{
    if (!link->pub)
        return -ENOTCONN;
    return gw_rconn_command(link->pub, argc, argv, lens, link->cmd_timeout_ms, cb, privdata);
}

/* The library's "local VERSION = N" line; the build embeds the file as is. */
long long gw_link_fn_version(void)
{
    static const char tag[] = "\nlocal VERSION = ";
    const char *src = (const char *)gw_redis_function;
    const char *p = memmem(src, gw_redis_function_len, tag, sizeof tag - 1);

    if (!p) {
        LOG_ERR("the embedded wsgate.lua has no VERSION line");
        abort();
    }
    return strtoll(p + sizeof tag - 1, NULL, 10);
}

/* fnreply.h */
bool gw_fn_history_keys(const char *key, size_t klen, char *meta, size_t *mlen, char *stream, size_t *slen)
{
    if (klen + 10 > KEY_MAX)
        return false;
    *mlen = (size_t)snprintf(meta, KEY_MAX, "{%.*s}:meta", (int)klen, key);
    *slen = (size_t)snprintf(stream, KEY_MAX, "{%.*s}:stream", (int)klen, key);
    return true;
}

/* An FCALL error that means the library is gone (FUNCTION FLUSH, a Redis
 * replaced under us): only a fresh link, which reloads it, can help. */
static void check_fn_error(struct gw_link *link, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "Function not found"))
        link->fail(link, "the wsgate function library is missing");
}

/* A full Redis (maxmemory with noeviction: "OOM command not allowed")
 * refuses every stored publish: one line per power of two of them, not one
 * per publish; each is counted (wsgate_client_publishes_total{result="error"}). */
static void log_publish_error(struct gw_link *link, const redisReply *reply)
{
    uint64_t n = ++link->publish_errors;
    if ((n & (n - 1)) == 0)
        LOG_WARN("publish failed error=\"%s\" errors=%" PRIu64, reply->str, n);
}

/* fnreply.h */
bool gw_fn_parse_published(const redisReply *reply, struct gw_position *at)
{
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
              reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer > 0 &&
              reply->element[1]->type == REDIS_REPLY_STRING && reply->element[1]->len >= 1 &&
              reply->element[1]->len <= GW_ENVELOPE_EPOCH_MAX;

    if (ok)
        gw_position_set(at, (uint64_t)reply->element[0]->integer, reply->element[1]->str, reply->element[1]->len);
    return ok;
}

static void on_publish_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    struct gw_position at = { 0 };
    bool ok = gw_fn_parse_published(reply, &at);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_publish_error(link, reply);
        check_fn_error(link, reply);
    }
    link->ops->on_published(link->ctx, privdata, ok ? &at : NULL);
}

int gw_link_publish(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                    void *token)
{
    char meta[KEY_MAX], stream[KEY_MAX];
    size_t mlen, slen;

    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    if (!gw_fn_history_keys(key, klen, meta, &mlen, stream, &slen))
        return -EIO;
    const char *argv[] = { "FCALL", "wsgate_publish", "2", meta, stream, key, payload,
                           link->history_size, link->history_ttl };
    size_t lens[] = { 5, 14, 1, mlen, slen, klen, len, strlen(link->history_size), strlen(link->history_ttl) };
    return pub_command(link, 9, argv, lens, on_publish_reply, token);
}

static void on_plain_publish_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    struct gw_position none = { 0 };
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;

    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_publish_error(link, reply);
    link->ops->on_published(link->ctx, privdata, ok ? &none : NULL);
}

int gw_link_publish_plain(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                          void *token)
{
    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    const char *argv[] = { "PUBLISH", key, payload };
    size_t lens[] = { 7, klen, len };
    return pub_command(link, 3, argv, lens, on_plain_publish_reply, token);
}

static void on_counted_publish_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0;

    link->ops->on_counted(link->ctx, privdata, ok ? reply->integer : -1);
}

int gw_link_publish_counted(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                            void *token)
{
    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    const char *argv[] = { "PUBLISH", key, payload };
    size_t lens[] = { 7, klen, len };
    return pub_command(link, 3, argv, lens, on_counted_publish_reply, token);
}

static void on_command_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    link->ops->on_reply(link->ctx, privdata, reply);
}

int gw_link_command(struct gw_link *link, int argc, const char *const *argv, const size_t *lens, void *token)
{
    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    return pub_command(link, argc, argv, lens, on_command_reply, token);
}

/* fnreply.h. wsgate_history's reply: { epoch, current, reachable, { o1, p1, o2, p2, ... } }. */
bool gw_fn_parse_history(const redisReply *r, struct gw_history_page *page, struct gw_history_entry **entries)
{
    const redisReply *flat;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len > GW_ENVELOPE_EPOCH_MAX || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->integer < 0 || r->element[2]->type != REDIS_REPLY_INTEGER ||
        r->element[3]->type != REDIS_REPLY_ARRAY || r->element[3]->elements % 2 != 0)
        return false;
    flat = r->element[3];
    *entries = gw_xmalloc(sizeof(**entries) * (flat->elements / 2 + 1));
    for (size_t i = 0; i < flat->elements / 2; i++) {
        const redisReply *o = flat->element[2 * i], *p = flat->element[2 * i + 1];
        if (o->type != REDIS_REPLY_INTEGER || o->integer <= 0 || p->type != REDIS_REPLY_STRING) {
            free(*entries);
            *entries = NULL;
            return false;
        }
        (*entries)[i] = (struct gw_history_entry){ (uint64_t)o->integer, p->str, p->len };
    }
    *page = (struct gw_history_page){ r->element[0]->str, r->element[0]->len, (uint64_t)r->element[1]->integer,
                                      r->element[2]->integer == 1, *entries, flat->elements / 2 };
    return true;
}

static void on_read_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    struct gw_history_page page;
    struct gw_history_entry *entries = NULL;
    bool ok = false;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        LOG_WARN("history read failed error=\"%s\"", reply->str);
        check_fn_error(link, reply);
    } else if (reply) {
        ok = gw_fn_parse_history(reply, &page, &entries);
        if (!ok)
            LOG_WARN("history read: unexpected reply shape");
    }
    link->ops->on_read(link->ctx, privdata, ok ? &page : NULL);
    free(entries);
}

int gw_link_read(struct gw_link *link, const char *key, size_t klen, bool latest, uint64_t since, int limit,
                 size_t max_bytes, void *token)
{
    struct gw_fn_history_call call;

    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    if (!gw_fn_history_call(&call, key, klen, latest, since, limit, max_bytes))
        return -EIO;
    return pub_command(link, 9, call.argv, call.lens, on_read_reply, token);
}

bool gw_fn_history_call(struct gw_fn_history_call *c, const char *key, size_t klen, bool latest, uint64_t since,
                        int limit, size_t max_bytes)
{
    size_t mlen, slen;

    if (!gw_fn_history_keys(key, klen, c->meta, &mlen, c->stream, &slen))
        return false;
    if (latest)
        c->since[0] = '\0';
    else
        snprintf(c->since, sizeof c->since, "%" PRIu64, since);
    snprintf(c->limit, sizeof c->limit, "%d", limit);
    snprintf(c->bytes, sizeof c->bytes, "%zu", max_bytes);
    const char *argv[] = { "FCALL_RO", "wsgate_history", "2", c->meta, c->stream, key, c->since, c->limit, c->bytes };
    size_t lens[] = { 8, 14, 1, mlen, slen, klen, strlen(c->since), strlen(c->limit), strlen(c->bytes) };
    memcpy(c->argv, argv, sizeof argv);
    memcpy(c->lens, lens, sizeof lens);
    return true;
}

bool gw_fn_retire_call(struct gw_fn_retire_call *c, const char *key, size_t klen, const char *epoch, size_t elen,
                       uint64_t below)
{
    size_t mlen, slen;

    if (!gw_fn_history_keys(key, klen, c->meta, &mlen, c->stream, &slen))
        return false;
    if (below)
        snprintf(c->below, sizeof c->below, "%" PRIu64, below);
    else
        c->below[0] = '\0';
    const char *argv[] = { "FCALL", "wsgate_retire_epoch", "2", c->meta, c->stream, key, epoch, c->below };
    size_t lens[] = { 5, 19, 1, mlen, slen, klen, elen, strlen(c->below) };
    memcpy(c->argv, argv, sizeof argv);
    memcpy(c->lens, lens, sizeof lens);
    return true;
}

static void on_retire_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);

    (void)privdata;
    if (!reply)
        return; /* the link went down: the next rewind or conflict asks again */
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_WARN("epoch retire failed error=\"%s\"", reply->str);
        check_fn_error(link, reply);
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        LOG_INFO("epoch retire result=%s", reply->integer == 1 ? "retired" : "already_changed");
    }
}

int gw_link_retire_epoch(struct gw_link *link, const char *key, size_t klen, const char *epoch, size_t elen,
                         uint64_t below)
{
    struct gw_fn_retire_call c;

    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    if (!gw_fn_retire_call(&c, key, klen, epoch, elen, below))
        return -EIO;
    return pub_command(link, 8, c.argv, c.lens, on_retire_reply, NULL);
}

/* ---- the function library ---- */

static void on_fn_load(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);

    if (!reply)
        return; /* the connection failed: the link resets */
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_ERR("cannot load the wsgate function library error=\"%s\"", reply->str);
        link->fail(link, "FUNCTION LOAD refused");
        return;
    }
    LOG_INFO("loaded the wsgate function library version=%lld", link->fn_version);
    link->fn_loaded(link);
}

/* Loads the embedded library unless Redis has this version or a newer one:
 * during a rolling upgrade the newer nodes' library serves the older nodes
 * too (its functions stay compatible), and nodes never replace it back and
 * forth. */
static void on_fn_version(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", (const char *)gw_redis_function };
    size_t lens[] = { 8, 4, 7, gw_redis_function_len };

    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= link->fn_version) {
        link->fn_loaded(link);
        return;
    }
    if (pub_command(link, 4, argv, lens, on_fn_load, NULL) != 0)
        link->fail(link, "cannot queue FUNCTION LOAD");
}

int gw_link_load_functions(struct gw_link *link)
{
    const char *argv[] = { "FCALL_RO", "wsgate_version", "0" };
    size_t lens[] = { 8, 14, 1 };
    int rc = pub_command(link, 3, argv, lens, on_fn_version, NULL);

    if (rc != 0)
        link->fail(link, "cannot queue FCALL_RO wsgate_version");
    return rc;
}

/* ---- any command (presence.c) ---- */

struct call_wait {
    gw_link_reply_fn cb;
    void *token;
};

static void on_call_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct call_wait *w = privdata;

    if (reply)
        check_fn_error(gw_rconn_owner(c), reply);
    w->cb(w->token, reply);
    free(w);
}

int gw_link_call(struct gw_link *link, int argc, const char *const *argv, const size_t *lens, gw_link_reply_fn cb,
                 void *token)
{
    if (link->state != LINK_LIVE || !link->pub)
        return -ENOTCONN;
    if (!cb)
        return pub_command(link, argc, argv, lens, NULL, NULL);
    struct call_wait *w = gw_xmalloc(sizeof *w);
    w->cb = cb;
    w->token = token;
    int rc = pub_command(link, argc, argv, lens, on_call_reply, w);
    if (rc != 0)
        free(w);
    return rc;
}
