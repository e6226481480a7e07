/* The cluster bus: one thread running a libevent loop, the Redis link on it
 * (link.h: a subscriber and a publisher connection, heartbeat, reconnect) and
 * the node-wide channel table: which workers want which channel, and whether
 * Redis has confirmed the subscription.
 *
 * Workers talk to it only through gw_bus_post_*() (any thread); it answers
 * through the post callback main hands it (gw_bus_ops), never by naming the
 * worker module. No pointers to sessions cross: publish results carry the
 * session id.
 *
 * Standalone mode (no Redis URL): the same thread and the same messages, but
 * a publish is delivered in-process and every subscription is live at once. */
#ifndef GW_BUS_H
#define GW_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "metrics.h"
#include "presence.h"
#include "wmail.h"

struct gw_bus;

/* How the bus reaches the workers; handed in by main. */
struct gw_bus_ops {
    /* Moves m (ownership passes to the callee) into the inbox of worker
     * `worker` (0 <= worker < nworkers). Called on the bus thread only. */
    void (*post)(void *ctx, int worker, struct gw_wmail *m);
    /* Bytes waiting in that worker's inbox (any thread). Past
     * --max-inbox-bytes the bus stops reading Redis until every worker is
     * back under half of it. */
    size_t (*inbox_bytes)(void *ctx, int worker);
    /* This node's roster entry (roster.h): malloc'd JSON object. Bus thread. */
    char *(*describe)(void *ctx, size_t *len);
};

/* Creates the bus (not started) for nworkers workers (at most 64). cfg, ops
 * and ctx must outlive the bus. Never fails (aborts on OOM or when libevent
 * cannot create its loop). Main thread. */
struct gw_bus *gw_bus_new(const struct gw_config *cfg, int nworkers, const struct gw_bus_ops *ops, void *ctx);
/* Starts the thread. Returns 0 or -errno (nothing started). Main thread. */
int gw_bus_start(struct gw_bus *bus);
/* Stops the thread (pending publishes fail with unavailable) and joins it.
 * No-op when not started. Main thread. */
void gw_bus_stop(struct gw_bus *bus);
/* Frees a stopped (or never started) bus and whatever its inbox still holds.
 * NULL is a no-op. Main thread. */
void gw_bus_free(struct gw_bus *bus);

/* True while publishes and new subscriptions can succeed: both Redis
 * connections are up, every wanted channel has been re-subscribed, and the
 * heartbeat echo is fresh. Always true in standalone mode. Any thread. */
bool gw_bus_ready(const struct gw_bus *bus);

/* The last cluster roster, {"nodes":[...]} (roster.h), malloc'd (caller
 * frees). Any thread. */
char *gw_bus_cluster(struct gw_bus *bus, size_t *len);

/* The bus's counters, owned by the bus and valid until gw_bus_free; only the
 * bus thread writes them, any thread may read them. */
const struct gw_bus_stats *gw_bus_stats(const struct gw_bus *bus);

/* Worker `worker` wants / no longer wants channel name (client-facing name,
 * without prefix). Each worker posts these only on its own 0->1 and 1->0
 * transitions. Any thread; copies name; never fails (the answer, a
 * GW_WMAIL_LIVE carrying gen, the worker's tag of this incarnation of the
 * channel, comes through ops->post once Redis confirms; after a link loss
 * every worker gets GW_WMAIL_LINK_DOWN, then a LIVE again per channel). */
void gw_bus_post_subscribe(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t gen);
void gw_bus_post_unsubscribe(struct gw_bus *bus, int worker, const char *name, size_t len);

/* Publishes payload on prefix+name with history (FCALL wsgate_publish;
 * standalone: delivered in-process, without history). Takes ownership of
 * payload (malloc'd). The result always comes back exactly once as a
 * GW_WMAIL_PUBLISH_RESULT to the worker via ops->post, carrying
 * session_id/has_id/id and the message's position. Any thread; copies name;
 * returns false, payload still the caller's and nothing posted, when the
 * bus inbox already holds --max-inbox-bytes of publishes; otherwise true and
 * failures come back as ok = false. */
bool gw_bus_post_publish(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                         const char *name, size_t len, char *payload, size_t payload_len);

/* As gw_bus_post_publish for an HTTP publish with an idempotency key
 * (copied): within --publish-idempotency-window a second publish with the
 * same key, on any node, publishes nothing and gets the first one's result
 * (its position), or ok = false with busy = true while the first is still
 * on its way. Any thread. */
bool gw_bus_post_publish_once(struct gw_bus *bus, int worker, uint64_t session_id, const char *name, size_t len,
                              char *payload, size_t payload_len, const char *key, size_t klen);

/* A client's recovery on channel name, once its subscription is live: since
 * (copied) is the position it has, NULL when it only asks for the channel's
 * position. The answer comes back as one or more GW_WMAIL_RECOVERY pages to
 * the worker (the first carries the ack, the last ends the replay), tagged
 * session_id and seq. Any thread; copies name; never fails here (over
 * --max-recoveries, or when the stream cannot be read, the first page is
 * also the last and says recovered = 0). Each call answers one page: target
 * 0 asks for the first; a later page is asked with since = the last offset
 * replayed and target = the offset the first page's ack gave. */
void gw_bus_post_recover(struct gw_bus *bus, int worker, uint64_t session_id, uint32_t seq, const char *name,
                         size_t len, const struct gw_position *since, uint64_t target);

/* A history request: the stored messages of name after since (NULL: the
 * latest), at most limit. The reply frame comes back as one
 * GW_WMAIL_HISTORY_RESULT (frame NULL: unavailable). Any thread. */
void gw_bus_post_history(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                         const char *name, size_t len, const struct gw_position *since, int limit);

/* Server API (bus_ctl.c): closes every connection of user d->user on every
 * node with d->code and d->reason (copied). The answer comes back once as a
 * GW_WMAIL_CTL_RESULT to worker, tagged api_id: ok with the connections
 * closed by the nodes that answered within the timeout, how many nodes the
 * command reached and how many answered; !ok when Redis did not take the
 * command. Any thread; never fails here. */
struct gw_ctl_disconnect;
void gw_bus_post_disconnect(struct gw_bus *bus, int worker, uint64_t api_id, const struct gw_ctl_disconnect *d);
/* Server API (bus_ctl.c): revokes (or with lift, lifts the revocation of)
 * user's tokens issued up to now, kept keep seconds: stored in Redis, then
 * announced on the control channel to every node's copy. The answer comes
 * back once as a GW_WMAIL_CTL_RESULT to worker, tagged api_id: ok with the
 * record's times and the nodes the announcement reached, or !ok when Redis
 * did not take it. Any thread; copies user. */
void gw_bus_post_revoke(struct gw_bus *bus, int worker, uint64_t api_id, const char *user, size_t len, int64_t keep,
                        bool lift);
/* True when this node's copy of the revocations refuses a token of sub
 * (NULL: never) issued at iat (has_iat false: without iat), now. One lock,
 * no Redis. Any thread. */
bool gw_bus_revoked(struct gw_bus *bus, const char *sub, bool has_iat, int64_t iat);

/* Server API (bus_ctl.c): as gw_bus_post_disconnect, but every connection
 * of u->user on every node leaves u->channel (a push says so) instead of
 * closing; the count is of connections taken out. Copies u. Any thread. */
struct gw_ctl_unsubscribe;
void gw_bus_post_unsubscribe_user(struct gw_bus *bus, int worker, uint64_t api_id,
                                  const struct gw_ctl_unsubscribe *u);

/* Worker `worker` closed `closed` sessions for the GW_WMAIL_DISCONNECT
 * tagged seq. Every worker answers each such mail exactly once. Any thread. */
void gw_bus_post_disconnected(struct gw_bus *bus, int worker, uint32_t seq, uint64_t closed);

/* A presence request of session session_id on channel name (client-facing;
 * presence.h): takes req (malloc'd). A join or leave is applied in order
 * with the session's others; a read answers exactly once as a
 * GW_WMAIL_PRESENCE_RESULT (frame NULL: unavailable). Any thread. */
void gw_bus_post_presence(struct gw_bus *bus, int worker, uint64_t session_id, const char *name, size_t len,
                          struct gw_presence_req *req);
/* This node's link to each Redis Cluster master, at most max, for its
 * roster entry (the admin view): each master's address, slots and link state
 * as the cluster link sees them, with its heartbeat round trip and
 * reconnects from the stats. Returns how many (0 outside cluster mode). The
 * hosts are borrowed until the link's next map or reset. Bus thread (the roster's
 * describe callback runs there). */
struct gw_roster_master;
int gw_bus_masters(struct gw_bus *bus, struct gw_roster_master *out, int max);

/* Server API (bus_chans.c): one page of the cluster's active channels for
 * q. The JSON answer comes back once as a GW_WMAIL_HISTORY_RESULT to worker
 * tagged session_id (frame NULL: no Redis, or Redis could not be read). Any thread. */
struct gw_ctl_channels;
void gw_bus_post_channels(struct gw_bus *bus, int worker, uint64_t session_id, const struct gw_ctl_channels *q);

/* The feed of local subscriber counts behind GET /api/channels: worker's
 * channels whose count changed (gw_hub_take_counts), as packed records
 * (gw_bus_counts_add). A channel's count 1 comes with its subscribe and its
 * 0 with its unsubscribe (posted first, in order). Takes buf. Any thread. */
struct gw_bus_counts {
    char *buf; /* malloc'd; records of {uint32_t count, uint16_t len, name[len]} */
    size_t len, cap;
};
void gw_bus_counts_add(struct gw_bus_counts *c, const char *name, size_t len, uint32_t count);
/* Posts c's records (if any) and leaves c empty. */
void gw_bus_post_counts(struct gw_bus *bus, int worker, struct gw_bus_counts *c);

/* Session session_id of worker is gone: it leaves presence everywhere, and its recoveries and history requests
 * still waiting for the link are dropped, not read (counted in
 * wsgate_client_reads_dropped_total); replies of reads already on the link
 * find no session and are freed by the worker. Any thread; never fails. */
void gw_bus_post_left(struct gw_bus *bus, int worker, uint64_t session_id);

#endif
