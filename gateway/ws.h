/* One worker: a thread that runs its own libwebsockets context on the shared
 * listen port (its own SO_REUSEPORT socket, see listen.h). It owns
 * its sessions, its part of the hub and its inbox; nothing else touches them.
 * Other threads reach it only with gw_worker_post(), which wakes lws with
 * lws_cancel_service() once per batch. */
#ifndef GW_WS_H
#define GW_WS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "clock.h"
#include "dict.h"
#include "hub.h"
#include "mailbox.h"
#include "metrics.h"
#include "node.h"
#include "wmail.h"

struct gw_session;

/* Most frames and bytes one client gets from one writev when it has a
 * backlog; the bytes cap stays near a socket's send buffer. */
#define GW_WRITE_BATCH_FRAMES 512
#define GW_WRITE_BATCH_BYTES (256 * 1024)

struct gw_worker {
    /* Set before the thread starts, then read-only. */
    int index;
    struct gw_node *node;
    pthread_t thread;

    /* Any thread. */
    struct gw_mailbox inbox;
    _Atomic(struct lws_context *) ctx; /* NULL until created / after destroy */
    struct gw_worker_stats stats; /* written by this worker only */

    /* Worker thread only. */
    int listen_fd;
    struct lws_vhost *vhost;
    struct gw_hub hub;
    struct gw_dict sessions; /* id (8 bytes) -> struct gw_session* */
    struct gw_session *session_list; /* all sessions, for the sweep */
    uint64_t next_seq;
    lws_sorted_usec_list_t sweep_sul;
    lws_sorted_usec_list_t inbox_sul; /* deferred inbox drain (--coalesce-ms) */
    bool inbox_drain_scheduled;
    int64_t last_inbox_drain_us;
    bool draining;
    int64_t drain_deadline_us;
    bool stopping;

    pthread_mutex_t wake_lock; /* held while poking ctx from another thread */
    bool started; /* main thread only */

    /* Startup hand-shake with main: guarded by start_lock. */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    int start_result; /* 1 = pending, 0 = running, <0 = failed */
};

/* Allocates worker `index` (not started). */
struct gw_worker *gw_worker_new(struct gw_node *node, int index);
/* Starts the thread and waits until its lws context listens. Returns 0, or
 * -errno when the context could not be created (e.g. port in use). */
int gw_worker_start(struct gw_worker *w);
/* Waits for the thread to end: it ends after a drain completes. */
void gw_worker_join(struct gw_worker *w);
/* Frees a joined (or never started) worker and whatever its inbox still holds. */
void gw_worker_free(struct gw_worker *w);

/* Moves m into w's inbox and wakes w if the inbox was empty. Any thread. */
void gw_worker_post(struct gw_worker *w, struct gw_wmail *m);

#endif
