/* Node configuration: defaults, WSGATE_* environment variables, then
 * command-line flags (flags win), then validation. Filled once at startup and
 * read-only afterwards, so every thread may read it without a lock. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "addr.h"
#include "log.h"
#include "origin.h"

/* A comma-separated option value split into its items; owned by the config. */
struct gw_strlist {
    char **v;
    size_t n;
};

/* Most worker threads: the bus keeps each channel's workers in a 64-bit mask,
 * and a session id carries its worker's index in bits 56..62 (main.c and
 * worker_lws.c assert both). */
#define GW_WORKERS_MAX 64

struct gw_config {
    char *listen_host; /* owned; "0.0.0.0" by default */
    int listen_port;
    char *redis_url; /* owned, NULL = standalone mode */
    struct gw_redis_addr redis; /* parsed from redis_url, owned */
    char *channel_prefix; /* owned */
    char *node_id; /* owned; hostname-pid by default */
    int workers; /* lws service threads, 1..GW_WORKERS_MAX */

    size_t max_frame_bytes; /* inbound message limit */
    size_t max_message_bytes; /* Redis payload limit */
    int max_subscriptions; /* per client */
    int max_connections; /* per node, 0 = unlimited */
    int max_connections_per_ip; /* per peer address over all workers, 0 = unlimited */
    int max_http_connections; /* plain HTTP connections per node */
    int max_http_connections_per_ip; /* per peer address over all workers, 0 = unlimited */
    int http_timeout_s; /* total, from accept, for a request's head and body */
    int demo_page; /* 1: serve the demo page at / */
    char *allowed_origins; /* owned, as given; NULL = unset (same-host rule) */
    struct gw_origin_list origins; /* parsed from allowed_origins; empty = same-host rule */
    size_t queue_max_messages;
    size_t queue_max_bytes;
    int client_rate; /* messages/s sustained */
    int client_burst;
    int ping_interval_s;
    int idle_timeout_s;
    int drain_timeout_s;
    int coalesce_ms; /* min interval between inbox drains of a worker */
    int tcp_nodelay; /* 1: TCP_NODELAY on client sockets */
    int socket_sndbuf; /* SO_SNDBUF of client sockets, 0 = kernel default */

    int redis_connect_timeout_ms;
    int redis_heartbeat_interval_ms;
    int redis_heartbeat_timeout_ms;
    int redis_backoff_min_ms;
    int redis_backoff_max_ms;
    int resubscribe_batch;

    /* History (docs/PROTOCOL.md "History and recovery"). */
    int history_size; /* XADD MAXLEN ~ of client and API publishes */
    int history_ttl_s;
    struct gw_strlist history_channels; /* patterns of channels whose client/API publishes are stored */
    struct gw_strlist presence_channels; /* patterns of channels that keep presence; empty: none */
    int presence_leave_delay_s; /* a departed connection stays a member this long */
    int presence_max_members; /* above it no join/leave events; 0 = no limit */
    size_t client_store_bytes; /* history bytes one client may store per window, 0 = no limit */
    int client_store_window_s; /* 0 = history_ttl_s */
    int recovery_max_messages;
    int max_recoveries; /* waiting + running reads for clients, per node */
    size_t max_inbox_bytes; /* per worker inbox; bus inbox; publish bytes in flight */

    /* Access control (docs/PROTOCOL.md "Authentication"). The keys are
     * loaded by the gateway at startup; here they are only paths. */
    char *jwt_hmac_secret_file; /* owned, NULL = no HMAC secret */
    struct gw_strlist jwt_public_key_files; /* PEM paths; kid = base name */
    char *jwt_issuer; /* owned, NULL = "iss" not checked */
    char *jwt_audience; /* owned, NULL = "aud" not checked */
    int jwt_leeway_s;
    size_t max_token_bytes;
    int auth_timeout_s; /* without anonymous rights: close 4004 after this */
    struct gw_strlist anonymous_subscribe; /* patterns (pattern.h), {sub} never matches */
    struct gw_strlist anonymous_publish;
    struct gw_strlist anonymous_presence; /* narrows anonymous presence reads; empty: subscribe rights */
    char *api_key_file; /* owned, NULL = HTTP publish API off */
    /* TLS to Redis (rediss://): verified against the system store unless a
     * CA file is given; a client certificate for mTLS. Paths only. */
    char *redis_tls_ca_file;     /* owned, NULL = the system CA store */
    char *redis_tls_cert_file;   /* owned, NULL = no client certificate */
    char *redis_tls_key_file;    /* owned, with cert_file */
    char *redis_tls_server_name; /* owned, NULL = the URL's host */
    int redis_tls_insecure;      /* 1: no verification at all (warned at startup) */
    /* AUTH on the Sentinels of a redis+sentinel:// URL (the URL's user info
     * is the master's). */
    char *redis_sentinel_user;     /* owned, NULL = default user */
    char *redis_sentinel_password; /* owned, wiped on release; NULL = no AUTH */
    char *api_listen_host; /* owned, NULL = the API is served on --listen */
    int api_listen_port;
    size_t max_api_body_bytes;
    int publish_idempotency_window_min;

    enum gw_log_level log_level;
    enum gw_log_format log_format;

    bool show_help;
    bool show_version;
};

/* Payload bytes one history reply carries at most (about; the first message
 * always comes): an eighth of a client's queue, so that the reply fits the
 * queue even when every payload is escaped (up to 6x). The bus asks Redis for
 * this much; the session charges the client's rate budget for it. */
static inline size_t gw_config_history_reply_bytes(const struct gw_config *cfg)
{
    return cfg->queue_max_bytes / 8;
}

/* True when publishes of clients and of the HTTP API to channel (client
 * name, NUL-terminated) are stored in its history (--history-channels);
 * otherwise they are plain PUBLISHes. Any thread. */
bool gw_config_keeps_history(const struct gw_config *cfg, const char *channel);
/* True when channel (client-facing name) matches --presence-channels. */
bool gw_config_keeps_presence(const struct gw_config *cfg, const char *channel);

/* Fills defaults. Allocates owned strings: always pair with gw_config_deinit. */
void gw_config_init(struct gw_config *cfg);
void gw_config_deinit(struct gw_config *cfg);

/* Applies envp (NULL-terminated "NAME=value" array, may be NULL) then argv
 * (argv[0] skipped) and validates. Accepts "--flag value" and "--flag=value".
 * Returns 0, or -EINVAL with a one-line reason in err (errlen bytes).
 * --help / --version set show_help / show_version and return 0. */
int gw_config_load(struct gw_config *cfg, int argc, char **argv, char **envp,
                   char *err, size_t errlen);

/* Prints every flag with its environment variable, default and meaning. */
void gw_config_usage(FILE *out);

/* Logs the effective configuration (password masked) at info level. */
void gw_config_log(const struct gw_config *cfg);

#endif
