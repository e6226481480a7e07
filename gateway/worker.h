/* One worker: a thread running its own libuv loop, with one libwebsockets
 * context on that loop serving the shared listen port (its own SO_REUSEPORT
 * socket, see listen.h). It owns its sessions, its part of the hub and its
 * inbox; nothing else touches them. Other threads reach it only through
 * gw_worker_post(), which wakes the loop once per batch (uv_async_send). */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include "metrics.h"
#include "node.h"
#include "wmail.h"

struct gw_worker;

/* Allocates worker `index` (not started). node must outlive the worker. */
struct gw_worker *gw_worker_new(struct gw_node *node, int index);

/* Starts the thread and waits until it listens. Returns 0, or -errno when
 * the listen socket or the lws context could not be set up (the thread has
 * then ended). Main thread. */
int gw_worker_start(struct gw_worker *w);

/* Moves m into w's inbox and wakes w if the inbox was empty: no lock, one
 * uv_async_send per batch. After the worker stopped, mail waits in the inbox
 * and gw_worker_free() frees it. Any thread, until gw_worker_free(). */
void gw_worker_post(struct gw_worker *w, struct gw_wmail *m);

/* Waits for the thread to end: it ends after a drain completes. */
void gw_worker_join(struct gw_worker *w);

/* Frees a joined (or never started) worker and whatever its inbox still
 * holds. No other thread may post to w any more. */
void gw_worker_free(struct gw_worker *w);

/* The worker's counters, written by its thread only; read with gw_stat_get. */
struct gw_worker_stats *gw_worker_stats(struct gw_worker *w);

#endif
