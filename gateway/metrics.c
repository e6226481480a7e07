/* Prometheus text rendering of the per-thread counters in metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "jwt.h"

const char *const gw_redis_link_state_names[GW_REDIS_LINK_STATES] = {
    "down", "resolving", "connecting", "loading", "proving", "live", "resetting",
};

const char *const gw_redis_role_names[GW_REDIS_ROLE__COUNT] = { "sub", "pub", "sentinel" };

const char *const gw_redis_master_state_names[GW_REDIS_MASTER_STATES] = {
    "connecting", "loading", "proving", "live", "resetting", "down",
};

const char *gw_shed_reason_name(enum gw_shed_reason r)
{
    switch (r) {
    case GW_SHED_SLOW_CONSUMER: return "slow_consumer";
    case GW_SHED_IDLE_TIMEOUT: return "idle_timeout";
    case GW_SHED_API_DISCONNECT: return "api_disconnect";
    default: return "unknown";
    }
}

const char *gw_refuse_reason_name(enum gw_refuse_reason r)
{
    switch (r) {
    case GW_REFUSE_PATH: return "path";
    case GW_REFUSE_DRAINING: return "draining";
    case GW_REFUSE_LIMIT: return "limit";
    case GW_REFUSE_ORIGIN: return "origin";
    case GW_REFUSE_PER_IP: return "per_ip";
    case GW_REFUSE_HANDSHAKE: return "handshake";
    default: return "unknown";
    }
}

const char *gw_http_refuse_name(enum gw_http_refuse r)
{
    switch (r) {
    case GW_HTTP_REFUSE_BAD_REQUEST: return "bad_request";
    case GW_HTTP_REFUSE_TIMEOUT: return "timeout";
    case GW_HTTP_REFUSE_LIMIT: return "limit";
    case GW_HTTP_REFUSE_PER_IP: return "per_ip";
    case GW_HTTP_REFUSE_ACCEPT_ERROR: return "accept_error";
    default: return "unknown";
    }
}

static const char *auth_fail_name(int reason)
{
    return reason == GW_AUTH_FAIL_TIMEOUT ? "timeout" : gw_jwt_reason_label((enum gw_jwt_reason)reason);
}

static const char *const api_codes[GW_API_CODES] = { "200", "400", "401", "403", "405", "409", "411", "413", "503" };

int gw_api_code_index(unsigned int status)
{
    for (int i = 0; i < GW_API_CODES; i++) {
        if (strtoul(api_codes[i], NULL, 10) == status)
            return i;
    }
    return -1;
}

static const char *api_code_name(int i)
{
    return api_codes[i];
}

static const char *shed_name(int r)
{
    return gw_shed_reason_name((enum gw_shed_reason)r);
}

static const char *refuse_name(int r)
{
    return gw_refuse_reason_name((enum gw_refuse_reason)r);
}

static const char *http_refuse_name(int r)
{
    return gw_http_refuse_name((enum gw_http_refuse)r);
}

static const char *err_name(int e)
{
    return gw_err_slug((enum gw_err)e);
}

struct strbuf {
    char *buf;
    size_t len, cap;
};

static void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        }
        sb->cap = sb->cap * 2 + (size_t)(n > 0 ? n : 0);
        sb->buf = gw_xrealloc(sb->buf, sb->cap);
    }
}

static void family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
    sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sums one worker field over all workers; offset-based so each metric is one line below. */
static uint64_t sum_workers(struct gw_worker_stats *const *w, int n, size_t offset)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += gw_stat_get((const gw_stat *)((const char *)w[i] + offset));
    return total;
}

#define WSUM(field) sum_workers(workers, nworkers, offsetof(struct gw_worker_stats, field))

/* One line per index first..count-1 of a per-worker counter array (at
 * offset in gw_worker_stats), summed over the workers, labelled key=name(i). */
static void sum_lines(struct strbuf *sb, struct gw_worker_stats *const *w, int n, size_t offset, int first, int count,
                      const char *metric, const char *key, const char *(*name)(int))
{
    for (int i = first; i < count; i++) {
        uint64_t v = sum_workers(w, n, offset + (size_t)i * sizeof(gw_stat));
        sb_printf(sb, "%s{%s=\"%s\"} %llu\n", metric, key, name(i), (unsigned long long)v);
    }
}

#define WSUM_LINES(field, first, count, metric, key, name) \
    sum_lines(&sb, workers, nworkers, offsetof(struct gw_worker_stats, field), first, count, metric, key, name)

/* Cluster mode: the series of each master that holds an index (metrics.h). */
static void master_metrics(struct strbuf *sb, const struct gw_bus_stats *bus)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
        double scale;
    } series[] = {
        { "wsgate_redis_master_port", "gauge", "Cluster mode: the port of each master.",
          offsetof(struct gw_bus_stats, master_port), 1 },
        { "wsgate_redis_master_up", "gauge", "Cluster mode: 1 while that master's heartbeat echoes.",
          offsetof(struct gw_bus_stats, master_up), 1 },
        { "wsgate_redis_master_reconnects_total", "counter", "Cluster mode: reconnects of that master alone.",
          offsetof(struct gw_bus_stats, master_reconnects), 1 },
        { "wsgate_redis_master_redirects_total", "counter",
          "Cluster mode: that master's MOVED and ASK answers to commands, and the subscriptions it dropped or refused "
          "because their slot moved.",
          offsetof(struct gw_bus_stats, master_redirects), 1 },
        { "wsgate_redis_master_heartbeat_rtt_seconds", "gauge", "Cluster mode: that master's last heartbeat round trip.",
          offsetof(struct gw_bus_stats, master_rtt_us), 1e6 },
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        const gw_stat *arr = (const gw_stat *)((const char *)bus + series[k].off);
        family(sb, series[k].name, series[k].type, series[k].help);
        for (int i = 0; i < GW_REDIS_MASTERS_MAX; i++) {
            if (!gw_stat_get(&bus->master_port[i]))
                continue;
            if (series[k].scale == 1)
                sb_printf(sb, "%s{master=\"%d\"} %llu\n", series[k].name, i, (unsigned long long)gw_stat_get(&arr[i]));
            else
                sb_printf(sb, "%s{master=\"%d\"} %.6f\n", series[k].name, i, (double)gw_stat_get(&arr[i]) / series[k].scale);
        }
    }
    family(sb, "wsgate_redis_master_state", "gauge",
           "Cluster mode: each master's link state: connecting, loading (the Function library), proving (waiting "
           "for its first heartbeat echo), live, resetting, down (retried with backoff).");
    for (int i = 0; i < GW_REDIS_MASTERS_MAX; i++)
        for (int st = 0; gw_stat_get(&bus->master_port[i]) && st < GW_REDIS_MASTER_STATES; st++)
            sb_printf(sb, "wsgate_redis_master_state{master=\"%d\",state=\"%s\"} %d\n", i,
                      gw_redis_master_state_names[st], gw_stat_get(&bus->master_state[i]) == (uint64_t)st);
}

static void history_metrics(struct strbuf *sb, const struct gw_bus_stats *bus)
{
    static const char *const results[] = { "recovered", "missed", "overload", "position" };

    family(sb, "wsgate_history_gaps_total", "counter",
           "Offset jumps in live messages with history, each read back from the stream (node-side repair).");
    sb_printf(sb, "wsgate_history_gaps_total %llu\n", (unsigned long long)gw_stat_get(&bus->history_gaps));
    family(sb, "wsgate_history_messages_repaired_total", "counter",
           "Messages a node read back from a channel's stream and delivered after a gap.");
    sb_printf(sb, "wsgate_history_messages_repaired_total %llu\n",
              (unsigned long long)gw_stat_get(&bus->history_messages_repaired));
    family(sb, "wsgate_history_messages_lost_total", "counter",
           "Offsets a node could not read back (trimmed, expired, or over a bound); clients got a gap notice.");
    sb_printf(sb, "wsgate_history_messages_lost_total %llu\n",
              (unsigned long long)gw_stat_get(&bus->history_messages_lost));
    family(sb, "wsgate_history_duplicates_total", "counter",
           "Live messages with history dropped because the node had already delivered their offset.");
    sb_printf(sb, "wsgate_history_duplicates_total %llu\n", (unsigned long long)gw_stat_get(&bus->history_duplicates));
    family(sb, "wsgate_history_conflicts_total", "counter",
           "Live messages at an offset the node had delivered, with other content: Redis handed the offset out "
           "twice. Passed on without a position, with a gap notice for the offset.");
    sb_printf(sb, "wsgate_history_conflicts_total %llu\n", (unsigned long long)gw_stat_get(&bus->history_conflicts));
    family(sb, "wsgate_history_rewinds_total", "counter",
           "History reads that found a channel's offset in Redis below the one the node had delivered, in the "
           "same epoch: Redis came back with older data.");
    sb_printf(sb, "wsgate_history_rewinds_total %llu\n", (unsigned long long)gw_stat_get(&bus->history_rewinds));
    family(sb, "wsgate_recoveries_total", "counter", "Client subscribes with since or recover, by result.");
    for (int r = 0; r < 4; r++)
        sb_printf(sb, "wsgate_recoveries_total{result=\"%s\"} %llu\n", results[r],
                  (unsigned long long)gw_stat_get(&bus->recoveries[r]));
    family(sb, "wsgate_backpressure_pauses_total", "counter",
           "Times a worker inbox passed --max-inbox-bytes and the node stopped reading Redis.");
    sb_printf(sb, "wsgate_backpressure_pauses_total %llu\n", (unsigned long long)gw_stat_get(&bus->backpressure_pauses));
    family(sb, "wsgate_backpressure_seconds_total", "counter", "Time Redis reads were paused by backpressure.");
    sb_printf(sb, "wsgate_backpressure_seconds_total %.6f\n", (double)gw_stat_get(&bus->backpressure_us) / 1e6);
    family(sb, "wsgate_history_requests_total", "counter", "Client history requests.");
    sb_printf(sb, "wsgate_history_requests_total %llu\n", (unsigned long long)gw_stat_get(&bus->history_requests));
    family(sb, "wsgate_client_reads_dropped_total", "counter",
           "Client recoveries and history requests dropped before reaching Redis: their client left.");
    sb_printf(sb, "wsgate_client_reads_dropped_total{reason=\"client_left\"} %llu\n",
              (unsigned long long)gw_stat_get(&bus->reads_dropped_left));
}

size_t gw_metrics_render(char **out, const struct gw_bus_stats *bus,
                         struct gw_worker_stats *const *workers, int nworkers,
                         int ready, int draining, const char *node_id)
{
    struct strbuf sb = { gw_xmalloc(8192), 0, 8192 };

    family(&sb, "wsgate_info", "gauge", "Node identity; the value is always 1.");
    sb_printf(&sb, "wsgate_info{node_id=\"%s\",workers=\"%d\"} 1\n", node_id, nworkers);

    family(&sb, "wsgate_ready", "gauge", "1 while the node is ready to serve (Redis link proven live, not draining).");
    sb_printf(&sb, "wsgate_ready %d\n", ready);
    family(&sb, "wsgate_draining", "gauge", "1 once SIGTERM/SIGINT started the drain.");
    sb_printf(&sb, "wsgate_draining %d\n", draining);

    family(&sb, "wsgate_connections", "gauge", "Open WebSocket connections.");
    sb_printf(&sb, "wsgate_connections %llu\n", (unsigned long long)WSUM(connections));
    family(&sb, "wsgate_http_connections", "gauge",
           "Connections holding a plain HTTP slot: not yet a WebSocket (docs/SECURITY.md).");
    sb_printf(&sb, "wsgate_http_connections %llu\n", (unsigned long long)WSUM(http_connections));
    family(&sb, "wsgate_connections_accepted_total", "counter", "WebSocket connections accepted.");
    sb_printf(&sb, "wsgate_connections_accepted_total %llu\n", (unsigned long long)WSUM(connections_accepted));
    family(&sb, "wsgate_subscriptions", "gauge", "Client subscriptions (client, channel pairs).");
    sb_printf(&sb, "wsgate_subscriptions %llu\n", (unsigned long long)WSUM(subscriptions));
    family(&sb, "wsgate_channels", "gauge", "Channels this node holds a Redis subscription for.");
    sb_printf(&sb, "wsgate_channels %llu\n", (unsigned long long)gw_stat_get(&bus->channels));

    family(&sb, "wsgate_redis_messages_received_total", "counter", "Pub/sub messages received from Redis for client channels.");
    sb_printf(&sb, "wsgate_redis_messages_received_total %llu\n", (unsigned long long)gw_stat_get(&bus->redis_messages_received));
    family(&sb, "wsgate_redis_messages_dropped_total", "counter", "Redis messages dropped instead of delivered, by reason.");
    sb_printf(&sb, "wsgate_redis_messages_dropped_total{reason=\"too_large\"} %llu\n",
              (unsigned long long)gw_stat_get(&bus->redis_messages_dropped_too_large));
    sb_printf(&sb, "wsgate_redis_messages_dropped_total{reason=\"bad_envelope\"} %llu\n",
              (unsigned long long)gw_stat_get(&bus->redis_messages_dropped_bad_envelope));
    sb_printf(&sb, "wsgate_redis_messages_dropped_total{reason=\"link_reset\"} %llu\n",
              (unsigned long long)gw_stat_get(&bus->redis_messages_dropped_link_reset));
    sb_printf(&sb, "wsgate_redis_messages_dropped_total{reason=\"bad_control\"} %llu\n",
              (unsigned long long)gw_stat_get(&bus->ctl_dropped));
    family(&sb, "wsgate_presence_write_errors_total", "counter",
           "Presence writes (join, leave, the node's index) Redis refused with an error.");
    sb_printf(&sb, "wsgate_presence_write_errors_total %llu\n",
              (unsigned long long)gw_stat_get(&bus->presence_write_errors));
    family(&sb, "wsgate_presence_members_purged_total", "counter",
           "Presence members of departed node incarnations that this node removed.");
    sb_printf(&sb, "wsgate_presence_members_purged_total %llu\n",
              (unsigned long long)gw_stat_get(&bus->presence_members_purged));
    family(&sb, "wsgate_messages_delivered_total", "counter", "Messages written to client sockets (one per recipient).");
    sb_printf(&sb, "wsgate_messages_delivered_total %llu\n", (unsigned long long)WSUM(messages_delivered));

    family(&sb, "wsgate_client_publishes_total", "counter", "Publishes from clients and the HTTP API, by result.");
    sb_printf(&sb, "wsgate_client_publishes_total{result=\"ok\"} %llu\n", (unsigned long long)gw_stat_get(&bus->publishes_ok));
    sb_printf(&sb, "wsgate_client_publishes_total{result=\"error\"} %llu\n", (unsigned long long)gw_stat_get(&bus->publishes_failed));

    family(&sb, "wsgate_clients_shed_total", "counter", "Clients disconnected by the node, by reason.");
    WSUM_LINES(shed, 0, GW_SHED__COUNT, "wsgate_clients_shed_total", "reason", shed_name);
    family(&sb, "wsgate_upgrades_refused_total", "counter", "WebSocket upgrades refused, by reason.");
    WSUM_LINES(upgrades_refused, 0, GW_REFUSE__COUNT, "wsgate_upgrades_refused_total", "reason", refuse_name);
    family(&sb, "wsgate_http_refused_total", "counter",
           "Connections closed before their request reached the node's handlers, by reason (docs/SECURITY.md).");
    WSUM_LINES(http_refused, 0, GW_HTTP_REFUSE__COUNT, "wsgate_http_refused_total", "reason", http_refuse_name);
    family(&sb, "wsgate_client_errors_total", "counter", "Error replies sent to clients, by code.");
    WSUM_LINES(client_errors, 1, GW_ERR__COUNT, "wsgate_client_errors_total", "code", err_name);
    family(&sb, "wsgate_auth_failures_total", "counter",
           "Clients refused at authentication (bad token, or none within --auth-timeout), by reason.");
    WSUM_LINES(auth_failures, 1, GW_AUTH_FAIL__COUNT, "wsgate_auth_failures_total", "reason", auth_fail_name);

    family(&sb, "wsgate_api_requests_total", "counter", "Server API requests (/api/*), by HTTP status of the answer.");
    WSUM_LINES(api_requests, 0, GW_API_CODES, "wsgate_api_requests_total", "code", api_code_name);

    family(&sb, "wsgate_outbound_queue_bytes", "gauge", "Bytes queued for clients and not yet written.");
    sb_printf(&sb, "wsgate_outbound_queue_bytes %llu\n", (unsigned long long)WSUM(outq_bytes));
    family(&sb, "wsgate_outbound_queue_messages", "gauge", "Messages queued for clients and not yet written.");
    sb_printf(&sb, "wsgate_outbound_queue_messages %llu\n", (unsigned long long)WSUM(outq_messages));
    family(&sb, "wsgate_frames_live", "gauge", "Encoded message buffers alive in the process.");
    sb_printf(&sb, "wsgate_frames_live %ld\n", gw_frame_live_count());

    family(&sb, "wsgate_redis_connected", "gauge", "1 while both Redis connections are up and the heartbeat echo is fresh.");
    sb_printf(&sb, "wsgate_redis_connected %llu\n", (unsigned long long)gw_stat_get(&bus->redis_connected));
    family(&sb, "wsgate_redis_link_state", "gauge",
           "1 for the state the Redis link is in: down, resolving (asking the Sentinels for the master), connecting, "
           "loading (the Function library), proving "
           "(waiting for the first heartbeat echo), live, resetting.");
    for (int s = 0; s < GW_REDIS_LINK_STATES; s++)
        sb_printf(&sb, "wsgate_redis_link_state{state=\"%s\"} %d\n", gw_redis_link_state_names[s],
                  gw_stat_get(&bus->redis_link_state) == (uint64_t)s);
    family(&sb, "wsgate_redis_connection_ready", "gauge",
           "1 while the link's connection of that role (sub: subscriptions, pub: commands, sentinel: the Sentinel "
           "watcher subscribed to +switch-master) is connected and set up.");
    for (int r = 0; r < GW_REDIS_ROLE__COUNT; r++)
        sb_printf(&sb, "wsgate_redis_connection_ready{role=\"%s\"} %llu\n", gw_redis_role_names[r],
                  (unsigned long long)gw_stat_get(&bus->redis_conn_ready[r]));
    family(&sb, "wsgate_redis_reconnects_total", "counter", "Redis reconnect attempts after a lost or failed link.");
    sb_printf(&sb, "wsgate_redis_reconnects_total %llu\n", (unsigned long long)gw_stat_get(&bus->redis_reconnects));
    family(&sb, "wsgate_redis_master_switches_total", "counter",
           "Times the Sentinels' master, confirmed by ROLE, was another than the one before (redis+sentinel://).");
    sb_printf(&sb, "wsgate_redis_master_switches_total %llu\n",
              (unsigned long long)gw_stat_get(&bus->redis_master_switches));
    family(&sb, "wsgate_redis_heartbeat_rtt_seconds", "gauge", "Round trip of the last heartbeat PUBLISH echoed back through the subscription.");
    sb_printf(&sb, "wsgate_redis_heartbeat_rtt_seconds %.6f\n", (double)gw_stat_get(&bus->heartbeat_rtt_us) / 1e6);

    family(&sb, "wsgate_redis_redirects_total", "counter", "Cluster mode: MOVED and ASK answers followed to another master.");
    sb_printf(&sb, "wsgate_redis_redirects_total %llu\n", (unsigned long long)gw_stat_get(&bus->redis_redirects));

    uint64_t masters = gw_stat_get(&bus->redis_masters);
    family(&sb, "wsgate_redis_masters", "gauge", "Cluster mode: masters the node's cluster link connects to (0: not cluster mode).");
    sb_printf(&sb, "wsgate_redis_masters %llu\n", (unsigned long long)masters);
    family(&sb, "wsgate_redis_slot_moves_total", "counter",
           "Cluster mode: slots that changed master (a failover, a migrated slot) while the link was live; their "
           "channels are subscribed on the new master and repaired, every other master's go on.");
    sb_printf(&sb, "wsgate_redis_slot_moves_total %llu\n", (unsigned long long)gw_stat_get(&bus->redis_slot_moves));
    family(&sb, "wsgate_redis_map_queries_total", "counter",
           "Cluster mode: CLUSTER SHARDS queries this node started (every 5 s, every 250 ms while hurried, and on "
           "MOVED, ASK, a dropped subscription or a lost master, coalesced).");
    sb_printf(&sb, "wsgate_redis_map_queries_total %llu\n", (unsigned long long)gw_stat_get(&bus->redis_map_queries));
    family(&sb, "wsgate_redis_map_hurried", "gauge",
           "Cluster mode: 1 while a master of the link is down or a slot has no master, and the map is re-read every "
           "250 ms to find the replica the cluster promotes.");
    sb_printf(&sb, "wsgate_redis_map_hurried %llu\n", (unsigned long long)gw_stat_get(&bus->redis_map_hurried));
    if (masters)
        master_metrics(&sb, bus);
    history_metrics(&sb, bus);

    *out = sb.buf;
    return sb.len;
}
