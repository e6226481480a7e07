/* One WebSocket client. Owned by its worker thread from ESTABLISHED to
 * CLOSED; other threads know it only by id. A session never frees itself from
 * inside its own callbacks: closing marks it CLOSING and lets lws call back
 * (WRITEABLE sends the close frame, CLOSED frees).
 *
 * A session knows nothing of the worker that holds it: everything it needs
 * from its host (config, the node, hub, registry, counters) comes through
 * gw_session_host. */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "client.h"
#include "config.h"
#include "envelope.h"
#include "frame.h"
#include "hub.h"
#include "metrics.h"
#include "node.h"
#include "registry.h"

struct gw_session; /* private to session*.c (session_int.h) */
struct lws;

/* Most frames and bytes one client gets from one writev when it has a
 * backlog; the bytes cap stays near a socket's send buffer. */
#define GW_WRITE_BATCH_FRAMES 512
#define GW_WRITE_BATCH_BYTES (256 * 1024)

/* What a session may use of the thread that holds it; outlives the session.
 * A session registers itself in registry, asks it for its ticks and, when
 * frames arrive while it had nothing queued and no write pending, for a
 * gw_session_flush at the end of the current lws callback or inbox batch
 * (so a batch of messages costs one writev per client and no writable
 * request). */
struct gw_session_host {
    const struct gw_config *cfg;
    const struct gw_access *access;
    const struct gw_node *node; /* readiness, the drain, the publish gate, the bus */
    int worker; /* the index the bus answers to (its gw_bus_post_* calls) */
    struct gw_hub *hub;
    struct gw_registry *registry;
    struct gw_worker_stats *stats;
};

/* Creates the session for a new WebSocket connection (call it from
 * LWS_CALLBACK_ESTABLISHED: it verifies a ?token= on the upgrade URL while
 * lws still holds the headers; a refused one leaves s closing with 4003).
 * host must outlive it; s registers itself in host->registry under id and
 * schedules its first tick. Never fails. */
struct gw_session *gw_session_new(const struct gw_session_host *host, uint64_t id, struct lws *wsi);

/* Leaves every channel and the registry, drops queued frames and frees s.
 * Called from LWS_CALLBACK_CLOSED only. */
void gw_session_free(struct gw_session *s);

/* One chunk of an incoming message (LWS_CALLBACK_RECEIVE). Errors are replied
 * to the client; the connection carries on. */
void gw_session_receive(struct gw_session *s, const void *in, size_t len);

/* gw_session_writeable() result: the close frame is set; the host must start
 * lws' close handshake (and must not touch s afterwards: CLOSED frees it). */
#define GW_SESSION_SEND_CLOSE 1

/* LWS_CALLBACK_SERVER_WRITEABLE. Returns 0 to carry on, -1 when lws must drop
 * the connection now (the socket failed), or GW_SESSION_SEND_CLOSE. */
int gw_session_writeable(struct gw_session *s);

/* The host's safe point after want_flush: writes what is queued straight to
 * the socket when lws holds nothing of its own for it, and asks for
 * WRITEABLE only when the kernel did not take everything. */
void gw_session_flush(struct gw_session *s);

/* Queues frame for s (takes its own reference). A full queue sheds s with
 * 4008. Ignored while s is closing. */
void gw_session_enqueue(struct gw_session *s, struct gw_frame *frame);

/* Starts closing s with code and reason (static string). flush: send the
 * queued frames before the close frame. Idempotent. */
void gw_session_close(struct gw_session *s, int code, const char *reason, bool flush);

/* Server API: when s is open and its token's sub is user[0..len), starts
 * closing it with code and reason (copied) at once, dropping what it has
 * queued (counted as shed, reason api_disconnect), and returns true. */
bool gw_session_disconnect_user(struct gw_session *s, const char *user, size_t len, int code, const char *reason);

/* Server API: when s is open, its token's sub is user[0..len) and it is
 * subscribed to channel[0..clen), takes it out of the channel, pushes
 * {"type":"unsubscribe","channel":...,"reason":reason} and returns true. */
bool gw_session_unsubscribe_user(struct gw_session *s, const char *user, size_t len, const char *channel,
                                 size_t clen, const char *reason);

/* Pings when due, closes when idle too long (4001), when a client without
 * rights did not authenticate in time (4004) and when its token expired
 * without a refresh (4005). Then schedules its next tick in the registry
 * (none once s is closing). Traffic only moves that time later, so the
 * host may tick lazily: call it for what gw_registry_next_due returns. */
void gw_session_tick(struct gw_session *s, int64_t now_us);

/* Result of a publish this session asked for; at: the message's place in
 * its channel's history (offset 0: published without history). */
void gw_session_publish_result(struct gw_session *s, bool ok, bool has_id, int64_t id, const struct gw_position *at);

/* Reply to a history request of s: frame (queued, the caller keeps its
 * reference), or NULL when the stream could not be read (unavailable). */
void gw_session_history_result(struct gw_session *s, bool has_id, int64_t id, struct gw_frame *frame);

/* Reply to a presence or presence_stats request of s (session_presence.c):
 * frame (queued, the caller keeps its reference), or NULL: unavailable. */
void gw_session_presence_result(struct gw_session *s, bool has_id, int64_t id, struct gw_frame *frame);

/* How the hub and the recoveries reach a session (client.h): deliver is
 * gw_session_enqueue; want_room is true when the queue is at most half full
 * (bytes and messages), else the session tells the hub once it is again;
 * overflow sheds it as a slow consumer (4008). */
extern const struct gw_client_ops gw_session_client_ops;

/* Marks s as alive (any frame or pong from the client). */
void gw_session_saw_traffic(struct gw_session *s);

#endif
