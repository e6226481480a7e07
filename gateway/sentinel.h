/* Redis Sentinel for the link (redis+sentinel://): which address the master
 * has now, confirmed, and the news that it moved.
 *
 * It owns its own connections to the Sentinels and to a candidate master
 * (rconn.h), never the link's: a resolution asks the Sentinels in turn for
 * the master (SENTINEL get-master-addr-by-name) and confirms with ROLE on
 * that address that it is a master; a watcher then stays on one Sentinel,
 * subscribed to +switch-master, and asks it again every
 * GW_SENTINEL_CHECK_MS in case a +switch-master was missed. It knows
 * nothing of channels, publishes or the heartbeat, and reports only through
 * gw_sentinel_ops.
 *
 * Bus thread only (the thread that runs the link's event_base); the struct
 * is opaque to every other file. */
#ifndef GW_SENTINEL_H
#define GW_SENTINEL_H

#include "config.h"
#include "metrics.h"

struct event_base;
struct gw_sentinel;

/* The watcher asks its Sentinel this often even without a +switch-master
 * (a Pub/Sub message is lost when the watcher's connection drops). */
#define GW_SENTINEL_CHECK_MS 2000

/* Called from the loop (connection callbacks or timers), never from inside a
 * gw_sentinel_* call. Each may call gw_sentinel_resolve, never
 * gw_sentinel_stop/free. */
struct gw_sentinel_ops {
    /* The resolution that gw_sentinel_resolve started found the master and
     * ROLE on it said "master": gw_sentinel_master now names it. */
    void (*on_master)(void *ctx);
    /* That resolution failed: no Sentinel answered with an address that
     * ROLE confirmed as a master. why is static text. */
    void (*on_fail)(void *ctx, const char *why);
    /* The master moved away from the confirmed one (+switch-master, or the
     * watcher's periodic question answered another address). The link
     * must stop using the old one at once and resolve again. */
    void (*on_switch)(void *ctx, const char *why);
};

/* Allocates the Sentinel client for cfg->redis (a redis+sentinel:// URL) on
 * base; cfg, base, stats and ops must outlive it. It counts master switches
 * in stats->redis_master_switches and its watcher's readiness in
 * stats->redis_conn_ready[GW_REDIS_ROLE_SENTINEL]. Never fails (aborts on
 * OOM or when libevent cannot make its timers). Bus thread. */
struct gw_sentinel *gw_sentinel_new(const struct gw_config *cfg, struct event_base *base,
                                    struct gw_bus_stats *stats, const struct gw_sentinel_ops *ops, void *ctx);

/* Starts a resolution (dropping one that is running, whose callback then
 * never comes). Exactly one on_master or on_fail follows, from the loop.
 * The Sentinels are asked in turn, starting with the one that answered
 * last. Bus thread. */
void gw_sentinel_resolve(struct gw_sentinel *s);

/* The confirmed master's address (host borrowed until the next resolution
 * ends), or NULL before the first on_master. */
const char *gw_sentinel_master(const struct gw_sentinel *s, int *port);

/* Frees every connection and timer; no callback follows. Idempotent. */
void gw_sentinel_stop(struct gw_sentinel *s);

/* Stops (when not yet stopped) and frees. NULL is a no-op. */
void gw_sentinel_free(struct gw_sentinel *s);

#endif
