/* Private to gateway/rconn.c and gateway/rconn_net.c: the connection's
 * struct and the calls between the two files. rconn.c owns the FIFO, the
 * replies, the deadlines and the life cycle; rconn_net.c the socket (opening,
 * connecting, adopting; TLS goes there). Nothing else includes this. */
#ifndef GW_RCONN_INT_H
#define GW_RCONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/util.h>
#include <hiredis/hiredis.h>

#include "rconn.h"

struct bufferevent;
struct event;

struct rconn_cmd {
    gw_rconn_reply_fn cb;
    void *privdata;
    int64_t deadline_us;
    int confirms;            /* subscribe family: confirmations still due; 0 for any other command */
    enum gw_rconn_push kind; /* which confirmation counts, when confirms > 0 */
    char verb[16];           /* for logs */
};

struct gw_rconn {
    /* Read-only after gw_rconn_new. */
    struct event_base *base;
    const struct gw_rconn_ops *ops;
    void *ctx;
    char *name, *username, *password;
    int db, connect_timeout_ms;
    size_t max_out, max_in;

    enum gw_rconn_state state;
    struct bufferevent *bev; /* NULL when IDLE or terminal */
    redisReader *reader;
    struct event *timer; /* the earliest deadline */
    struct event *kick;  /* rconn_net.c's: a connect that ended at once, reported from the loop */
    int64_t timer_at_us; /* when timer fires; 0 = not armed */
    int64_t connect_deadline_us;
    struct rconn_cmd *q; /* ring: q[(head + i) % cap] for i < len */
    size_t qcap, qhead, qlen;
    int setup_due;              /* AUTH/SELECT replies still due */
    int sub_markers;            /* subscribe-family commands in q */
    long long sub_count, ssub_count; /* subscriptions Redis last reported */
    int depth;                  /* callbacks of ours on the stack (ENTERED) */
    bool doomed;                /* freed while depth > 0 (DELETED) */
    bool paused;
    bool connect_failed; /* reported from the loop by kick */
    struct ssl_ctx_st *tls_ctx; /* referenced; NULL: plain TCP */
    char *tls_name;             /* owned; the name the certificate must carry */
    bool tls_on;                /* bev is the TLS one (the handshake started) */
    char errstr[160];
};

/* rconn.c, for rconn_net.c (which calls down into rconn.c, never back). */
/* The one place the state changes; logs the move with why. */
void rconn_move(struct gw_rconn *c, enum gw_rconn_state to, const char *why);
/* FAILED with detail in errstr: socket closed, pending callbacks with NULL,
 * then on_fail. Only between rconn_enter and rconn_leave. */
void rconn_fail(struct gw_rconn *c, const char *why, const char *detail);
bool rconn_terminal(const struct gw_rconn *c);
/* READY, then on_ready. */
void rconn_go_ready(struct gw_rconn *c, const char *why);
/* Queues AUTH/SELECT (counted in setup_due) and arms the connect deadline. */
void rconn_queue_setup(struct gw_rconn *c);
/* Hands out every complete reply in the bufferevent's input. */
void rconn_process_input(struct gw_rconn *c);
/* The bufferevent's read callback. */
void rconn_on_read(struct bufferevent *bev, void *arg);
/* Around every callback from libevent (ENTERED); c may be gone after leave. */
void rconn_enter(struct gw_rconn *c);
void rconn_leave(struct gw_rconn *c);
/* Whether r is a push, and which. */
bool rconn_push_kind(const redisReply *r, enum gw_rconn_push *kind);

#endif
