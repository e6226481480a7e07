/* One worker: a thread running its own libuv loop, with one libwebsockets
 * context on that loop serving the shared listen port (its own SO_REUSEPORT
 * socket, see listen.h). It owns its sessions, its part of the hub and its
 * inbox; nothing else touches them. Other threads reach it only through
 * gw_worker_post(), which wakes the loop once per batch (wake.h). */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include "hub.h"
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

/* The channels with the most subscribers on one worker, for the admin view. */
#define GW_TOP_CHANNELS 8

/* w's busiest channels by local subscribers, as of its last sweep (every
 * 2 s), busiest first, into out (max entries); returns how many. Any thread. */
int gw_worker_top_channels(struct gw_worker *w, struct gw_hub_top *out, int max);

/* Bytes of mail waiting in w's inbox (gw_wmail_bytes). Any thread. */
size_t gw_worker_inbox_bytes(const struct gw_worker *w);

/* Moves m into w's inbox and wakes w if the inbox was empty: no lock, one
 * eventfd write per batch. After the worker stopped, mail waits in the inbox
 * and gw_worker_free() frees it. Any thread, until gw_worker_free(). */
void gw_worker_post(struct gw_worker *w, struct gw_wmail *m);

/* Waits until w's loop has ended (after its drain): it no longer accepts,
 * reads or writes, and waits for gw_worker_join() to tear down. Main thread. */
void gw_worker_wait_stopped(struct gw_worker *w);

/* Lets w tear down (close what is left, destroy its lws context and loop)
 * and waits for its thread to end. lws 4.1.6 on libuv closes its own event
 * pipe twice during that teardown, so call it with no other thread left that
 * opens descriptors (other workers stopped, the bus stopped), one worker at a
 * time. Main thread. */
void gw_worker_join(struct gw_worker *w);

/* Frees a joined (or never started) worker and whatever its inbox still
 * holds. No other thread may post to w any more. */
void gw_worker_free(struct gw_worker *w);

/* The worker's counters, written by its thread only; read with gw_stat_get. */
struct gw_worker_stats *gw_worker_stats(struct gw_worker *w);

#endif
