/* Private to worker.c and worker_lws.c, the two halves of the worker module:
 * the worker's struct (opaque to every other file, see worker.h) and what
 * the two halves call of each other. Nothing else includes this. */
#ifndef GW_WORKER_INT_H
#define GW_WORKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

#include "api.h"
#include "hub.h"
#include "intake.h"
#include "mailbox.h"
#include "metrics.h"
#include "node.h"
#include "registry.h"
#include "session.h"
#include "wake.h"
#include "worker.h"

/* A worker's life after its start: every move is one way. */
enum gw_worker_state {
    GW_WORKER_RUNNING = 0,
    GW_WORKER_DRAINING, /* closing its sessions (1001) until they are gone or the drain timeout */
    GW_WORKER_STOPPING, /* its loop was told to end */
};

struct gw_worker {
    /* Set before the thread starts, then read-only. */
    int index;
    struct gw_node *node;
    pthread_t thread;
    bool started; /* main thread only */

    /* Any thread. */
    struct gw_mailbox inbox;
    atomic_size_t inbox_bytes; /* gw_wmail_bytes of what the inbox holds */
    struct gw_wake wake; /* sent once per batch of mail */
    struct gw_worker_stats stats; /* written by this worker only */
    pthread_mutex_t top_lock; /* guards top/ntop */
    struct gw_hub_top top[GW_TOP_CHANNELS];
    int ntop;

    /* Worker thread only. */
    uv_loop_t loop;
    uv_timer_t sweep_timer, inbox_timer;
    uv_poll_t listen_poll;
    int listen_fd;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct gw_session_host host;
    struct gw_hub hub;
    struct gw_registry sessions;
    struct gw_api api; /* HTTP publishes awaiting Redis; on worker 0 the --api-listen socket */
    struct gw_intake intake; /* accepted connections until their request head is in */
    uint64_t next_seq;
    bool inbox_drain_scheduled;
    int64_t last_inbox_drain_us;
    unsigned sweeps;
    enum gw_worker_state state;
    int64_t drain_deadline_us;
    int wsi_alive; /* upgraded connections whose wsi is not destroyed yet */

    /* Hand-shakes with main, guarded by state_lock. */
    pthread_mutex_t state_lock;
    pthread_cond_t state_cond;
    int start_result; /* 1 = pending, 0 = running, <0 = failed */
    bool stopped;     /* loop ended; waiting for teardown_go */
    bool teardown_go;
};

/* All in worker_lws.c; worker.c calls them, never the other way round.
 * Flushes every session owed a write (the end of a batch or a callback). */
void gw_worker_flush_sessions(struct gw_worker *w);
/* Ends w's loop (uv_stop) once; the thread then waits for its teardown. */
void gw_worker_stop(struct gw_worker *w);
/* Stops the loop once draining and every WebSocket is gone. */
void gw_worker_stop_if_drained(struct gw_worker *w);
/* w's lws context on w's loop, with the wsgate protocol. */
struct lws_context *gw_worker_create_context(struct gw_worker *w);
/* uv_poll callback of w's listen socket (data = w). */
void gw_worker_on_listen_ready(uv_poll_t *p, int status, int events);

#endif
