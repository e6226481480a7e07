/* The bus thread's Redis Cluster link ("cluster link", issue 19): the slot map
 * from shards.c, and per master one command connection (FCALLs of the wsgate
 * Function library, loaded on every master, SPUBLISH of the heartbeat, and
 * any other command routed by a key's slot: gw_clink_call) and one sharded-subscriber connection (SSUBSCRIBE/SUNSUBSCRIBE of the keys
 * whose slot that master owns). Replicas get no connection: Redis 7.0 keeps
 * stale shard subscriptions on a re-pointed replica (redis#12558).
 *
 * It speaks to the bus exactly as link.h does, through the same
 * gw_link_ops, and offers the same calls (gw_clink_* for gw_link_*). It owns
 * no channel table. MOVED and ASK on a command are followed (ASKING on the
 * importing master), TRYAGAIN and CLUSTERDOWN retried after a pause.
 *
 * The whole link resets (on_reset, then on_open on a fresh map and on_live
 * once every master echoed) only while it was never live: a failure before
 * every master was proven once starts over. After that, everything is per
 * master or per slot, through gw_clink_ops, each call with a predicate that
 * tells the keys concerned:
 * - one master's connection or heartbeat fails: only its keys are lost; its
 *   connections are retried with backoff, and its keys subscribed again
 *   (on_keys_open) and repaired when it echoes again (on_keys_live);
 * - a new map (a failover, a migrated slot, a master added or removed): the
 *   keys of every slot whose owner changed are lost, then SSUBSCRIBEd on the
 *   new owner and told live once that master answered an SSUBSCRIBE queued
 *   after them (or, for a master new to the link, at its first echo);
 *   masters new to the map get their connections and the library, masters
 *   gone are closed (Redis itself drops a slot's shard subscriptions on the
 *   master that loses it and tells us with a sunsubscribe, which is then
 *   ignored); masters the diff does not touch go on without a pause;
 * - an unsolicited sunsubscribe from the master the map names, or a refused
 *   SSUBSCRIBE (MOVED): that slot's keys are lost, a refresh is asked
 *   (coalesced) and they are subscribed on the owner the next map names.
 * The bus's repair reads back from each stream what the lost keys missed.
 *
 * Bus thread only, except gw_clink_ready; the struct is opaque. */
#ifndef GW_CLINK_H
#define GW_CLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "link.h"
#include "metrics.h"

struct event_base;
struct gw_clink;

/* Does key (a Redis key, prefix included) belong to the master in question? */
typedef bool (*gw_bus_key_pred)(void *pctx, const char *key, size_t klen);

/* Per master or per slot set, beyond gw_link_ops (which speak of the whole
 * link): after the link was live once, a master's failure or a slot's move
 * concerns only its own channels. Each callback gets a predicate that tells
 * the keys concerned (that master's, or those of the slots that moved); bus
 * thread, inside connection or libevent callbacks. */
struct gw_clink_ops {
    /* That master's connections are open again, or those keys' slots have a
     * new owner: subscribe them (each on its owner). */
    void (*on_keys_open)(void *ctx, gw_bus_key_pred pred, void *pctx);
    /* That master is lost, or those keys' slots moved: they are not
     * subscribed any more, and what was in flight for them is forgotten. */
    void (*on_keys_lost)(void *ctx, gw_bus_key_pred pred, void *pctx);
    /* Those keys' subscriptions are proven in place (their master's echo, or
     * its answer after them): read back what they missed. */
    void (*on_keys_live)(void *ctx, gw_bus_key_pred pred, void *pctx);
};

/* Allocates a cluster link (not connected) for cfg->redis (cluster set).
 * cfg, base, stats and ops must outlive it; it writes the same stats as
 * gw_link. Never fails (aborts on OOM). Any thread, before the bus starts. */
struct gw_clink *gw_clink_new(const struct gw_config *cfg, struct event_base *base, struct gw_bus_stats *stats,
                              const struct gw_link_ops *ops, const struct gw_clink_ops *cops, void *ctx);
/* Starts discovery; the connections follow the first map. Bus thread. */
void gw_clink_start(struct gw_clink *cl);
/* As gw_link_stop: every pending command gets its callback with a failure
 * before this returns; on_reset is not called. Idempotent. Bus thread. */
void gw_clink_stop(struct gw_clink *cl);
/* Frees a stopped (or never started) link. NULL is a no-op. */
void gw_clink_free(struct gw_clink *cl);

/* True while the link went live once (every master proven) and at least one
 * master's heartbeat echo is fresh: this node can serve the channels of the
 * masters that are up; those of a master that is down get `unavailable`.
 * Any thread. */
bool gw_clink_ready(const struct gw_clink *cl);

/* As gw_link_subscribe/unsubscribe/subscribe_many, with SSUBSCRIBE on the
 * key's master (a batch is split by master). A key with '{' or '}' is
 * refused (-EINVAL): its hash tag would move it off its history keys' slot. */
int gw_clink_subscribe(struct gw_clink *cl, const char *key, size_t klen);
int gw_clink_unsubscribe(struct gw_clink *cl, const char *key, size_t klen);
int gw_clink_subscribe_many(struct gw_clink *cl, int n, const char *const *keys, const size_t *klens);
/* As gw_clink_subscribe_many for the node's own channels (the control
 * plane's), whose hash tag is chosen on purpose to put them in one slot
 * (e.g. "__wsgate:ctl:{wsgate}"): braces are allowed. Never for a client
 * channel name (that is what gw_clink_subscribe refuses). Bus thread. */
int gw_clink_subscribe_tagged(struct gw_clink *cl, int n, const char *const *keys, const size_t *klens);
/* Pauses or resumes reading every subscriber connection. Idempotent. */
void gw_clink_pause(struct gw_clink *cl, bool pause);

/* As gw_link_publish (FCALL wsgate_publish ... "shard": SPUBLISH),
 * gw_link_publish_plain (SPUBLISH), gw_link_read and gw_link_retire_epoch,
 * each sent to the key's master. */
int gw_clink_publish(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                     void *token);
int gw_clink_publish_plain(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                           void *token);
int gw_clink_read(struct gw_clink *cl, const char *key, size_t klen, bool latest, uint64_t since, int limit,
                  size_t max_bytes, void *token);
int gw_clink_retire_epoch(struct gw_clink *cl, const char *key, size_t klen, const char *epoch, size_t elen,
                          uint64_t below);

/* Any command (argc words, copied) on the command connection of the master
 * that owns route's hash slot (route: a key, rlen bytes; copied), with
 * MOVED/ASK/TRYAGAIN/CLUSTERDOWN followed as for the FCALLs above. The
 * contract of gw_link_call: cb may be NULL (fire and forget); otherwise it is
 * called exactly once with arg and the reply (borrowed for the call; an error
 * reply included), or NULL when the master's connection went down, the
 * deadline passed or the redirections ran out. Returns 0, or -ENOTCONN (the
 * link is not live, or route's master is down) or the connection's refusal
 * (-ENOBUFS): then cb is not called. Bus thread. */
int gw_clink_call(struct gw_clink *cl, const char *route, size_t rlen, int argc, const char *const *argv,
                  const size_t *lens, gw_link_reply_fn cb, void *arg);
/* What this node's link knows of master i (0 <= i, in the link's order of
 * the current map's masters), for the admin view: host (borrowed until the
 * next map or reset), port, the slots the current map gives it, its state
 * (static text: connecting, loading, proving, live, resetting, down) and the
 * index of its per-master figures in gw_bus_stats (-1: none; metrics.h says
 * how it is kept). False when there is no master i. Read-only. Bus thread. */
struct gw_clink_master {
    const char *host;
    int port;
    uint32_t slots;
    const char *state;
    int stat;
};
bool gw_clink_master(const struct gw_clink *cl, size_t i, struct gw_clink_master *out);
/* As gw_link_command (the answer is gw_link_ops.on_reply with token, exactly
 * once after a 0), sent as gw_clink_call sends. Bus thread. */
int gw_clink_command(struct gw_clink *cl, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens, void *token);
/* As gw_link_publish_counted with SPUBLISH on key's master: on_counted says
 * how many subscribers of that master received it (the wsgate nodes, which
 * subscribe on masters only). key may carry a hash tag (the control plane's
 * channels). Returns as gw_clink_call. Bus thread. */
int gw_clink_publish_counted(struct gw_clink *cl, const char *key, size_t klen, const char *payload, size_t len,
                             void *token);

#endif
