/* The Redis link of the bus thread: two connections of our own (rconn.h) on
 * the bus's event_base, a subscriber (SUBSCRIBE/UNSUBSCRIBE only) and a publisher
 * (FCALLs of the wsgate Function library, which it loads, and the heartbeat),
 * with AUTH/SELECT, connect timeout, backoff with jitter, the heartbeat that
 * proves the link end to end, and reset + reconnect.
 *
 * It owns no channel table and knows no workers: it speaks Redis keys (the
 * prefix included) and reports back only through the gw_link_ops handed to
 * gw_link_new. Everything here runs on the bus thread, except gw_link_ready. */
#ifndef GW_LINK_H
#define GW_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "metrics.h"

struct event_base;
struct gw_link;
struct redisReply;

/* Called on the bus thread, from inside connection or libevent callbacks: they
 * may call gw_link_subscribe/unsubscribe/publish, never gw_link_stop/free. */
struct gw_link_ops {
    /* A fresh link: both connections opened (not yet connected), AUTH/SELECT
     * queued. Subscribe every wanted key now (gw_link_subscribe_many); when
     * this returns the link subscribes its heartbeat channel last, so the
     * first echo proves that every subscription sent here is in place. */
    void (*on_open)(void *ctx);
    /* A message on a subscribed key (not the heartbeat). key and payload
     * belong to the connection and are valid only during the call. */
    void (*on_message)(void *ctx, const char *key, size_t klen, const char *payload, size_t len);
    /* Redis confirmed SUBSCRIBE (subscribed) or UNSUBSCRIBE (!subscribed) of key. */
    void (*on_subscription)(void *ctx, const char *key, size_t klen, bool subscribed);
    /* Result of one gw_link_publish that returned 0: at is the message's
     * place in the channel's history, or NULL on an error reply or when the
     * link went down first. Exactly once per token. */
    void (*on_published)(void *ctx, void *token, const struct gw_position *at);
    /* Result of one gw_link_publish_counted that returned 0: how many
     * subscribers Redis delivered it to, or -1 on an error reply or when the
     * link went down first. Exactly once per token. */
    void (*on_counted)(void *ctx, void *token, long long receivers);
    /* Answer to one gw_link_command that returned 0: the reply (borrowed for
     * the call), or NULL when the link went down first. Exactly once per token. */
    void (*on_reply)(void *ctx, void *token, const struct redisReply *reply);
    /* Result of one gw_link_read that returned 0: page (borrowed for the
     * call) or NULL when the read failed. Exactly once per token. */
    void (*on_read)(void *ctx, void *token, const struct gw_history_page *page);
    /* The link went live: the function library is loaded and the first
     * heartbeat echo proved every subscription on_open sent. */
    void (*on_live)(void *ctx);
    /* Both connections are gone: nothing is subscribed any more and every
     * SUBSCRIBE/UNSUBSCRIBE in flight is forgotten (no reply will come).
     * Return true to reconnect after the backoff, false to stay down
     * (the bus is stopping). */
    bool (*on_reset)(void *ctx);
};

/* Allocates a link (not connected) for cfg->redis on base. cfg, base, stats
 * and ops must outlive the link; the link writes stats->redis_connected,
 * redis_reconnects and heartbeat_rtt_us (and, through sentinel.c with
 * redis+sentinel://, redis_master_switches). Never fails (aborts on OOM). Any
 * thread, before the bus thread starts. */
struct gw_link *gw_link_new(const struct gw_config *cfg, struct event_base *base, struct gw_bus_stats *stats,
                            const struct gw_link_ops *ops, void *ctx);

/* Creates the link's events and opens the first connections (on_open may be
 * called before this returns). Bus thread; a failure to connect is not an
 * error here: it schedules a reset and a retry like any later failure. */
void gw_link_start(struct gw_link *link);

/* Marks the link not ready and frees both connections (pending publishes get
 * on_published(ok = false) before this returns; on_reset is not called) and
 * the link's events. Bus thread, after its event loop stopped. Idempotent. */
void gw_link_stop(struct gw_link *link);

/* Frees a stopped (or never started) link. NULL is a no-op. */
void gw_link_free(struct gw_link *link);

/* True while the heartbeat echo is fresh (by the caller's clock, so a node
 * that was itself stalled is not ready until the echo came back) on a live
 * link and no reset is pending. Any thread. */
bool gw_link_ready(const struct gw_link *link);

/* SUBSCRIBE / UNSUBSCRIBE key on the subscriber connection; the answer comes
 * as on_subscription, unless the link resets first. Copies key. Returns 0, or
 * -ENOTCONN (link down or resetting) or the connection's refusal (-ENOBUFS
 * past its output bound): nothing was sent. Bus thread. */
int gw_link_subscribe(struct gw_link *link, const char *key, size_t klen);
int gw_link_unsubscribe(struct gw_link *link, const char *key, size_t klen);

/* One SUBSCRIBE of n keys (n >= 1); one on_subscription per key follows.
 * Copies the keys. Returns as gw_link_subscribe. Bus thread. */
int gw_link_subscribe_many(struct gw_link *link, int n, const char *const *keys, const size_t *klens);

/* Stops (pause) or resumes reading the subscriber connection: backpressure
 * from the bus. Redis keeps what it sends meanwhile in its output buffer
 * for this node. A paused link is judged by its heartbeat as any other.
 * Idempotent. Bus thread. */
void gw_link_pause(struct gw_link *link, bool pause);

/* Publishes payload on key with history (FCALL wsgate_publish, with
 * --history-size and --history-ttl) on the publisher connection while the
 * link is live. Copies key and payload; keeps token for the one on_published
 * that follows. Returns 0, or -ENOTCONN (link not live), -EIO (key too long)
 * or the connection's refusal (-ENOBUFS): then on_published is not called.
 * Bus thread. */
int gw_link_publish(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                    void *token);

/* Publishes payload on key without history (a plain PUBLISH: channels
 * outside --history-channels) on the publisher connection while the link is
 * live. The answer is on_published with at = {0, ""} (no place in a
 * history), or NULL on an error reply. Returns as gw_link_publish. Bus thread. */
int gw_link_publish_plain(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                          void *token);

/* A plain PUBLISH (the control plane's, not a client channel's) whose
 * answer, on_counted, says how many subscribers received it. Returns as
 * gw_link_publish. Bus thread. */
int gw_link_publish_counted(struct gw_link *link, const char *key, size_t klen, const char *payload, size_t len,
                            void *token);

/* Any other command (argc words, copied) on the publisher connection while
 * the link is live; its answer is on_reply. The control plane's (bus_ctl.c):
 * HSET/HDEL/HGETALL of the revocations. Returns as gw_link_publish. Bus thread. */
int gw_link_command(struct gw_link *link, int argc, const char *const *argv, const size_t *lens, void *token);

/* Reads key's stream (FCALL_RO wsgate_history): the entries after since, or
 * with latest the newest ones, at most limit entries and about max_bytes of
 * payload (at least one entry). Returns as gw_link_publish; the answer comes
 * as on_read. Bus thread. */
int gw_link_read(struct gw_link *link, const char *key, size_t klen, bool latest, uint64_t since, int limit,
                 size_t max_bytes, void *token);

/* Retires epoch of key's history (FCALL wsgate_retire_epoch) while Redis
 * still holds that epoch, and, when below is not 0, an offset under below:
 * the next publish then starts a new epoch. Fire and forget: the outcome is
 * logged, nothing is reported back. Copies key and epoch. Returns 0, or
 * -ENOTCONN (link not live), -EIO (key too long) or the connection's refusal
 * (-ENOBUFS). Bus thread. */
int gw_link_retire_epoch(struct gw_link *link, const char *key, size_t klen, const char *epoch, size_t elen,
                         uint64_t below);

/* The answer to one gw_link_call: reply is hiredis' (borrowed for the call),
 * NULL when the link went down or the deadline passed first. */
struct redisReply;
typedef void (*gw_link_reply_fn)(void *token, const struct redisReply *reply);

/* Sends one command (argv copied) on the publisher connection while the link
 * is live: the presence module's FCALLs and set updates (presence.h) and the
 * roster's commands (roster.c). cb may
 * be NULL (fire and forget); otherwise it is called exactly once with token.
 * An error reply that says the function library is gone resets the link.
 * Returns 0, or -ENOTCONN (link not live) or the connection's refusal
 * (-ENOBUFS): then cb is not called. Bus thread. */
int gw_link_call(struct gw_link *link, int argc, const char *const *argv, const size_t *lens, gw_link_reply_fn cb,
                 void *token);

#endif
