/* Private to gateway/bus.c and gateway/bus_read.c: the bus's struct and the
 * calls between the two files. bus.c owns the thread, the inbox, the channel
 * table and live delivery; bus_read.c the reads of channel history (client
 * recoveries, history requests, the node's own repairs). Nothing else
 * includes this. */
#ifndef GW_BUS_INT_H
#define GW_BUS_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "bus.h"
#include "ctl.h"
#include "dict.h"
#include "clink.h"
#include "link.h"
#include "mailbox.h"
#include "presence.h"
#include "readq.h"
#include "repair.h"
#include "revoke.h"
#include "roster.h"

struct bus_read; /* bus_read.c */
struct bus_ctl;  /* bus_ctl.c */
struct bus_chans; /* bus_chans.c */

/* A client publish waits at most this many at once on the publisher
 * connection; beyond that Redis is not keeping up and clients get
 * `unavailable` instead of growing the connection's buffers without bound. */
#define MAX_PUBLISHES_IN_FLIGHT 65536

/* One channel some worker wants. Reconciled against Redis by chan_reconcile(). */
struct bus_chan {
    uint64_t want_mask; /* workers with local subscribers */
    uint64_t live_mask; /* workers told the subscription is live */
    int outstanding;    /* SUBSCRIBE/UNSUBSCRIBE sent, reply not yet seen */
    bool redis_subscribed; /* as of the last reply on this link */
    struct gw_repair_chan rep; /* continuity of its messages with history */
    uint32_t gen[]; /* per worker: the gen of its last SUBSCRIBE, echoed in LIVE */
};

enum bus_cmd_type {
    CMD_SUBSCRIBE = 1, CMD_UNSUBSCRIBE, CMD_PUBLISH, CMD_RECOVER, CMD_HISTORY, CMD_LEFT,
    CMD_DISCONNECT,   /* server API: name is the user, id the close code, payload the reason */
    CMD_DISCONNECTED, /* a worker's count (target) for the disconnect seq */
    CMD_REVOKE,       /* server API: name is the user; keep, lift */
    CMD_PRESENCE,
    CMD_CHANNELS, /* server API: GET /api/channels (bus_chans.c) */
    CMD_COUNTS,   /* a worker's changed subscriber counts, packed in payload (bus_chans.c) */
};

struct bus_cmd {
    struct gw_mail link; /* first */
    enum bus_cmd_type type;
    int worker;
    uint32_t gen; /* SUBSCRIBE */
    uint64_t session_id;
    bool has_id;
    int64_t id;
    char *payload; /* PUBLISH: owned */
    size_t payload_len;
    uint32_t seq; /* RECOVER; DISCONNECTED: the apply it answers */
    uint64_t target; /* RECOVER: 0 for the first page; DISCONNECTED: sessions closed */
    bool has_since; /* RECOVER, HISTORY */
    struct gw_position since;
    int limit; /* HISTORY */
    int64_t keep; /* REVOKE: seconds the record is kept */
    bool lift;    /* REVOKE: lift the user's revocation instead */
    struct gw_ctl_unsubscribe *unsub; /* DISCONNECT: owned; set, an unsubscribe instead */
    char *idem_key; /* PUBLISH: owned idempotency key, or NULL (bus_idem.c) */
    size_t idem_len;
    struct gw_presence_req *pres; /* PRESENCE: owned */
    struct gw_ctl_channels *chq;  /* CHANNELS: owned */
    size_t name_len;
    char name[];
};

/* Token of one in-flight PUBLISH, handed back by link_on_published. */
struct idem_wait; /* bus_idem.c */
struct pub_wait {
    size_t bytes;
    int worker;
    uint64_t session_id;
    bool has_id;
    int64_t id;
    struct idem_wait *idem; /* an idempotent publish's, or NULL */
};

/* The first int of a token handed to gw_link_command by bus_idem.c; the
 * control plane's tokens (bus_ctl.c, bus_revoke.c) start with their kind
 * (below this). bus.c's link_on_reply dispatches on it. */
#define BUS_TOKEN_IDEM 100
/* bus_chans.c's tokens: an index write's (no answer needed), a read's. */
#define BUS_TOKEN_CHANS_WRITE 101
#define BUS_TOKEN_CHANS_READ 102

struct gw_bus {
    /* Read-only after gw_bus_new. */
    const struct gw_config *cfg;
    const struct gw_bus_ops *ops;
    void *ctx;
    int nworkers;
    bool standalone;
    size_t prefix_len; /* strlen(cfg->channel_prefix), once: every message needs it */
    struct gw_link *link; /* single-Redis mode only, else NULL */
    struct gw_clink *clink; /* Redis Cluster mode only (redis+cluster://), else NULL */

    /* Any thread. */
    struct gw_mailbox inbox;
    atomic_size_t inbox_bytes; /* payloads of the publishes waiting in it */
    atomic_bool ready; /* standalone mode only; otherwise gw_link_ready() */
    atomic_bool stop;
    struct gw_revoke revoked; /* thread-safe itself: the bus writes, workers read */
    struct gw_bus_stats stats; /* written by the bus thread only */

    /* Created in gw_bus_new; used by the bus thread, and by any thread only
     * through event_active() (libevent is set up for pthreads). */
    struct event_base *base;
    struct event *wake_ev;

    /* Bus thread only. */
    pthread_t thread;
    bool started;
    struct gw_dict chans; /* client channel name -> struct bus_chan* */
    int pub_in_flight;
    size_t pub_bytes_in_flight; /* at most --max-inbox-bytes */
    /* Backpressure: a worker's inbox passed --max-inbox-bytes. */
    bool paused; /* the subscriber is not being read */
    int64_t paused_since_us;
    struct event *bp_ev; /* while paused: checks the inboxes */
    struct gw_repair repair;
    struct gw_roster roster; /* the admin view's cluster list */
    struct gw_presence presence; /* this node's presence members (presence.h) */
    /* Client reads (bus_read.c): at most READS_IN_FLIGHT on the link, the
     * rest wait, served one per client per turn (readq.h); both together at
     * most --max-recoveries. */
    int reads_in_flight;
    struct gw_readq waiting;
    struct bus_ctl *ctl; /* the control plane (bus_ctl.c) */
    struct gw_dict idem_local; /* standalone: idempotency key -> its end (bus_idem.c) */
    struct bus_chans *chans_idx; /* the channel index's counts and writes (bus_chans.c) */
};

/* Where the bus calls its Redis link: link.h in single-Redis mode, clink.h
 * in cluster mode (the same contracts). Only in a mode with Redis. */
static inline bool bus_has_redis(const struct gw_bus *bus)
{
    return bus->link || bus->clink;
}
static inline int bus_subscribe(struct gw_bus *bus, const char *key, size_t klen)
{
    return bus->clink ? gw_clink_subscribe(bus->clink, key, klen) : gw_link_subscribe(bus->link, key, klen);
}
static inline int bus_unsubscribe(struct gw_bus *bus, const char *key, size_t klen)
{
    return bus->clink ? gw_clink_unsubscribe(bus->clink, key, klen) : gw_link_unsubscribe(bus->link, key, klen);
}
static inline int bus_subscribe_many(struct gw_bus *bus, int n, const char *const *keys, const size_t *klens)
{
    return bus->clink ? gw_clink_subscribe_many(bus->clink, n, keys, klens)
                      : gw_link_subscribe_many(bus->link, n, keys, klens);
}
static inline int bus_publish(struct gw_bus *bus, const char *key, size_t klen, const char *payload, size_t len,
                              void *pw)
{
    return bus->clink ? gw_clink_publish(bus->clink, key, klen, payload, len, pw)
                      : gw_link_publish(bus->link, key, klen, payload, len, pw);
}
static inline int bus_publish_plain(struct gw_bus *bus, const char *key, size_t klen, const char *payload,
                                    size_t len, void *pw)
{
    return bus->clink ? gw_clink_publish_plain(bus->clink, key, klen, payload, len, pw)
                      : gw_link_publish_plain(bus->link, key, klen, payload, len, pw);
}
/* Any command (a revocation's HSET, an idempotency key's SET, ...) whose
 * answer is link_ops.on_reply with token, exactly once after a 0. route is
 * the key whose hash slot picks the master in cluster mode (its master must
 * be live, else -ENOTCONN); the single-Redis link ignores it. */
static inline int bus_command(struct gw_bus *bus, const char *route, size_t rlen, int argc, const char *const *argv,
                              const size_t *lens, void *token)
{
    if (bus->clink)
        return gw_clink_command(bus->clink, route, rlen, argc, argv, lens, token);
    return bus->link ? gw_link_command(bus->link, argc, argv, lens, token) : -ENOTCONN;
}
/* The same with its own callback (gw_link_call's contract: cb may be NULL,
 * else called exactly once with arg after a 0, reply NULL on failure). */
static inline int bus_call(struct gw_bus *bus, const char *route, size_t rlen, int argc, const char *const *argv,
                           const size_t *lens, gw_link_reply_fn cb, void *arg)
{
    if (bus->clink)
        return gw_clink_call(bus->clink, route, rlen, argc, argv, lens, cb, arg);
    return bus->link ? gw_link_call(bus->link, argc, argv, lens, cb, arg) : -ENOTCONN;
}
/* A publish on a control channel whose answer (link_ops.on_counted) counts
 * the receivers: PUBLISH, or in cluster mode SPUBLISH on key's master (key's
 * hash tag picks it). */
static inline int bus_publish_counted(struct gw_bus *bus, const char *key, size_t klen, const char *payload,
                                      size_t len, void *token)
{
    if (bus->clink)
        return gw_clink_publish_counted(bus->clink, key, klen, payload, len, token);
    return bus->link ? gw_link_publish_counted(bus->link, key, klen, payload, len, token) : -ENOTCONN;
}
/* Subscribes the node's own channels (the control plane's; in cluster mode
 * hash-tagged on purpose, so braces are allowed: never a client channel). */
static inline int bus_subscribe_internal(struct gw_bus *bus, int n, const char *const *keys, const size_t *klens)
{
    if (bus->clink)
        return gw_clink_subscribe_tagged(bus->clink, n, keys, klens);
    return bus->link ? gw_link_subscribe_many(bus->link, n, keys, klens) : -ENOTCONN;
}
static inline void bus_pause(struct gw_bus *bus, bool pause)
{
    if (bus->clink)
        gw_clink_pause(bus->clink, pause);
    else
        gw_link_pause(bus->link, pause);
}
static inline int bus_read(struct gw_bus *bus, const char *key, size_t klen, bool latest, uint64_t since, int limit,
                           size_t max_bytes, void *token)
{
    return bus->clink ? gw_clink_read(bus->clink, key, klen, latest, since, limit, max_bytes, token)
                      : gw_link_read(bus->link, key, klen, latest, since, limit, max_bytes, token);
}
static inline int bus_retire_epoch(struct gw_bus *bus, const char *key, size_t klen, const char *epoch, size_t elen,
                                   uint64_t below)
{
    return bus->clink ? gw_clink_retire_epoch(bus->clink, key, klen, epoch, elen, below)
                      : gw_link_retire_epoch(bus->link, key, klen, epoch, elen, below);
}

/* bus.c */
/* Brings Redis and the workers in line with the channel's want_mask.
 * Returns true when the channel was deleted. */
bool gw_bus_chan_reconcile(struct gw_bus *bus, const char *name, size_t len, struct bus_chan *ch);

/* Frees a channel record taken out of the table (NULL: nothing). */
void gw_bus_chan_free(struct bus_chan *ch);
/* bus.c: a new command for the inbox (name copied), and its post. */
struct bus_cmd *gw_bus_cmd_new(enum bus_cmd_type type, int worker, const char *name, size_t len);
void gw_bus_cmd_post(struct gw_bus *bus, struct bus_cmd *cmd);
/* bus.c: what the bus tells the cluster link to do per master (clink.h). */
extern const struct gw_clink_ops gw_bus_clink_ops;

/* bus_chans.c: the cluster-wide channel index (GET /api/channels). Its
 * state is made and freed with the bus (main thread); the 1 s write timer
 * starts and stops with the bus loop; a read answers once as a
 * GW_WMAIL_HISTORY_RESULT tagged with the API id (frame NULL: unavailable). */
struct bus_chans *gw_bus_chans_new(struct gw_bus *bus);
void gw_bus_chans_free(struct bus_chans *x);
void gw_bus_chans_start(struct gw_bus *bus);
void gw_bus_chans_stop(struct gw_bus *bus);
/* worker's local subscriber count of name is now n (subscribe: 1, unsubscribe: 0). */
void gw_bus_chans_count(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t n);
/* The link is live again (link_on_live), or on a cluster the master of the
 * keys pred selects (on_keys_live): the node's counts are rewritten whole at
 * the next write, when pred selects the {wsgate} slot. Bus thread. */
void gw_bus_chans_relive(struct gw_bus *bus);
void gw_bus_chans_keys_live(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx);
/* CMD_COUNTS: a worker's changed counts (gw_bus_post_counts). */
void gw_bus_cmd_counts(struct gw_bus *bus, const struct bus_cmd *cmd);
void gw_bus_cmd_channels(struct gw_bus *bus, const struct bus_cmd *cmd);
/* A token whose kind is BUS_TOKEN_CHANS_WRITE or _READ (frees a read's). */
void gw_bus_chans_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply);

/* bus_chan.c */
/* Subscribes every wanted channel (pred NULL: a fresh link) or those whose
 * key pred accepts (a master that came back), in --resubscribe-batch batches. */
void gw_bus_resubscribe(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx);
/* One log line per power of two of a counter, not one per message. */
bool gw_bus_log_this(const gw_stat *counter);
/* The client name inside a Redis key, or NULL when key lacks the prefix. */
const char *gw_bus_unprefixed(const struct gw_bus *bus, const char *key, size_t klen, size_t *len);
/* prefix+name into out (room for 256 bytes), NUL-terminated; returns its length. */
size_t gw_bus_prefixed(const struct gw_bus *bus, const char *name, size_t len, char *out);
/* The wanted channel name, or NULL. */
struct bus_chan *gw_bus_chan(struct gw_bus *bus, const char *name, size_t len);
/* Hands frame (ownership passes) to every worker that wants name. */
void gw_bus_fanout(struct gw_bus *bus, const char *name, size_t len, struct gw_frame *frame);
/* The same in mail of another type (GW_WMAIL_PRESENCE_EVENT). */
void gw_bus_fanout_as(struct gw_bus *bus, enum gw_wmail_type type, const char *name, size_t len,
                      struct gw_frame *frame);
/* Pauses or resumes Redis reads by the workers' inbox bytes (called by a
 * fan-out that took an inbox past the bound); the timer re-checks while paused. */
void gw_bus_backpressure_check(struct gw_bus *bus);
void gw_bus_on_backpressure_timer(evutil_socket_t fd, short what, void *arg);
/* Encodes the message once (at: its place in the channel's history, or
 * NULL) and fans it out; a frame no queue could hold is dropped and counted. */
void gw_bus_deliver(struct gw_bus *bus, const char *name, size_t len, const struct gw_position *at,
                    const char *payload, size_t payload_len);
/* True (and counted) when a payload must not reach clients: over
 * --max-message-bytes. */
bool gw_bus_too_large(struct gw_bus *bus, const char *name, size_t payload_len);

struct bus_ctl_hooks; /* bus_ctl_int.h */
/* bus_ctl.c: the control plane. hooks (static, kept) reach the revocations
 * above it. */
struct bus_ctl *gw_bus_ctl_new(struct gw_bus *bus, const struct bus_ctl_hooks *hooks);
/* link_ops.on_open: subscribes the control channel and this node's reply channel. */
void gw_bus_ctl_open(struct gw_bus *bus);
/* link_ops.on_message for the control keys: true when key was one (handled). */
bool gw_bus_ctl_message(struct gw_bus *bus, const char *key, size_t klen, const char *payload, size_t len);
/* link_ops.on_counted */
void gw_bus_ctl_on_counted(void *ctx, void *token, long long receivers);
void gw_bus_cmd_disconnect(struct gw_bus *bus, const struct bus_cmd *cmd);
void gw_bus_cmd_disconnected(struct gw_bus *bus, const struct bus_cmd *cmd);
void gw_bus_cmd_revoke(struct gw_bus *bus, const struct bus_cmd *cmd);
/* link_ops.on_reply for the control plane's tokens that bus_revoke.c left
 * (TOK_RECENT, TOK_PRUNE); frees token. */
void gw_bus_ctl_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply);
/* link_ops.on_live: loads the revocations Redis holds and the recent commands. */
void gw_bus_ctl_live(struct gw_bus *bus);
/* Cluster mode, gw_clink_ops.on_keys_open / on_keys_live of one master: when
 * it is the control plane's ({wsgate}) master, the control channels are
 * subscribed again / the revocations and recent commands read back. */
void gw_bus_ctl_keys_open(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx);
void gw_bus_ctl_keys_live(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx);
/* Answers every disconnect still waiting as failed (the bus is stopping). */
void gw_bus_ctl_stop(struct gw_bus *bus);
/* Frees the control plane; NULL-safe. Main thread, bus stopped. */
void gw_bus_ctl_free(struct gw_bus *bus);

/* bus_revoke.c: the revocations' bus side, above bus_ctl.c. */
/* What bus_ctl.c hands up (bus_ctl_int.h); bus.c gives it to gw_bus_ctl_new. */
extern const struct bus_ctl_hooks gw_bus_revoke_hooks;
/* link_ops.on_reply for a control-plane token: true (token freed) when it
 * was a revocation's (TOK_STORE, TOK_LOAD), else false and untouched. */
bool gw_bus_revoke_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply);

/* bus_idem.c: idempotent HTTP publishes. Takes cmd->payload (cmd->idem_key set). */
void gw_bus_idem_publish(struct gw_bus *bus, struct bus_cmd *cmd);
/* link_on_published for a pub_wait with idem: answers, stores the answer; frees pw. */
void gw_bus_idem_published(struct gw_bus *bus, struct pub_wait *pw, const struct gw_position *at);
/* gw_link_command's answer for a BUS_TOKEN_IDEM token. */
void gw_bus_idem_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply);
void gw_bus_idem_free(struct gw_bus *bus);

/* bus_read.c */
/* repair.h's ops for the bus: deliver and gap fan out, read reads the stream, retire ends an epoch. */
extern const struct gw_repair_ops gw_bus_repair_ops;
void gw_bus_cmd_recover(struct gw_bus *bus, const struct bus_cmd *cmd);
void gw_bus_cmd_history(struct gw_bus *bus, const struct bus_cmd *cmd);
/* The client left: its waiting reads are dropped (and counted). */
void gw_bus_cmd_left(struct gw_bus *bus, const struct bus_cmd *cmd);
/* link_ops.on_read */
void gw_bus_on_read(void *ctx, void *token, const struct gw_history_page *page);
/* Answers every waiting read as failed (the bus is stopping). */
void gw_bus_reads_stop(struct gw_bus *bus);

#endif
