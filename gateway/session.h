/* One WebSocket client. Owned by its worker thread from ESTABLISHED to
 * CLOSED; other threads know it only by id. A session never frees itself from
 * inside its own callbacks: closing marks it CLOSING and lets lws call back
 * (WRITEABLE sends the close frame, CLOSED frees). */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "codec.h"
#include "hub.h"
#include "metrics.h"
#include "outq.h"

struct gw_worker;

enum gw_session_state { GW_SESSION_OPEN = 0, GW_SESSION_CLOSING };

struct gw_session {
    uint64_t id; /* never reused: worker index in the top 8 bits, sequence below */
    struct lws *wsi;
    struct gw_worker *worker;
    struct gw_session *prev, *next; /* worker's session_list */
    struct gw_hub_member member;
    struct gw_outq outq;

    enum gw_session_state state;
    int close_code;
    const char *close_reason; /* static string */
    bool flush_before_close; /* drain: send what is queued first */
    bool ping_due;

    /* Inbound reassembly of one fragmented message. */
    char *rxbuf; /* owned, NULL between messages */
    size_t rxlen, rxcap;
    bool rx_in_message, rx_discard, rx_binary;

    /* Token bucket, in millionths of a message. */
    int64_t tokens;
    int64_t last_refill_us;

    int64_t last_rx_us;
    int64_t last_ping_us;
};

/* Creates the session for a new WebSocket connection and registers it with
 * its worker. Never fails. */
struct gw_session *gw_session_new(struct gw_worker *w, struct lws *wsi);

/* Leaves every channel, drops queued frames, unregisters and frees s. Called
 * from LWS_CALLBACK_CLOSED only. */
void gw_session_free(struct gw_session *s);

/* One chunk of an incoming message (LWS_CALLBACK_RECEIVE). Errors are replied
 * to the client; the connection carries on. */
void gw_session_receive(struct gw_session *s, const void *in, size_t len);

/* LWS_CALLBACK_SERVER_WRITEABLE: writes at most one frame. Returns -1 when
 * lws must close the connection now (close frame set), else 0. */
int gw_session_writeable(struct gw_session *s);

/* Queues frame for s (takes its own reference). A full queue sheds s with
 * 4008. Ignored while s is closing. */
void gw_session_enqueue(struct gw_session *s, struct gw_frame *frame);

/* Starts closing s with code and reason (static string). flush: send the
 * queued frames before the close frame. Idempotent. */
void gw_session_close(struct gw_session *s, int code, const char *reason, bool flush);

/* Once a second: ping when due, close when idle too long. */
void gw_session_tick(struct gw_session *s, int64_t now_us);

/* Sends an error frame (counted per code). */
void gw_session_send_error(struct gw_session *s, enum gw_err err, bool has_id, int64_t id,
                           const char *message);

/* Result of a publish this session asked for (from the bus). */
void gw_session_publish_result(struct gw_session *s, bool ok, bool has_id, int64_t id);

/* Marks s as alive (any frame or pong from the client). */
void gw_session_saw_traffic(struct gw_session *s);

/* Acknowledges request id of s (a subscribe that became live). */
void gw_session_ack(struct gw_session *s, int64_t id);

/* Finds a session of worker w by id; NULL once it has closed. */
struct gw_session *gw_session_find(struct gw_worker *w, uint64_t id);

#endif

