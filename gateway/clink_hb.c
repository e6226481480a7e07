/* The cluster link's heartbeats: one per master, on a channel whose hash tag
 * lands in a slot that master owns, SPUBLISHed on its command connection and
 * echoed on its subscriber; the 50 ms tick that sends them, judges each
 * master by its own echo and hurries the map's refresh while one is not live. */
#define GW_LOG_MODULE "clink"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "clink_int.h"
#include "clock.h"
#include "log.h"
#include "shards.h"
#include "slot.h"

/* How far the search for a heartbeat hash tag on a master's slots goes; a
 * master that owns a slot is found far sooner (16384 slots). */
#define HB_TAG_TRIES (1u << 22)

/* clink_int.h */
bool gw_clink_hb_channel(const struct gw_clink *cl, const struct gw_topo *map, const char *id, char *out, size_t n)
{
    char tag[16];
    for (unsigned t = 0; t < HB_TAG_TRIES; t++) {
        int tl = snprintf(tag, sizeof tag, "%u", t);
        const struct gw_topo_node *o = gw_topo_slot_owner(map, gw_slot_of(tag, (size_t)tl));
        if (o && strcmp(o->id, id) == 0) {
            snprintf(out, n, "__wsgate:hb:{%s}:%s", tag, cl->cfg->node_id);
            return true;
        }
    }
    return false;
}

/* clink_int.h */
void gw_clink_send_heartbeat(struct cshard *sh, int64_t now)
{
    char payload[32];
    int n = snprintf(payload, sizeof payload, "%" PRIu64, ++sh->hb_seq);
    const char *argv[] = { "SPUBLISH", sh->hb, payload };
    size_t lens[] = { 8, strlen(sh->hb), (size_t)n };

    sh->last_hb_sent_us = now;
    if (gw_rconn_command(sh->cmd, 3, argv, lens, sh->cl->cmd_timeout_ms, NULL, NULL) != 0)
        gw_clink_shard_fail(sh, "cannot queue a heartbeat SPUBLISH");
}

/* Why hurry: while a master is down the cluster promotes its replica after
 * the node timeout, and nothing tells this node when. Its reconnect attempts
 * (backoff up to redis_backoff_max_ms) and the 5 s timer found the promoted
 * replica up to 1.8 s after the promotion (docs/RELIABILITY.md); one CLUSTER
 * SHARDS every GW_CLINK_HURRY_MS while a slot waits finds it within about
 * that. The cost is that query and its connection, per node, only while it
 * waits. */
static void hurry_check(struct gw_clink *cl)
{
    bool waiting = false;

    if (!cl->shards)
        return; /* never started (no TLS context) */
    gw_stat_set(&cl->stats->redis_map_queries, gw_shards_queries(cl->shards));
    if (cl->state == CL_LIVE) {
        waiting = cl->moving_any || gw_topo_covered(gw_shards_map(cl->shards)) < GW_SLOT_COUNT;
        for (size_t i = 0; i < cl->nsh && !waiting; i++)
            waiting = cl->sh[i]->state != SH_LIVE; /* a retry in progress too: no flapping */
    }
    gw_stat_set(&cl->stats->redis_map_hurried, waiting);
    gw_shards_hurry(cl->shards, waiting);
}

/* clink_int.h */
void gw_clink_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_clink *cl = arg;
    const struct gw_config *cfg = cl->cfg;
    int64_t now = gw_now_us(), timeout = (int64_t)cfg->redis_heartbeat_timeout_ms * 1000;
    int64_t gap = cl->last_tick_us ? now - cl->last_tick_us : 0;

    cl->last_tick_us = now;
    hurry_check(cl);
    if (cl->state != CL_CONNECTING && cl->state != CL_LIVE)
        return;
    for (size_t i = 0; i < cl->nsh; i++) {
        struct cshard *sh = cl->sh[i];
        if (sh->state != SH_PROVING && sh->state != SH_LIVE)
            continue;
        if (gap > timeout / 2) { /* this thread was stalled, not the masters: prove again */
            sh->echo_due_us = now + timeout;
            gw_clink_send_heartbeat(sh, now);
            continue;
        }
        if (now > sh->echo_due_us) {
            if (gw_rconn_readable(sh->sub) && now < sh->echo_due_us + timeout)
                continue; /* the echo is likely waiting in the input: read it first */
            LOG_WARN("redis heartbeat missing master=%s:%d timeout_ms=%d", sh->host, sh->port,
                     cfg->redis_heartbeat_timeout_ms);
            gw_clink_refresh(cl, "heartbeat timeout");
            gw_clink_shard_fail(sh, "heartbeat timeout");
            continue;
        }
        if (now - sh->last_hb_sent_us >= (int64_t)cfg->redis_heartbeat_interval_ms * 1000)
            gw_clink_send_heartbeat(sh, now);
    }
}
