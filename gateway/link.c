/* The bus thread's Redis link: two connections of our own (rconn.h), their
 * setup, the heartbeat that proves the subscription is alive, and reset +
 * reconnect.
 *
 * Redis answers no PING on a subscribed connection the way it does on any
 * other, and a command answered is not a subscription proven, so liveness is
 * proven end to end: every heartbeat interval the publisher connection
 * PUBLISHes to a channel only this node subscribes to, and the subscriber
 * connection must see it come back within the heartbeat timeout. The
 * heartbeat channel is subscribed after every other channel on a fresh link
 * (after ops->on_open), so its first echo also proves the re-subscription
 * finished. Each command also has a deadline of its own (the same timeout):
 * a connection that misses one fails, and the link with it.
 *
 * Every message a node publishes goes through the wsgate Function library
 * (deploy/redis/wsgate.lua, compiled into the binary), which the publisher
 * connection loads on every fresh link when Redis has an older version or
 * none (a Redis restarted without persistence has lost it). The link
 * subscribes only once the library is there, and goes live on the first echo.
 *
 * With redis+sentinel:// the address comes from sentinel.c, asked again on
 * every fresh link; a master switch it reports resets the link at once. */
/* The tag stays "bus": operators' log queries predate the split. */
#define GW_LOG_MODULE "bus"

#include "link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "clock.h"
#include "link_int.h"
#include "log.h"
#include "rtls.h"
#include "sentinel.h"

/* Redis cuts a pub/sub client at 32 MiB by default: what the subscriber
 * holds unread when a link is reset is counted up to twice that. */
#define UNHANDLED_MAX (64u * 1024 * 1024)

/* One list of names, the one /metrics uses (metrics.h). */
_Static_assert(LINK_RESETTING + 1 == GW_REDIS_LINK_STATES, "link states and their metric names");

static const char *link_state_name(enum link_state s)
{
    return (unsigned)s < GW_REDIS_LINK_STATES ? gw_redis_link_state_names[s] : "?";
}

static void set_conn_ready(struct gw_link *link, enum gw_redis_role role, bool ready)
{
    gw_stat_set(&link->stats->redis_conn_ready[role], ready);
}

/* Ready also needs a fresh echo, judged by the caller's clock: after this
 * node was stalled, its workers must not answer 200 before the bus thread
 * has run again and proven the link. */
bool gw_link_ready(const struct gw_link *link)
{
    struct gw_link *l = (struct gw_link *)link;
    int64_t age = gw_now_us() - atomic_load_explicit(&l->echo_at_us, memory_order_relaxed);
    return atomic_load_explicit(&l->ready, memory_order_acquire) &&
           age <= (int64_t)l->cfg->redis_heartbeat_timeout_ms * 1000;
}

/* The one place the link state changes; every move is logged. */
static void set_state(struct gw_link *link, enum link_state to, const char *why)
{
    if (link->state == to)
        return;
    if (to == LINK_CONNECTING && link->sentinel) {
        int port;
        const char *host = gw_sentinel_master(link->sentinel, &port);
        LOG_INFO("redis link from=%s to=%s reason=\"%s\" master=%s:%d", link_state_name(link->state),
                 link_state_name(to), why, host, port);
    } else {
        LOG_INFO("redis link from=%s to=%s reason=\"%s\"", link_state_name(link->state), link_state_name(to), why);
    }
    link->state = to;
    gw_stat_set(&link->stats->redis_link_state, (uint64_t)to);
    atomic_store_explicit(&link->ready, to == LINK_LIVE, memory_order_release);
    gw_stat_set(&link->stats->redis_connected, to == LINK_LIVE);
}

static void send_heartbeat(struct gw_link *link, int64_t now);

/* Schedules a teardown + reconnect; safe from inside any callback. */
static void link_reset(struct gw_link *link, const char *reason)
{
    if (link->state == LINK_DOWN || link->state == LINK_RESETTING)
        return;
    set_state(link, LINK_RESETTING, reason);
    event_active(link->reset_ev, 0, 0);
}

/* ---- the subscriber connection ---- */

/* The answer to a SUBSCRIBE/UNSUBSCRIBE once all its confirmations came (they
 * went to on_push one by one), or Redis' refusal, or NULL on a failure that
 * resets the link anyway. */
static void on_sub_done(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct gw_link *link = gw_rconn_owner(c);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        LOG_ERR("subscriber error=\"%s\"", reply->str);
        link->fail(link, "subscriber error reply");
    }
}

static int sub_command(struct gw_link *link, const char *verb, int n, const char *const *keys, const size_t *klens)
{
    if (!link->sub || link->state == LINK_RESETTING)
        return -ENOTCONN;
    const char **argv = gw_xmalloc(sizeof(*argv) * (size_t)(n + 1));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)(n + 1));
    argv[0] = verb;
    lens[0] = strlen(verb);
    for (int i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
        lens[i + 1] = klens[i];
    }
    int rc = gw_rconn_command(link->sub, n + 1, argv, lens, link->cmd_timeout_ms, on_sub_done, NULL);
    free(lens);
    free(argv);
    return rc;
}

int gw_link_subscribe(struct gw_link *link, const char *key, size_t klen)
{
    return sub_command(link, "SUBSCRIBE", 1, &key, &klen);
}

int gw_link_unsubscribe(struct gw_link *link, const char *key, size_t klen)
{
    return sub_command(link, "UNSUBSCRIBE", 1, &key, &klen);
}

int gw_link_subscribe_many(struct gw_link *link, int n, const char *const *keys, const size_t *klens)
{
    return sub_command(link, "SUBSCRIBE", n, keys, klens);
}

static void on_heartbeat_echo(struct gw_link *link, const char *payload)
{
    uint64_t seq = strtoull(payload, NULL, 10);
    int64_t now = gw_now_us();

    link->echo_due_us = now + (int64_t)link->cfg->redis_heartbeat_timeout_ms * 1000;
    atomic_store_explicit(&link->echo_at_us, now, memory_order_relaxed);
    if (seq == link->hb_seq)
        gw_stat_set(&link->stats->heartbeat_rtt_us, (uint64_t)(now - link->last_hb_sent_us));
    if (link->state == LINK_PROVING) {
        link->attempt = 0;
        set_state(link, LINK_LIVE, "heartbeat echo received");
        link->ops->on_live(link->ctx);
    }
}

static void on_push(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const redisReply *r)
{
    struct gw_link *link = ctx;
    const redisReply *key = r->element[1], *arg = r->element[2];

    if (c != link->sub || key->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(key->str, link->hb_channel) == 0) {
        if (kind == GW_RCONN_MESSAGE && arg->type == REDIS_REPLY_STRING)
            on_heartbeat_echo(link, arg->str);
        return;
    }
    if (kind == GW_RCONN_MESSAGE && arg->type == REDIS_REPLY_STRING)
        link->ops->on_message(link->ctx, key->str, key->len, arg->str, arg->len);
    else if (kind == GW_RCONN_SUBSCRIBE || kind == GW_RCONN_UNSUBSCRIBE)
        link->ops->on_subscription(link->ctx, key->str, key->len, kind == GW_RCONN_SUBSCRIBE);
}

/* ---- setup ---- */

/* The library is there: prove the subscriptions with a first heartbeat. */
static void fn_loaded(struct gw_link *link)
{
    if (link->state != LINK_LOADING)
        return;
    set_state(link, LINK_PROVING, "functions loaded");
    /* At once, not a tick later: readiness (and the repair of what was
     * missed while the link was down) waits for its echo. */
    int64_t now = gw_now_us();
    link->echo_due_us = now + (int64_t)link->cfg->redis_heartbeat_timeout_ms * 1000;
    send_heartbeat(link, now);
}

static void on_ready(void *ctx, struct gw_rconn *c)
{
    struct gw_link *link = ctx;
    set_conn_ready(link, c == link->sub ? GW_REDIS_ROLE_SUB : GW_REDIS_ROLE_PUB, true);
    if (link->state != LINK_CONNECTING || gw_rconn_state(link->sub) != GW_RCONN_READY ||
        gw_rconn_state(link->pub) != GW_RCONN_READY)
        return;
    set_state(link, LINK_LOADING, "both connections ready");
    gw_link_load_functions(link);
}

static void on_fail(void *ctx, struct gw_rconn *c, const char *why)
{
    struct gw_link *link = ctx;
    set_conn_ready(link, c == link->sub ? GW_REDIS_ROLE_SUB : GW_REDIS_ROLE_PUB, false);
    link_reset(link, c == link->sub ? "subscriber connection failed" : "publisher connection failed");
}

static const struct gw_rconn_ops conn_ops = { on_ready, on_fail, on_push };

static struct gw_rconn *open_conn(struct gw_link *link, const char *name)
{
    const struct gw_config *cfg = link->cfg;
    const struct gw_redis_addr *a = &cfg->redis;
    struct gw_rconn_opts o = {
        .name = name,
        .username = a->username,
        .password = a->password,
        .db = a->db,
        .connect_timeout_ms = cfg->redis_connect_timeout_ms,
        /* Above anything the bus lets through: publishes in flight are
         * bounded by --max-inbox-bytes, subscriptions are small. */
        .max_out_bytes = 2 * cfg->max_inbox_bytes + (16u << 20),
        /* One reply: a history page (256 KiB plus one entry) or a message. */
        .max_in_bytes = 2 * cfg->max_message_bytes + (64u << 20),
        .tls_ctx = link->tls_ctx,
        .tls_name = cfg->redis_tls_server_name,
    };
    struct gw_rconn *c = gw_rconn_new(link->base, &o, &conn_ops, link);
    if (link->sentinel) {
        int port;
        const char *host = gw_sentinel_master(link->sentinel, &port);
        gw_rconn_connect(c, host, port, NULL);
    } else {
        gw_rconn_connect(c, a->unix_path ? NULL : a->host, a->port, a->unix_path);
    }
    return c;
}

/* Opens both connections and queues, behind AUTH/SELECT, every
 * subscription at once: they are in place as soon as Redis can answer (a
 * Redis that was stopped, then resumed, sends the burst its publishers had
 * waiting to this node live, not to history it must read back). */
static void open_conns(struct gw_link *link)
{
    set_state(link, LINK_CONNECTING, "connecting");
    if (link->cfg->redis.tls) {
        char err[320];
        SSL_CTX_free(link->tls_ctx);
        link->tls_ctx = NULL;
        if (gw_rtls_ctx_new(link->cfg, &link->tls_ctx, err, sizeof err) != 0) {
            LOG_ERR("redis TLS context error=\"%s\"", err);
            link_reset(link, "TLS context unusable");
            return;
        }
    }
    link->sub = open_conn(link, "sub");
    link->pub = open_conn(link, "pub");
    link->ops->on_open(link->ctx);
    /* Last: Redis answers one connection in order, so the first echo comes
     * after every SUBSCRIBE on_open sent. Without it the link never goes live. */
    if (link->state == LINK_CONNECTING && gw_link_subscribe(link, link->hb_channel, strlen(link->hb_channel)) != 0)
        link_reset(link, "cannot queue the heartbeat SUBSCRIBE");
}

/* With Sentinel every fresh link asks for the master first: the one it
 * used last may have been demoted meanwhile. */
static void link_open(struct gw_link *link)
{
    if (!link->sentinel) {
        open_conns(link);
        return;
    }
    set_state(link, LINK_RESOLVING, "asking the Sentinels for the master");
    gw_sentinel_resolve(link->sentinel);
}

static void on_sentinel_master(void *ctx)
{
    struct gw_link *link = ctx;
    if (link->state == LINK_RESOLVING)
        open_conns(link);
}

static void on_sentinel_fail(void *ctx, const char *why)
{
    struct gw_link *link = ctx;
    if (link->state == LINK_RESOLVING)
        link_reset(link, why);
}

static void on_retry(evutil_socket_t fd, short what, void *arg);

/* Fencing: from the moment a switch is seen no command goes to the old
 * master (the link leaves LIVE, so every publish answers unavailable) until
 * a resolution confirmed the new one. A link waiting out its backoff
 * retries at once: the switch is the news it was waiting for. */
static void on_sentinel_switch(void *ctx, const char *why)
{
    struct gw_link *link = ctx;
    if (link->state == LINK_DOWN) {
        if (evtimer_pending(link->retry_ev, NULL)) {
            evtimer_del(link->retry_ev);
            on_retry(-1, 0, link);
        }
        return;
    }
    link_reset(link, why);
}

static const struct gw_sentinel_ops sentinel_ops = { on_sentinel_master, on_sentinel_fail, on_sentinel_switch };

static void send_heartbeat(struct gw_link *link, int64_t now)
{
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "%" PRIu64, ++link->hb_seq);
    const char *argv[] = { "PUBLISH", link->hb_channel, payload };
    size_t lens[] = { 7, strlen(link->hb_channel), (size_t)n };

    link->last_hb_sent_us = now;
    if (gw_rconn_command(link->pub, 3, argv, lens, link->cmd_timeout_ms, NULL, NULL) != 0)
        link_reset(link, "cannot queue the heartbeat PUBLISH");
}

/* ---- reset and reconnect ---- */

static int64_t backoff_ms(struct gw_link *link)
{
    const struct gw_config *cfg = link->cfg;
    int shift = link->attempt < 16 ? link->attempt : 16;
    int64_t base = (int64_t)cfg->redis_backoff_min_ms << shift;
    if (base > cfg->redis_backoff_max_ms)
        base = cfg->redis_backoff_max_ms;
    uint32_t r;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)gw_now_us();
    /* Equal jitter: half fixed, half random, so nodes spread out after a
     * shared outage yet never retry faster than half the step. */
    return base / 2 + (int64_t)(r % (uint32_t)(base / 2 + 1));
}

/* Frees both connections, which fails every pending publish and read
 * (their callbacks get NULL). Messages Redis had already sent the
 * subscriber are counted, so no loss is silent (with history the repair
 * reads them back). */
static void free_conns(struct gw_link *link)
{
    struct gw_rconn *sub = link->sub, *pub = link->pub;
    link->sub = link->pub = NULL;
    set_conn_ready(link, GW_REDIS_ROLE_SUB, false);
    set_conn_ready(link, GW_REDIS_ROLE_PUB, false);
    if (sub) {
        uint64_t n = gw_rconn_discard_messages(sub, UNHANDLED_MAX);
        if (n) {
            gw_stat_add(&link->stats->redis_messages_dropped_link_reset, n);
            LOG_WARN("link reset dropped messages already received count=%" PRIu64, n);
        }
    }
    gw_rconn_free(sub);
    gw_rconn_free(pub);
}

/* Performs a scheduled reset, outside every connection callback. */
static void on_reset_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_link *link = arg;

    set_state(link, LINK_DOWN, "connections closed");
    free_conns(link);
    /* Nothing is subscribed on the next link. */
    if (!link->ops->on_reset(link->ctx))
        return;
    int64_t delay = backoff_ms(link);
    link->attempt++;
    gw_stat_add(&link->stats->redis_reconnects, 1);
    LOG_INFO("redis reconnect attempt=%d delay_ms=%" PRId64, link->attempt, delay);
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    if (evtimer_add(link->retry_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the reconnect timer");
        abort(); /* a link that never retries is a silent outage */
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    link_open(arg);
}

void gw_link_pause(struct gw_link *link, bool pause)
{
    if (link->sub)
        gw_rconn_pause(link->sub, pause);
}

/* ---- the heartbeat ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_link *link = arg;
    const struct gw_config *cfg = link->cfg;
    int64_t now = gw_now_us(), timeout = (int64_t)cfg->redis_heartbeat_timeout_ms * 1000;

    int64_t gap = link->last_tick_us ? now - link->last_tick_us : 0;
    link->last_tick_us = now;
    /* Before PROVING the connections' own deadlines judge the link. */
    if (link->state != LINK_PROVING && link->state != LINK_LIVE)
        return;
    if (gap > timeout / 2) {
        /* This thread, not the link, was stalled (SIGSTOP, starvation, a long
         * pause): what Redis sent meanwhile waits in the socket. Re-prove the
         * link from now instead of throwing that away. */
        LOG_WARN("bus thread stalled for_ms=%" PRId64 ": proving the Redis link again before judging it", gap / 1000);
        link->echo_due_us = now + timeout;
        send_heartbeat(link, now);
        return;
    }
    if (now > link->echo_due_us) {
        if (gw_rconn_readable(link->sub) && now < link->echo_due_us + timeout)
            return; /* input is waiting, the echo likely in it: read it first */
        LOG_WARN("redis heartbeat missing for_ms=%" PRId64 " timeout_ms=%d", (now - link->echo_due_us + timeout) / 1000,
                 cfg->redis_heartbeat_timeout_ms);
        link_reset(link, "heartbeat timeout");
        return;
    }
    if (now - link->last_hb_sent_us >= (int64_t)cfg->redis_heartbeat_interval_ms * 1000)
        send_heartbeat(link, now);
}

/* ---- lifetime ---- */

struct gw_link *gw_link_new(const struct gw_config *cfg, struct event_base *base, struct gw_bus_stats *stats,
                            const struct gw_link_ops *ops, void *ctx)
{
    struct gw_link *link = gw_xcalloc(1, sizeof(*link));
    link->cfg = cfg;
    link->base = base;
    link->stats = stats;
    link->ops = ops;
    link->ctx = ctx;
    size_t hblen = strlen(cfg->node_id) + 32;
    link->hb_channel = gw_xmalloc(hblen);
    snprintf(link->hb_channel, hblen, "__wsgate:hb:%s", cfg->node_id);
    link->fn_version = gw_link_fn_version();
    link->fail = link_reset;
    link->fn_loaded = fn_loaded;
    link->cmd_timeout_ms = cfg->redis_heartbeat_timeout_ms;
    snprintf(link->history_size, sizeof link->history_size, "%d", cfg->history_size);
    snprintf(link->history_ttl, sizeof link->history_ttl, "%d", cfg->history_ttl_s);
    atomic_init(&link->ready, false);
    atomic_init(&link->echo_at_us, 0);
    if (cfg->redis.master_name)
        link->sentinel = gw_sentinel_new(cfg, base, stats, &sentinel_ops, link);
    return link;
}

void gw_link_start(struct gw_link *link)
{
    struct timeval tick = { 0, 50 * 1000 };

    link->tick_ev = event_new(link->base, -1, EV_PERSIST, on_tick, link);
    link->retry_ev = evtimer_new(link->base, on_retry, link);
    link->reset_ev = event_new(link->base, -1, 0, on_reset_event, link);
    /* Without these timers the link can neither prove nor repair itself. */
    if (!link->tick_ev || !link->retry_ev || !link->reset_ev || event_add(link->tick_ev, &tick) != 0) {
        LOG_ERR("libevent could not create the link's timers");
        abort();
    }
    link_open(link);
}

void gw_link_stop(struct gw_link *link)
{
    set_state(link, LINK_DOWN, "stopping");
    free_conns(link);
    if (link->sentinel)
        gw_sentinel_stop(link->sentinel);
    if (link->tick_ev)
        event_free(link->tick_ev);
    if (link->retry_ev)
        event_free(link->retry_ev);
    if (link->reset_ev)
        event_free(link->reset_ev);
    link->tick_ev = link->retry_ev = link->reset_ev = NULL;
}

void gw_link_free(struct gw_link *link)
{
    if (!link)
        return;
    SSL_CTX_free(link->tls_ctx);
    gw_sentinel_free(link->sentinel);
    free(link->hb_channel);
    free(link);
}
