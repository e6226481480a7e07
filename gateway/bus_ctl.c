/* The bus's control plane (docs/PROTOCOL.md, "Server API"): a server-API
 * disconnect or unsubscribe travels as one publish on the control channel,
 * which every node's subscriber holds; each node hands it to its workers,
 * sums what they closed and answers on the origin's reply channel. The
 * origin waits for as many answers as the publish said it reached, or
 * CTL_TIMEOUT_MS. Single Redis: PUBLISH on __wsgate:ctl, answers on
 * __wsgate:ctl:<node id>; Redis Cluster: SPUBLISH on __wsgate:ctl:{wsgate},
 * answers on __wsgate:ctl:{wsgate}:<node id>, one slot (bus_ctl_int.h).
 * Revocations (bus_revoke.c, above this file) are announced through here;
 * what they need back comes through ctl->hooks. Bus thread. */
#define GW_LOG_MODULE "ctl"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_int.h"
#include "clock.h"
#include "bus_ctl_int.h"
#include "ctl.h"
#include "log.h"

/* How long the origin waits for the nodes' answers. A node answers as soon
 * as its workers have marked the sessions closing (no network wait), so
 * this only runs out for a node that is stalled or lost its link. */
#define CTL_TIMEOUT_MS 1000
/* A disconnect or unsubscribe is also kept this long in the sorted set of
 * recent commands (score: milliseconds), so that a node whose link was down
 * when it was published applies it when its link is live again. */
#define RECENT_MS 60000
/* At most this many recent commands are read at a link-up. */
#define RECENT_MAX "1000"

/* One disconnect this node carries out, waiting for its workers. */
struct ctl_apply {
    uint32_t id;
    int workers_left;
    uint64_t closed;
    uint64_t req;
    char origin[GW_CTL_NODE_MAX + 1];
};

/* Wall-clock milliseconds: the recent commands are shared by every node. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True the first time (from, req) is seen within RECENT_MS; remembers it. */
static bool first_sight(struct bus_ctl *ctl, const char *from, uint64_t req)
{
    char key[GW_CTL_NODE_MAX + 24];
    int n = snprintf(key, sizeof key, "%s %" PRIu64, from, req);
    int64_t now = wall_ms();

    for (struct gw_dict_entry *e = gw_dict_first(&ctl->seen), *next; e; e = next) {
        next = gw_dict_next(&ctl->seen, e);
        if ((int64_t)(intptr_t)e->value <= now)
            gw_dict_delete(&ctl->seen, e->key, e->klen);
    }
    if (gw_dict_find(&ctl->seen, key, (size_t)n))
        return false;
    gw_dict_add(&ctl->seen, key, (size_t)n, (void *)(intptr_t)(now + 2 * RECENT_MS), NULL);
    return true;
}

struct bus_ctl *gw_bus_ctl_new(struct gw_bus *bus, const struct bus_ctl_hooks *hooks)
{
    struct bus_ctl *ctl = gw_xcalloc(1, sizeof(*ctl));
    const char *id = bus->cfg->node_id;

    ctl->bus = bus;
    ctl->hooks = hooks;
    gw_dict_init(&ctl->origins);
    gw_dict_init(&ctl->applies);
    gw_dict_init(&ctl->seen);
    ctl->usable = strlen(id) <= GW_CTL_NODE_MAX;
    if (!ctl->usable)
        LOG_WARN("node id longer than %d bytes: the server API's disconnect is unavailable on this node",
                 GW_CTL_NODE_MAX);
    bool cluster = !bus->standalone && bus->cfg->redis.cluster;
    ctl->chan_key = cluster ? CTL_CLUSTER_CHANNEL : GW_CTL_CHANNEL;
    ctl->reply_prefix = cluster ? CTL_CLUSTER_REPLY_PREFIX : GW_CTL_REPLY_PREFIX;
    ctl->recent_key = cluster ? CTL_CLUSTER_RECENT_KEY : CTL_RECENT_KEY;
    ctl->revoke_key = cluster ? CTL_CLUSTER_REVOKE_HASH : GW_REVOKE_HASH;
    ctl->chan_len = strlen(ctl->chan_key);
    ctl->recent_len = strlen(ctl->recent_key);
    ctl->revoke_len = strlen(ctl->revoke_key);
    ctl->reply_len = (size_t)snprintf(ctl->reply_key, sizeof ctl->reply_key, "%s%.*s", ctl->reply_prefix,
                                      GW_CTL_NODE_MAX, id);
    return ctl;
}

struct ctl_origin *gw_bus_ctl_origin_new(struct bus_ctl *ctl, const struct bus_cmd *cmd)
{
    struct ctl_origin *o = gw_xcalloc(1, sizeof(*o));

    *o = (struct ctl_origin){ ctl, ++ctl->next_req, cmd->worker, cmd->session_id, -1, 0, 0, NULL, { 0 } };
    gw_dict_add(&ctl->origins, &o->req, sizeof(o->req), o, NULL);
    return o;
}

/* Answers the API request (ok: the counts are meaningful) and forgets o. */
void gw_bus_ctl_origin_finish(struct ctl_origin *o, bool ok)
{
    struct gw_bus *bus = o->ctl->bus;
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_CTL_RESULT, NULL, 0);

    m->session_id = o->api_id;
    m->ok = ok;
    m->closed = o->closed;
    m->nodes = o->expected < 0 ? 0 : (int)o->expected;
    m->answered = o->answered;
    m->rev_at = o->msg.at;
    m->rev_until = o->msg.until;
    static const char *const names[] = { "", "disconnect", "done", "revoke", "unrevoke", "unsubscribe" };

    LOG_INFO("%s req=%" PRIu64 " ok=%d count=%" PRIu64 " nodes=%lld answered=%d", names[o->msg.op],
             o->req, ok, o->closed, o->expected, o->answered);
    bus->ops->post(bus->ctx, o->worker, m);
    gw_dict_delete(&o->ctl->origins, &o->req, sizeof(o->req));
    if (o->timer)
        event_free(o->timer);
    free(o);
}

static void origin_check(struct ctl_origin *o)
{
    if (o->expected >= 0 && o->answered >= o->expected)
        gw_bus_ctl_origin_finish(o, true);
}

static void on_origin_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_origin *o = arg;

    (void)fd;
    (void)what;
    /* Without PUBLISH's count nobody knows how far the command went. */
    gw_bus_ctl_origin_finish(o, o->expected >= 0);
}

struct ctl_origin *gw_bus_ctl_origin_find(struct bus_ctl *ctl, uint64_t req)
{
    struct gw_dict_entry *e = gw_dict_find(&ctl->origins, &req, sizeof(req));
    return e ? e->value : NULL;
}

/* One node's answer to a disconnect this node asked for. */
static void origin_answer(struct bus_ctl *ctl, uint64_t req, uint64_t closed)
{
    struct ctl_origin *o = gw_bus_ctl_origin_find(ctl, req);

    if (!o)
        return; /* timed out already: that answer is not in the reply */
    o->answered++;
    o->closed += closed;
    origin_check(o);
}

struct ctl_token *gw_bus_ctl_token_new(enum ctl_token_kind kind, uint64_t req)
{
    struct ctl_token *t = gw_xmalloc(sizeof(*t));
    *t = (struct ctl_token){ kind, req, 0 };
    return t;
}

static int publish(struct bus_ctl *ctl, const char *key, size_t klen, const struct gw_ctl_msg *m, bool command)
{
    struct ctl_token *t = gw_bus_ctl_token_new(command ? TOK_COMMAND : TOK_ANSWER, m->req);
    size_t len;
    char *text = gw_ctl_format(m, &len);
    int rc;

    rc = bus_publish_counted(ctl->bus, key, klen, text, len, t);
    free(text);
    if (rc != 0)
        free(t);
    return rc;
}

/* Hands the disconnect to every worker; they answer with gw_bus_post_disconnected. */
static void apply_start(struct bus_ctl *ctl, const struct gw_ctl_msg *m)
{
    struct gw_bus *bus = ctl->bus;
    struct ctl_apply *a = gw_xcalloc(1, sizeof(*a));

    a->id = ++ctl->next_apply;
    a->workers_left = bus->nworkers;
    a->req = m->req;
    memcpy(a->origin, m->from, sizeof a->origin);
    gw_dict_add(&ctl->applies, &a->id, sizeof(a->id), a, NULL);
    for (int w = 0; w < bus->nworkers; w++) {
        struct gw_wmail *mail;
        if (m->op == GW_CTL_UNSUBSCRIBE) {
            mail = gw_wmail_new(GW_WMAIL_UNSUBSCRIBE, m->unsub.user, m->unsub.user_len);
            mail->text = gw_xstrndup(m->unsub.channel, m->unsub.channel_len);
            mail->text2 = gw_xstrdup(m->unsub.reason);
        } else {
            mail = gw_wmail_new(GW_WMAIL_DISCONNECT, m->dis.user, m->dis.user_len);
            mail->id = m->dis.code;
            mail->text = gw_xstrdup(m->dis.reason);
        }
        mail->seq = a->id;
        bus->ops->post(bus->ctx, w, mail);
    }
}

/* Sends a command whose answer is not needed (a failure is logged once by
 * the link, and the command simply did not happen). */
void gw_bus_ctl_fire(struct bus_ctl *ctl, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens)
{
    struct ctl_token *t = gw_bus_ctl_token_new(TOK_PRUNE, 0);
    if (bus_command(ctl->bus, route, rlen, argc, argv, lens, t) != 0)
        free(t);
}

/* Keeps m in the recent commands (and drops those older than RECENT_MS). */
static void remember(struct bus_ctl *ctl, const struct gw_ctl_msg *m)
{
    int64_t now = wall_ms();
    char score[24], cut[24];
    size_t len, slen = (size_t)snprintf(score, sizeof score, "%" PRId64, now),
                 clen = (size_t)snprintf(cut, sizeof cut, "(%" PRId64, now - RECENT_MS);
    char *text = gw_ctl_format(m, &len);
    const char *key = ctl->recent_key;
    size_t kl = ctl->recent_len;
    const char *add[] = { "ZADD", key, score, text };
    size_t addl[] = { 4, kl, slen, len };
    const char *trim[] = { "ZREMRANGEBYSCORE", key, "-inf", cut };
    size_t triml[] = { 16, kl, 4, clen };
    const char *exp[] = { "PEXPIRE", key, "120000" };
    size_t expl[] = { 7, kl, 6 };

    gw_bus_ctl_fire(ctl, key, kl, 4, add, addl);
    gw_bus_ctl_fire(ctl, key, kl, 4, trim, triml);
    gw_bus_ctl_fire(ctl, key, kl, 3, exp, expl);
    free(text);
}

/* Publishes the command and waits for the answers, CTL_TIMEOUT_MS at most;
 * a command Redis does not take answers the API at once. */
void gw_bus_ctl_origin_send(struct ctl_origin *o, const struct gw_ctl_msg *m)
{
    struct bus_ctl *ctl = o->ctl;
    struct timeval tv = { CTL_TIMEOUT_MS / 1000, (CTL_TIMEOUT_MS % 1000) * 1000 };

    if (m->op == GW_CTL_DISCONNECT || m->op == GW_CTL_UNSUBSCRIBE)
        remember(ctl, m);

    o->timer = evtimer_new(ctl->bus->base, on_origin_timeout, o);
    if (!o->timer)
        abort(); /* libevent allocates; as alloc.h, out of memory is fatal */
    int rc = publish(ctl, ctl->chan_key, ctl->chan_len, m, true);
    if (rc != 0) {
        /* On a cluster: the {wsgate} slot's master is down (or not proven
         * yet); the API answers 503 and the other shards go on. */
        LOG_WARN("control command not sent req=%" PRIu64 " channel=%s reason=%s", m->req, ctl->chan_key,
                 rc == -ENOTCONN ? "link_or_master_down" : "refused");
        gw_bus_ctl_origin_finish(o, false);
        return;
    }
    evtimer_add(o->timer, &tv);
}

/* Tells the origin node of request req how many this node counted. A lost
 * link loses the answer: the origin then reports this node as not answered
 * (what it did stays done). */
static void answer_origin(struct bus_ctl *ctl, const char *origin, uint64_t req, uint64_t count)
{
    struct gw_ctl_msg m = { .op = GW_CTL_DONE, .req = req, .closed = count };
    char key[CTL_REPLY_KEY_MAX];
    int klen = snprintf(key, sizeof key, "%s%s", ctl->reply_prefix, origin);

    snprintf(m.from, sizeof m.from, "%s", ctl->bus->cfg->node_id);
    if (publish(ctl, key, (size_t)klen, &m, false) != 0)
        LOG_WARN("answer not sent origin=%s req=%" PRIu64 " reason=link_down", origin, req);
}

void gw_bus_cmd_disconnect(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct bus_ctl *ctl = bus->ctl;
    struct ctl_origin *o = gw_bus_ctl_origin_new(ctl, cmd);
    struct gw_ctl_msg m = { .op = cmd->unsub ? GW_CTL_UNSUBSCRIBE : GW_CTL_DISCONNECT, .req = o->req };

    o->msg.op = m.op; /* for the log line */
    snprintf(m.from, sizeof m.from, "%s", bus->cfg->node_id);
    if (cmd->unsub) {
        m.unsub = *cmd->unsub;
    } else {
        memcpy(m.dis.user, cmd->name, cmd->name_len);
        m.dis.user_len = cmd->name_len;
        m.dis.code = (int)cmd->id;
        snprintf(m.dis.reason, sizeof m.dis.reason, "%s", cmd->payload ? cmd->payload : "");
    }
    if (bus->standalone) {
        o->expected = 1; /* this node alone; its apply answers origin_answer */
        apply_start(ctl, &m);
        return;
    }
    if (!ctl->usable)
        gw_bus_ctl_origin_finish(o, false);
    else
        gw_bus_ctl_origin_send(o, &m);
}

void gw_bus_cmd_disconnected(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct bus_ctl *ctl = bus->ctl;
    uint32_t id = cmd->seq;
    struct gw_dict_entry *e = gw_dict_find(&ctl->applies, &id, sizeof(id));
    struct ctl_apply *a = e ? e->value : NULL;

    if (!a)
        return;
    a->closed += cmd->target;
    if (--a->workers_left > 0)
        return;
    gw_dict_delete(&ctl->applies, &id, sizeof(id));
    LOG_INFO("disconnect applied origin=%s req=%" PRIu64 " closed=%" PRIu64, a->origin, a->req, a->closed);
    if (bus->standalone)
        origin_answer(ctl, a->req, a->closed);
    else
        answer_origin(ctl, a->origin, a->req, a->closed);
    free(a);
}

void gw_bus_post_disconnect(struct gw_bus *bus, int worker, uint64_t api_id, const struct gw_ctl_disconnect *d)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_DISCONNECT, worker, d->user, d->user_len);

    cmd->session_id = api_id;
    cmd->id = d->code;
    cmd->payload = gw_xstrdup(d->reason);
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_unsubscribe_user(struct gw_bus *bus, int worker, uint64_t api_id,
                                  const struct gw_ctl_unsubscribe *u)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_DISCONNECT, worker, u->user, u->user_len);

    cmd->session_id = api_id;
    cmd->unsub = gw_xmalloc(sizeof(*cmd->unsub));
    *cmd->unsub = *u;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_disconnected(struct gw_bus *bus, int worker, uint32_t seq, uint64_t closed)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_DISCONNECTED, worker, "", 0);

    cmd->seq = seq;
    cmd->target = closed;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_ctl_on_counted(void *ctx, void *token, long long receivers)
{
    struct gw_bus *bus = ctx;
    struct ctl_token *t = token;
    struct ctl_origin *o = t->kind == TOK_COMMAND ? gw_bus_ctl_origin_find(bus->ctl, t->req) : NULL;

    free(t);
    if (!o)
        return;
    if (receivers < 0) {
        gw_bus_ctl_origin_finish(o, false);
        return;
    }
    o->expected = receivers;
    origin_check(o);
}

/* The recent commands at link-up: those this node has not applied (its
 * link was down when they were published) are applied now. */
static void recent_loaded(struct gw_bus *bus, const redisReply *reply)
{
    struct bus_ctl *ctl = bus->ctl;
    int applied = 0;

    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        struct gw_ctl_msg m;
        if (r->type != REDIS_REPLY_STRING || gw_ctl_parse(r->str, r->len, &m) != 0 ||
            (m.op != GW_CTL_DISCONNECT && m.op != GW_CTL_UNSUBSCRIBE) || !first_sight(ctl, m.from, m.req))
            continue;
        apply_start(ctl, &m);
        applied++;
    }
    if (applied)
        LOG_INFO("applied commands missed while the link was down count=%d", applied);
}

void gw_bus_ctl_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply)
{
    struct ctl_token *t = token;

    if (t->kind == TOK_RECENT)
        recent_loaded(bus, reply);
    free(t);
}

/* The revocations and the recent commands, read back when the link (or, on
 * a cluster, the {wsgate} master) is live again. */
static void reload(struct gw_bus *bus)
{
    struct bus_ctl *ctl = bus->ctl;

    ctl->hooks->reload(bus);
    char from[24];
    size_t flen = (size_t)snprintf(from, sizeof from, "%" PRId64, wall_ms() - RECENT_MS);
    const char *rargv[] = { "ZRANGEBYSCORE", ctl->recent_key, from, "+inf", "LIMIT", "0", RECENT_MAX };
    size_t rlens[] = { 13, ctl->recent_len, flen, 4, 5, 1, strlen(RECENT_MAX) };
    struct ctl_token *t = gw_bus_ctl_token_new(TOK_RECENT, 0);
    if (bus_command(bus, ctl->recent_key, ctl->recent_len, 7, rargv, rlens, t) != 0)
        free(t);
}

void gw_bus_ctl_live(struct gw_bus *bus)
{
    reload(bus);
}

void gw_bus_ctl_open(struct gw_bus *bus)
{
    struct bus_ctl *ctl = bus->ctl;
    const char *keys[] = { ctl->chan_key, ctl->reply_key };
    size_t lens[] = { ctl->chan_len, ctl->reply_len };

    if (ctl->usable && bus_subscribe_internal(bus, 2, keys, lens) != 0)
        LOG_WARN("cannot subscribe the control channels");
}

/* Cluster mode: one master came back without a new map. When it is the
 * {wsgate} master (every control key shares its slot) its connections are
 * new: subscribe the control channels again, and once its heartbeat echoes,
 * read back what was missed. */
void gw_bus_ctl_keys_open(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx)
{
    if (pred(pctx, bus->ctl->chan_key, bus->ctl->chan_len))
        gw_bus_ctl_open(bus);
}

void gw_bus_ctl_keys_live(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx)
{
    if (pred(pctx, bus->ctl->chan_key, bus->ctl->chan_len)) {
        LOG_INFO("control plane master live again: reloading revocations and recent commands");
        reload(bus);
    }
}

bool gw_bus_ctl_message(struct gw_bus *bus, const char *key, size_t klen, const char *payload, size_t len)
{
    struct bus_ctl *ctl = bus->ctl;
    struct gw_ctl_msg m;
    bool command = klen == ctl->chan_len && memcmp(key, ctl->chan_key, klen) == 0;

    if (!command && !(klen == ctl->reply_len && memcmp(key, ctl->reply_key, klen) == 0))
        return false;
    if (gw_ctl_parse(payload, len, &m) != 0 || (m.op != GW_CTL_DONE) != command) {
        gw_stat_add(&bus->stats.ctl_dropped, 1);
        if (gw_bus_log_this(&bus->stats.ctl_dropped))
            LOG_WARN("dropped control message reason=malformed channel=%.*s dropped_total=%" PRIu64, (int)klen, key,
                     gw_stat_get(&bus->stats.ctl_dropped));
        return true;
    }
    if (m.op == GW_CTL_DISCONNECT || m.op == GW_CTL_UNSUBSCRIBE) {
        if (first_sight(ctl, m.from, m.req))
            apply_start(ctl, &m);
    } else if (m.op == GW_CTL_DONE)
        origin_answer(ctl, m.req, m.closed);
    else {
        ctl->hooks->apply(bus, &m);
        answer_origin(ctl, m.from, m.req, 0);
    }
    return true;
}

void gw_bus_ctl_stop(struct gw_bus *bus)
{
    struct bus_ctl *ctl = bus->ctl;
    struct gw_dict_entry *e;

    while ((e = gw_dict_first(&ctl->origins)))
        gw_bus_ctl_origin_finish(e->value, false);
}

void gw_bus_ctl_free(struct gw_bus *bus)
{
    struct bus_ctl *ctl = bus->ctl;

    if (!ctl)
        return;
    for (struct gw_dict_entry *e = gw_dict_first(&ctl->origins); e; e = gw_dict_next(&ctl->origins, e)) {
        struct ctl_origin *o = e->value;
        if (o->timer)
            event_free(o->timer);
        free(o);
    }
    for (struct gw_dict_entry *e = gw_dict_first(&ctl->applies); e; e = gw_dict_next(&ctl->applies, e))
        free(e->value);
    gw_dict_deinit(&ctl->origins);
    gw_dict_deinit(&ctl->applies);
    gw_dict_deinit(&ctl->seen);
    free(ctl);
    bus->ctl = NULL;
}
