/* Per-connection protocol handling: reassembly, limits and requests on the
 * way in, the bounded queue on the way out. Writing it to the socket is
 * session_tx.c. */
#define GW_LOG_MODULE "session"

#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "alloc.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "session_int.h"

#define TOKEN_UNIT 1000000LL
/* A history request is charged by what it reads, not as one message: one
 * message per this many bytes of reply (issue 15: requests at the message
 * rate kept Redis busy for every other client of the node). */
#define HISTORY_BYTES_PER_TOKEN 8192
#define SUB_LOG_MAX 65

struct gw_session *gw_session_new(const struct gw_session_host *host, uint64_t id, struct lws *wsi)
{
    const struct gw_config *cfg = host->cfg;
    struct gw_session *s = gw_xcalloc(1, sizeof(*s));
    int64_t now = gw_now_us();

    s->id = id;
    s->wsi = wsi;
    s->host = host;
    gw_hub_member_init(&s->member, s);
    gw_outq_init(&s->outq, cfg->queue_max_messages, cfg->queue_max_bytes);
    s->tokens = (int64_t)cfg->client_burst * TOKEN_UNIT;
    gw_quota_init(&s->store, cfg->client_store_bytes,
                  (int64_t)(cfg->client_store_window_s ? cfg->client_store_window_s : cfg->history_ttl_s) * 1000000,
                  now);
    s->last_refill_us = now;
    s->last_rx_us = now;
    /* The first ping comes between half an interval and a whole one after
     * the connect, spread by id: a connect storm must not ping in one burst
     * every interval ever after. */
    int64_t ping_us = (int64_t)cfg->ping_interval_s * 1000000;
    s->last_ping_us = now - (int64_t)((id * 0x9E3779B97F4A7C15ULL) % (uint64_t)(ping_us / 2 + 1));
    if (!gw_access_anonymous_rights(host->access))
        s->auth_deadline_us = now + (int64_t)cfg->auth_timeout_s * 1000000;
    gw_registry_add(host->registry, &s->reg, id, s);
    LOG_DBG("open id=%llu", (unsigned long long)s->id);
    gw_session_auth_from_url(s);
    gw_session_tick(s, now);
    return s;
}

void gw_session_free(struct gw_session *s)
{
    const struct gw_session_host *h = s->host;

    /* Its reads still waiting for Redis would cost Redis for nobody. */
    gw_bus_post_left(h->node->bus, h->worker, s->id);
    gw_registry_remove(h->registry, &s->reg);
    gw_hub_leave_all(h->hub, &s->member);
    gw_stat_set(&h->stats->subscriptions, h->hub->nsubs);
    gw_session_drop_queued(s);
    free(s->rxbuf);
    gw_jwt_claims_free(s->claims);
    free(s->close_text);
    LOG_DBG("closed id=%llu", (unsigned long long)s->id);
    free(s);
}

void gw_session_saw_traffic(struct gw_session *s)
{
    s->last_rx_us = gw_now_us();
}

/* What a stored publish is charged against --client-store-bytes, from what
 * Redis was measured to hold (wsgate.lua, Redis 7.0, MEMORY USAGE of the
 * keys): per stream entry 37 B for a 1-byte payload, 1154 B for 1000, 10748
 * B for 10000, 66044 B for 60000 (the allocator's size classes add up to a
 * quarter); the two keys of a channel's first publish 4872 B with a payload
 * up to 1000 B. So: payload + payload/4 + 64 per message, and every stored
 * publish pays 8192 for a new channel up front, given back by the ack when
 * the message was not the channel's first (offset > 1). A publish Redis
 * refused keeps its charge: the node cannot tell a refusal from a reply lost
 * with the link. */
#define STORE_ENTRY_BYTES 64
#define STORE_CHANNEL_BYTES 8192

void gw_session_publish_result(struct gw_session *s, bool ok, bool has_id, int64_t id, const struct gw_position *at)
{
    if (ok && at && at->offset > 1)
        gw_quota_give(&s->store, STORE_CHANNEL_BYTES);
    if (ok && has_id)
        gw_session_send_own(s, gw_codec_ack_publish(id, at));
    else if (!ok)
        gw_session_send_error(s, GW_ERR_UNAVAILABLE, has_id, id, "Redis is unavailable; the message was not published");
}

/* What a history request is charged before it is read: its reply's byte
 * budget, in messages, at most the whole burst (so it can always be paid). */
static int64_t history_upfront(const struct gw_config *cfg)
{
    int64_t n = (int64_t)((gw_config_history_reply_bytes(cfg) + HISTORY_BYTES_PER_TOKEN - 1) / HISTORY_BYTES_PER_TOKEN);
    return n < 1 ? 1 : n > cfg->client_burst ? cfg->client_burst : n;
}

void gw_session_history_result(struct gw_session *s, bool has_id, int64_t id, struct gw_frame *frame)
{
    /* The request paid its budget up front; now it pays what it read. */
    int64_t cost = frame ? (int64_t)((frame->len + HISTORY_BYTES_PER_TOKEN - 1) / HISTORY_BYTES_PER_TOKEN) : 1;
    int64_t max = (int64_t)s->host->cfg->client_burst * TOKEN_UNIT;

    s->tokens += (history_upfront(s->host->cfg) - (cost < 1 ? 1 : cost)) * TOKEN_UNIT;
    if (s->tokens > max)
        s->tokens = max;
    if (frame)
        gw_session_enqueue(s, frame);
    else
        gw_session_send_error(s, GW_ERR_UNAVAILABLE, has_id, id, "Redis is unavailable; history could not be read");
}

/* ---- what the hub and the recoveries call (client.h) ---- */

static void client_deliver(void *client, struct gw_frame *frame)
{
    gw_session_enqueue(client, frame);
}

static void client_ack(void *client, int64_t id)
{
    gw_session_send_ack(client, true, id);
}

/* A replay asks before each page, so a recovery is paced by the client
 * reading it; a closing session never has room. */
static bool client_want_room(void *client)
{
    struct gw_session *s = client;
    if (s->state != GW_SESSION_OPEN)
        return false;
    if (gw_session_has_room(s))
        return true;
    s->room_wanted = true;
    return false;
}

static void client_overflow(void *client)
{
    struct gw_session *s = client;
    if (s->state == GW_SESSION_OPEN)
        gw_session_shed(s, GW_SHED_SLOW_CONSUMER, 4008, "slow consumer");
}

static void client_ask_page(void *client, uint32_t seq, const char *name, size_t len, const struct gw_position *since,
                            uint64_t target)
{
    struct gw_session *s = client;
    gw_bus_post_recover(s->host->node->bus, s->host->worker, s->id, seq, name, len, since, target);
}

const struct gw_client_ops gw_session_client_ops = {
    .deliver = client_deliver,
    .ack = client_ack,
    .want_room = client_want_room,
    .overflow = client_overflow,
    .ask_page = client_ask_page,
    .live = gw_session_presence_live,
};

/* Refills the bucket and takes one token; false when the client is over its rate. */
static bool rate_allow(struct gw_session *s)
{
    const struct gw_config *cfg = s->host->cfg;
    int64_t now = gw_now_us();
    int64_t max = (int64_t)cfg->client_burst * TOKEN_UNIT;

    s->tokens += (now - s->last_refill_us) * cfg->client_rate;
    if (s->tokens > max)
        s->tokens = max;
    s->last_refill_us = now;
    if (s->tokens < TOKEN_UNIT)
        return false;
    s->tokens -= TOKEN_UNIT;
    return true;
}

/* ---- access ---- */

/* A refused token ends the connection: retrying on the same connection
 * cannot help a client holding a bad token, and closing makes each guess
 * cost a handshake. The error, queued first, leaves before the close. */
static void handle_subscribe(struct gw_session *s, const struct gw_request *req)
{
    const struct gw_session_host *h = s->host;
    bool available = gw_node_ready(h->node);
    struct gw_recovery_req rec = { req->has_id, req->id, req->has_since, req->since };
    if (req->presence_events && !gw_config_keeps_presence(h->cfg, req->channel)) {
        gw_session_send_error(s, GW_ERR_BAD_REQUEST, req->has_id, req->id,
                              "this channel keeps no presence (--presence-channels); not subscribed");
        return;
    }
    int rc = gw_hub_subscribe(h->hub, &s->member, req->channel, req->channel_len, req->has_id, req->id,
                              h->cfg->max_subscriptions, available, req->recover ? &rec : NULL);
    if (rc >= 0) /* the latest subscribe decides */
        gw_hub_want_presence(h->hub, &s->member, req->channel, req->channel_len, req->presence_events);
    if (rc == -ENOSPC || rc == -E2BIG) {
        gw_session_send_error(s, GW_ERR_TOO_MANY_SUBSCRIPTIONS, req->has_id, req->id,
                   rc == -E2BIG ? "too many repeats of a subscribe still waiting for this channel"
                                : "subscription limit reached (--max-subscriptions)");
    } else if (rc == -EAGAIN) {
        gw_session_send_error(s, GW_ERR_UNAVAILABLE, req->has_id, req->id,
                   gw_node_draining(h->node) ? "node is draining; reconnect to another node"
                                             : "Redis is unavailable; try again shortly");
    } else {
        gw_stat_set(&h->stats->subscriptions, h->hub->nsubs);
        if (rc == GW_HUB_SUB_ACK_NOW)
            gw_session_send_ack(s, req->has_id, req->id);
    }
}

static void handle_request(struct gw_session *s, struct gw_request *req)
{
    const struct gw_session_host *h = s->host;

    if (!gw_session_permitted(s, req))
        return;
    switch (req->type) {
    case GW_REQ_AUTH:
        gw_session_authenticate(s, req->token, req->token_len, req->has_id, req->id);
        /* The tick planned may be later than the new token's expiry. */
        gw_session_tick(s, gw_now_us());
        break;
    case GW_REQ_PING:
        gw_session_send_own(s, gw_codec_pong(req->has_id, req->id));
        break;
    case GW_REQ_SUBSCRIBE:
        handle_subscribe(s, req);
        break;
    case GW_REQ_HISTORY:
        /* One message is paid; the rest of its budget must be in hand too. */
        if (s->tokens < (history_upfront(h->cfg) - 1) * TOKEN_UNIT) {
            gw_session_send_error(s, GW_ERR_RATE_LIMITED, req->has_id, req->id,
                       "history is charged one message per 8 KiB it may read; slow down (--client-rate)");
            break;
        }
        s->tokens -= (history_upfront(h->cfg) - 1) * TOKEN_UNIT;
        if (!gw_node_ready(h->node))
            gw_session_history_result(s, req->has_id, req->id, NULL);
        else
            gw_bus_post_history(h->node->bus, h->worker, s->id, req->has_id, req->id, req->channel, req->channel_len,
                                req->has_since ? &req->since : NULL, req->limit);
        break;
    case GW_REQ_PRESENCE:
    case GW_REQ_PRESENCE_STATS:
        gw_session_presence_request(s, req);
        break;
    case GW_REQ_UNSUBSCRIBE:
        gw_hub_unsubscribe(h->hub, &s->member, req->channel, req->channel_len);
        gw_session_presence_unsubscribed(s, req->channel, req->channel_len);
        gw_stat_set(&h->stats->subscriptions, h->hub->nsubs);
        gw_session_send_ack(s, req->has_id, req->id);
        break;
    case GW_REQ_PUBLISH: {
        size_t charge = gw_config_keeps_history(h->cfg, req->channel)
                            ? req->data_len + req->data_len / 4 + STORE_ENTRY_BYTES + STORE_CHANNEL_BYTES
                            : 0;
        if (charge && !gw_quota_take(&s->store, charge, gw_now_us())) {
            gw_session_send_error(s, GW_ERR_STORE_LIMITED, req->has_id, req->id,
                       "over this client's budget of stored history (--client-store-bytes); not published");
            break;
        }
        enum gw_err err = gw_node_publish(h->node, h->worker, s->id, req->has_id, req->id, req->channel,
                                          req->channel_len, req->data_json, req->data_len);
        if (err != GW_ERR_NONE)
            gw_quota_give(&s->store, charge); /* nothing reached Redis */
        if (err == GW_ERR_NONE)
            req->data_json = NULL; /* moved to the bus */
        else if (err == GW_ERR_UNAVAILABLE)
            gw_session_publish_result(s, false, req->has_id, req->id, NULL);
        else
            gw_session_send_error(s, err, req->has_id, req->id,
                       err == GW_ERR_FORBIDDEN ? "this channel is reserved for the nodes"
                                               : "\"data\" is over --max-message-bytes; not published");
        break;
    }
    }
}

/* Every frame pays first, garbage too; a refused one is parsed only for its id. */
static void handle_message(struct gw_session *s, const char *buf, size_t len)
{
    struct gw_request req;
    bool allowed = rate_allow(s);
    int rc = gw_codec_parse(buf, len, &req);

    if (!allowed)
        gw_session_send_error(s, GW_ERR_RATE_LIMITED, req.has_id, req.id, "too many messages; slow down (--client-rate)");
    else if (rc != 0)
        gw_session_send_error(s, req.err, req.has_id, req.id, req.errmsg);
    else
        handle_request(s, &req);
    gw_request_deinit(&req);
}

void gw_session_receive(struct gw_session *s, const void *in, size_t len)
{
    const struct gw_config *cfg = s->host->cfg;
    struct lws *wsi = s->wsi;
    bool final = lws_is_final_fragment(wsi);

    gw_session_saw_traffic(s);
    if (!s->rx_in_message) {
        s->rx_in_message = true;
        s->rx_binary = lws_frame_is_binary(wsi);
        s->rx_discard = false;
        s->rxlen = 0;
    }
    if (s->rx_binary || s->rx_discard)
        goto consumed;

    if (s->rxlen + len > cfg->max_frame_bytes) {
        s->rx_discard = true;
        free(s->rxbuf);
        s->rxbuf = NULL;
        s->rxlen = s->rxcap = 0;
        goto consumed;
    }
    if (final && s->rxlen == 0) {
        /* Whole message in one callback: parse from lws' buffer, no copy. */
        if (s->state == GW_SESSION_OPEN)
            handle_message(s, in, len);
        goto consumed;
    }
    if (s->rxlen + len > s->rxcap) {
        s->rxcap = s->rxlen + len > s->rxcap * 2 ? s->rxlen + len : s->rxcap * 2;
        s->rxbuf = gw_xrealloc(s->rxbuf, s->rxcap);
    }
    memcpy(s->rxbuf + s->rxlen, in, len);
    s->rxlen += len;
    if (final && s->state == GW_SESSION_OPEN)
        handle_message(s, s->rxbuf, s->rxlen);

consumed:
    if (!final)
        return;
    if (s->state == GW_SESSION_OPEN && (s->rx_binary || s->rx_discard)) {
        /* These pay like any other frame: a flood of them is throttled too. */
        if (!rate_allow(s))
            gw_session_send_error(s, GW_ERR_RATE_LIMITED, false, 0, "too many messages; slow down (--client-rate)");
        else if (s->rx_binary)
            gw_session_send_error(s, GW_ERR_BINARY_NOT_SUPPORTED, false, 0, "binary messages are not supported; send JSON text");
        else if (s->rx_discard)
            gw_session_send_error(s, GW_ERR_MESSAGE_TOO_LARGE, false, 0, "message exceeds --max-frame-bytes; discarded");
    }
    s->rx_in_message = false;
    /* Keep small buffers for the next fragmented message, free big ones. */
    if (s->rxcap > 4096) {
        free(s->rxbuf);
        s->rxbuf = NULL;
        s->rxcap = 0;
    }
    s->rxlen = 0;
}

/* The checks of gw_session_tick; returns when s next needs a tick, or 0 once
 * it is closing. */
static int64_t tick_due(struct gw_session *s, int64_t now_us)
{
    const struct gw_config *cfg = s->host->cfg;
    int64_t idle_us = (int64_t)cfg->idle_timeout_s * 1000000;
    int64_t ping_us = (int64_t)cfg->ping_interval_s * 1000000;

    if (s->state != GW_SESSION_OPEN)
        return 0;
    if (now_us - s->last_rx_us > idle_us) {
        gw_session_shed(s, GW_SHED_IDLE_TIMEOUT, 4001, "idle timeout");
        return 0;
    }
    if (s->auth_deadline_us && now_us >= s->auth_deadline_us) {
        gw_stat_add(&s->host->stats->auth_failures[GW_AUTH_FAIL_TIMEOUT], 1);
        LOG_INFO("auth timeout id=%llu", (unsigned long long)s->id);
        gw_session_close(s, 4004, "authentication timeout", false);
        return 0;
    }
    if (s->expires_us && now_us >= s->expires_us) {
        char sub[SUB_LOG_MAX];

        LOG_INFO("token expired id=%llu sub=\"%s\"", (unsigned long long)s->id,
                 gw_access_log_sub(s->claims->sub, sub, sizeof sub));
        gw_session_close(s, 4005, "token expired", false);
        return 0;
    }
    if (now_us - s->last_ping_us >= ping_us) {
        s->last_ping_us = now_us;
        s->ping_due = true;
        if (!s->write_requested)
            gw_registry_want_flush(s->host->registry, &s->reg);
    }
    int64_t idle_at = s->last_rx_us + idle_us + 1, ping_at = s->last_ping_us + ping_us;
    int64_t due = idle_at < ping_at ? idle_at : ping_at;
    if (s->auth_deadline_us && s->auth_deadline_us < due)
        due = s->auth_deadline_us;
    if (s->expires_us && s->expires_us < due)
        due = s->expires_us;
    return due;
}

void gw_session_tick(struct gw_session *s, int64_t now_us)
{
    int64_t due = tick_due(s, now_us);
    if (due)
        gw_registry_schedule(s->host->registry, &s->reg, due);
}
