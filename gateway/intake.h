/* A worker's connections between accept4 and lws (docs/SECURITY.md, "HTTP
 * edge"). Every accepted socket, on --listen and on --api-listen, first
 * takes a plain-HTTP slot of the node (--max-http-connections) and of its
 * peer address (--max-http-connections-per-ip), or is closed at once. Then
 * it waits here until its request head is in the kernel's buffer: the head
 * is peeked, not read (SO_RCVLOWAT wakes the worker only when more bytes
 * came), so lws later reads the very same bytes. common/httpreq judges it:
 * a good head is handed to lws with its slot; a bad one is answered here
 * (400, 414, 431, 505) and closed, as is a head not complete within
 * --http-timeout of the accept (408). lws never parses a head httpreq has
 * not accepted, so the path lws routes is the raw path.
 *
 * The slot stays with the connection until it becomes a WebSocket (the
 * WebSocket limits take over) or ends: worker_lws.c files it under its wsi
 * inside the adoption (gw_intake_adopted; lws has no user data for it yet)
 * and gives it back at ESTABLISHED or WSI_DESTROY (gw_intake_forget).
 * Worker thread only; the counts are the node's (atomic, ipcount's lock). */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

#include "dict.h"

#include "httpreq.h"
#include "ipcount.h"
#include "metrics.h"
#include "node.h"

/* The counts one plain HTTP connection holds, and when it was accepted
 * (the start of its --http-timeout). */
struct gw_http_slot {
    bool node; /* one of node->http_connections */
    bool peer; /* one of key's in node->http_peers */
    struct gw_ipcount_key key;
    int64_t accepted_us; /* gw_now_us() at accept; 0 = no slot */
    gw_stat *gauge; /* the accepting worker's http_connections, while node is held */
};

struct gw_intake_conn;

/* A listening socket paused after an accept error (gw_intake_accept_failed). */
struct gw_intake_paused {
    uv_poll_t *poll;
    uv_poll_cb cb;
};

struct gw_intake {
    struct gw_node *node;
    uv_loop_t *loop;
    gw_stat *refused; /* GW_HTTP_REFUSE__COUNT counters of this worker */
    gw_stat *gauge; /* its http_connections */
    uv_timer_t sweep; /* the deadlines, every 100 ms */
    struct gw_intake_conn *conns; /* waiting for their head, or handed over and closing */
    bool started;
    struct gw_intake_paused paused[2]; /* --listen and --api-listen */
    int64_t error_logged_us; /* last accept error logged */
    uint64_t errors_unlogged; /* accept errors since then */
    /* The slot of the connection inside gw_intake_accept's adopt call. */
    struct gw_http_slot handoff;
    struct gw_dict lws_slots; /* wsi pointer -> owned struct gw_http_slot * */
    char peek[GW_HTTPREQ_HEAD_MAX];
};

/* Starts the deadline timer on loop. Returns 0 or a libuv error (negative).
 * refused (GW_HTTP_REFUSE__COUNT counters) and gauge (slots held) stay the
 * caller's and must outlive the intake. */
int gw_intake_start(struct gw_intake *in, struct gw_node *node, uv_loop_t *loop, gw_stat *refused,
                    gw_stat *gauge);

/* Gives back the slots lws still holds and frees the table; after the
 * worker's lws context is gone. Safe on a zeroed intake. */
void gw_intake_deinit(struct gw_intake *in);

/* Closes every connection still waiting (their slots are given back) and
 * the timer; the loop must run afterwards for libuv to let go of them. Safe
 * on a never-started (zeroed) intake, and more than once. */
void gw_intake_close(struct gw_intake *in);

/* Takes fd (an accepted, non-blocking socket) and owns it: refused and
 * closed when over a limit, else waits for its head. When the head is good
 * adopt(ctx, fd) is called, which owns fd from then on (lws' adoption);
 * while it runs, the connection's slot is in in->handoff for
 * gw_intake_take. Never calls adopt from inside this call. */
void gw_intake_accept(struct gw_intake *in, int fd, void (*adopt)(void *ctx, int fd), void *ctx);

/* accept4 on the socket poll watches failed with -err (not "nothing
 * pending"). Counts it (accept_error); when the node is out of descriptors
 * or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) stops watching that socket
 * for the next 100 ms sweep (the kernel keeps the connections in its
 * backlog) instead of spinning on a socket that stays readable. Logs at most
 * once a second, with how many errors came since the last line. */
void gw_intake_accept_failed(struct gw_intake *in, int err, uv_poll_t *poll, uv_poll_cb cb, const char *what);

/* Inside adopt, from lws' first callback for the new wsi
 * (SERVER_NEW_CLIENT_INSTANTIATED): files the handed-over slot under wsi. */
void gw_intake_adopted(struct gw_intake *in, struct lws *wsi);

/* Gives back the slot filed under wsi, if any (ESTABLISHED, WSI_DESTROY). */
void gw_intake_forget(struct gw_intake *in, struct lws *wsi);

/* Gives back what *slot holds and clears it; safe more than once. Any
 * worker thread. */
void gw_intake_release(struct gw_node *node, struct gw_http_slot *slot);

/* Microseconds left of wsi's --http-timeout (at least 1), or -1 when wsi
 * holds no slot (an upgraded connection). */
int64_t gw_intake_time_left_us(const struct gw_intake *in, struct lws *wsi, int64_t now_us);

#endif
