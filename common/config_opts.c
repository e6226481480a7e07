/* The option table and what each option's value does to a struct gw_config:
 * one value checked and set (defaults go through the same setter), and the
 * release of everything those setters allocate. config.c decides when. */
#include "config_opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "text.h"
#include "channel.h"
#include "pattern.h"

#define PREFIX_MAX 64
#define MIB (1024LL * 1024)

#define INT_OPT(n, field, lo, hi, d, h)                                                 \
    { n, OPT_INT, offsetof(struct gw_config, field), lo, hi, d, NULL, h }
#define SIZE_OPT(n, field, lo, hi, d, h)                                                \
    { n, OPT_SIZE, offsetof(struct gw_config, field), lo, hi, d, NULL, h }
#define TYPED_OPT(n, type, field, dt, h)                                                \
    { n, type, offsetof(struct gw_config, field), 0, 0, NULL, dt, h }

const struct gw_config_opt gw_config_opt_table[] = {
    { "listen", OPT_LISTEN, 0, 0, 0, "0.0.0.0:8080", NULL,
      "address to listen on: host:port, [v6]:port or :port" },
    { "redis-url", OPT_REDIS_URL, 0, 0, 0, NULL, "(standalone)",
      "redis://[[user]:password@]host[:port][/db], unix:///path[?db=N] or "
      "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master>[?db=N] (rediss[+sentinel]:// for "
      "TLS); unset: no Redis" },
    TYPED_OPT("redis-sentinel-user", OPT_STR, redis_sentinel_user, "(none)",
              "ACL user for AUTH on the Sentinels (redis+sentinel://); needs --redis-sentinel-password"),
    TYPED_OPT("redis-sentinel-password", OPT_SECRET, redis_sentinel_password, "(no AUTH)",
              "password for AUTH on the Sentinels, which may differ from the master's (the URL's)"),
    TYPED_OPT("redis-tls-ca-file", OPT_STR, redis_tls_ca_file, "(system CA store)",
              "PEM CA certificates that verify the Redis server's certificate (rediss://)"),
    TYPED_OPT("redis-tls-cert-file", OPT_STR, redis_tls_cert_file, "(none)",
              "PEM client certificate (chain) for Redis mTLS; needs --redis-tls-key-file"),
    TYPED_OPT("redis-tls-key-file", OPT_STR, redis_tls_key_file, "(none)",
              "PEM private key of --redis-tls-cert-file"),
    TYPED_OPT("redis-tls-server-name", OPT_STR, redis_tls_server_name, "(the URL's host)",
              "name the Redis certificate must carry (and SNI), when it differs from the URL's host"),
    INT_OPT("redis-tls-insecure", redis_tls_insecure, 0, 1, "0",
            "1: do not verify the Redis server's certificate or name (logged as a warning; testing only)"),
    { "channel-prefix", OPT_PREFIX, 0, 0, 0, "gw:", NULL,
      "prefix of every Redis channel name (0..64 channel-name bytes, not under __wsgate:)" },
    { "node-id", OPT_NODE_ID, 0, 0, 0, NULL, "<hostname>-<pid>",
      "name of this node in logs and metrics (1..64 channel-name bytes)" },
    INT_OPT("workers", workers, 1, GW_WORKERS_MAX, "1", "WebSocket service threads"),
    SIZE_OPT("max-frame-bytes", max_frame_bytes, 128, 16 * MIB, "65536",
             "largest client message accepted"),
    SIZE_OPT("max-message-bytes", max_message_bytes, 128, 64 * MIB, "262144",
             "largest Redis payload delivered; larger ones are dropped"),
    INT_OPT("max-subscriptions", max_subscriptions, 1, 100000, "64",
            "channels one client may hold"),
    INT_OPT("max-connections", max_connections, 0, 10000000, "0",
            "WebSocket clients per node; further upgrades are refused (0: no limit)"),
    INT_OPT("max-connections-per-ip", max_connections_per_ip, 0, 10000000, "0",
            "WebSocket clients per TCP peer address, all workers together (0: no limit)"),
    INT_OPT("max-http-connections", max_http_connections, 1, 10000000, "1024",
            "plain HTTP connections (probes, scrapes, API calls, requests not yet read) per node; more are "
            "closed at accept"),
    INT_OPT("max-http-connections-per-ip", max_http_connections_per_ip, 0, 10000000, "0",
            "plain HTTP connections (handshakes included) per TCP peer address, all workers together (0: no limit)"),
    INT_OPT("http-timeout", http_timeout_s, 1, 3600, "10",
            "seconds a connection has, from accept, to send its request head and body (not renewed by each byte)"),
    INT_OPT("demo-page", demo_page, 0, 1, "1",
            "1: serve the demo page at / (a development aid); 0: / answers 404"),
    { "allowed-origins", OPT_ORIGINS, 0, 0, 0, NULL, "(same host)",
      "browser origins allowed to connect, comma-separated: https://app.example.com, "
      "https://*.example.com, *.example.com; unset: only the request's own Host" },
    SIZE_OPT("queue-max-messages", queue_max_messages, 1, 1000000, "1024",
             "messages queued per client before it is evicted"),
    SIZE_OPT("queue-max-bytes", queue_max_bytes, 1, 1024 * 1024 * MIB, "4194304",
             "bytes queued per client before it is evicted"),
    INT_OPT("client-rate", client_rate, 1, 1000000, "200", "client messages per second"),
    INT_OPT("client-burst", client_burst, 1, 100000000, "400",
            "client messages allowed in a burst"),
    INT_OPT("ping-interval", ping_interval_s, 1, 3600, "25", "seconds between pings"),
    INT_OPT("idle-timeout", idle_timeout_s, 1, 86400, "60",
            "seconds of client silence before close 4001"),
    INT_OPT("socket-sndbuf", socket_sndbuf, 0, 64 * 1024 * 1024, "0",
            "kernel send buffer per client socket in bytes (0: kernel autotuning, up to tcp_wmem max)"),
    INT_OPT("tcp-nodelay", tcp_nodelay, 0, 1, "1",
            "1: send each write at once (TCP_NODELAY); 0: let Nagle merge small writes under load"),
    INT_OPT("coalesce-ms", coalesce_ms, 0, 1000, "0",
            "hand messages to clients at most every N ms per worker thread (0: at once)"),
    INT_OPT("drain-timeout", drain_timeout_s, 0, 3600, "10",
            "seconds to let clients leave after SIGTERM"),
    INT_OPT("redis-connect-timeout-ms", redis_connect_timeout_ms, 1, 600000, "2000",
            "Redis connect timeout"),
    INT_OPT("redis-heartbeat-interval-ms", redis_heartbeat_interval_ms, 50, 60000, "1000",
            "interval of heartbeat PUBLISHes echoed back through the subscription"),
    INT_OPT("redis-heartbeat-timeout-ms", redis_heartbeat_timeout_ms, 1, 600000, "3000",
            "missing heartbeat echo before the link is declared dead and reconnected"),
    INT_OPT("redis-backoff-min-ms", redis_backoff_min_ms, 1, 600000, "100",
            "first reconnect delay"),
    INT_OPT("redis-backoff-max-ms", redis_backoff_max_ms, 1, 600000, "2000",
            "reconnect delay cap"),
    INT_OPT("resubscribe-batch", resubscribe_batch, 1, 100000, "256",
            "channels per SUBSCRIBE command after a reconnect"),
    SIZE_OPT("max-inbox-bytes", max_inbox_bytes, 1 * MIB, 16 * 1024 * MIB, "67108864",
             "bytes waiting in a worker's inbox before the node stops reading Redis; also bounds the "
             "bus inbox and the publishes waiting for Redis"),
    INT_OPT("history-size", history_size, 1, 1000000, "1000",
            "messages kept per channel for recovery (approximate), for client and API publishes"),
    INT_OPT("history-ttl", history_ttl_s, 1, 315360000, "86400",
            "seconds a channel's history outlives its last publish"),
    { "history-channels", OPT_PATTERNS, offsetof(struct gw_config, history_channels), 0, 0, "*", NULL,
      "comma-separated channel patterns whose client and API publishes are stored in history "
      "(recoverable); others are published without history; empty: none" },
    TYPED_OPT("presence-channels", OPT_PATTERNS, presence_channels, "(none)",
              "comma-separated channel patterns that keep presence (who is subscribed; docs/PROTOCOL.md "
              "\"Presence\"); empty: none"),
    INT_OPT("presence-leave-delay", presence_leave_delay_s, 0, 3600, "3",
            "seconds a connection that left stays a member, so a reconnect within them makes no leave or join"),
    INT_OPT("presence-max-members", presence_max_members, 0, 1000000000, "1000",
            "connections in one channel above which join/leave events stop (counts go on; 0: no limit)"),
    SIZE_OPT("client-store-bytes", client_store_bytes, 0, 1024 * MIB, "4194304",
             "bytes of history one client may store per --client-store-window (payload x 1.25 + 64 per "
             "message + 8192 per channel it creates); more get store_limited (0: no limit)"),
    INT_OPT("client-store-window", client_store_window_s, 0, 315360000, "0",
            "seconds over which --client-store-bytes refills (0: --history-ttl)"),
    INT_OPT("recovery-max-messages", recovery_max_messages, 1, 1000000, "1000",
            "most missed messages one recovery replays; more answer recovered:false"),
    INT_OPT("max-recoveries", max_recoveries, 1, 1000000, "10000",
            "recoveries and history requests waiting or running on the node; more answer "
            "recovered:false / unavailable"),
    TYPED_OPT("jwt-hmac-secret-file", OPT_STR, jwt_hmac_secret_file, "(none)",
              "file holding the HS256/384/512 secret (at least 32 bytes; one trailing newline dropped)"),
    TYPED_OPT("jwt-public-key-files", OPT_FILES, jwt_public_key_files, "(none)",
              "comma-separated PEM public keys (RSA >= 2048 bits, EC P-256/P-384); kid = base name"),
    TYPED_OPT("jwt-issuer", OPT_STR, jwt_issuer, "(not checked)", "required \"iss\" of tokens"),
    TYPED_OPT("jwt-audience", OPT_STR, jwt_audience, "(not checked)",
              "value \"aud\" of tokens must hold"),
    INT_OPT("jwt-leeway", jwt_leeway_s, 0, 86400, "30",
            "seconds of clock skew allowed for exp, nbf and iat"),
    SIZE_OPT("max-token-bytes", max_token_bytes, 64, 1 * MIB, "8192",
             "longest token accepted (auth frame or ?token=)"),
    INT_OPT("auth-timeout", auth_timeout_s, 1, 3600, "5",
            "seconds a client without anonymous rights has to authenticate before close 4004"),
    TYPED_OPT("anonymous-subscribe", OPT_PATTERNS, anonymous_subscribe, "(nothing)",
              "comma-separated channel patterns clients may subscribe to without a token"),
    TYPED_OPT("anonymous-publish", OPT_PATTERNS, anonymous_publish, "(nothing)",
              "comma-separated channel patterns clients may publish to without a token"),
    TYPED_OPT("anonymous-presence", OPT_PATTERNS, anonymous_presence, "(where they may subscribe)",
              "comma-separated channel patterns whose presence clients without a token may read (also needs subscribe)"),
    TYPED_OPT("api-key-file", OPT_STR, api_key_file, "(API off)",
              "file of keys for POST /api/publish, one per line (rotation: several); unset: the API answers 404"),
    { "api-listen", OPT_API_LISTEN, 0, 0, 0, NULL, "(on --listen)",
      "serve the publish API only on this host:port (then --listen answers 404 for it)" },
    SIZE_OPT("max-api-body-bytes", max_api_body_bytes, 128, 64 * MIB, "65536",
             "largest POST /api/publish body; a larger one gets 413 unread"),
    INT_OPT("publish-idempotency-window", publish_idempotency_window_min, 1, 1440, "5",
            "minutes a POST /api/publish idempotency_key is remembered cluster-wide: a retry with it "
            "gets the first answer and publishes nothing"),
    { "log-level", OPT_LOG_LEVEL, 0, 0, 0, "info", NULL, "error, warn, info or debug" },
    { "log-format", OPT_LOG_FORMAT, 0, 0, 0, "text", NULL, "text or json" },
    { "help", OPT_FLAG, 0, 0, 0, NULL, "", "print this help and exit (also -h)" },
    { "version", OPT_FLAG, 0, 0, 0, NULL, "", "print the version and exit" },
};

const size_t gw_config_opt_count = sizeof gw_config_opt_table / sizeof gw_config_opt_table[0];

void gw_config_opt_env_name(const struct gw_config_opt *o, char *out, size_t outlen)
{
    size_t n = strlen(GW_CONFIG_ENV_PREFIX);

    memcpy(out, GW_CONFIG_ENV_PREFIX, n);
    for (const char *p = o->name; *p && n + 1 < outlen; p++)
        out[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[n] = '\0';
}

const struct gw_config_opt *gw_config_opt_find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < gw_config_opt_count; i++) {
        if (strlen(gw_config_opt_table[i].name) == len && memcmp(gw_config_opt_table[i].name, name, len) == 0)
            return &gw_config_opt_table[i];
    }
    return NULL;
}

const struct gw_config_opt *gw_config_opt_find_env(const char *name, size_t len)
{
    char buf[64];

    for (size_t i = 0; i < gw_config_opt_count; i++) {
        if (gw_config_opt_table[i].type == OPT_FLAG)
            continue;
        gw_config_opt_env_name(&gw_config_opt_table[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, name, len) == 0)
            return &gw_config_opt_table[i];
    }
    return NULL;
}

/* ---- value parsers ---- */

static bool channel_chars(const char *s, size_t len)
{
    return len == 0 || gw_channel_valid(s, len);
}

static void replace_str(char **slot, const char *val)
{
    free(*slot);
    *slot = gw_xstrdup(val);
}

/* Frees a secret option, wiping it first so it does not linger in freed heap. */
static void free_secret(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

static void strlist_clear(struct gw_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Splits a comma-separated value into *out (items trimmed of spaces; empty
 * value = empty list). patterns: every item must pass gw_pattern_valid,
 * else each item must be non-empty. On failure *out is untouched. */
static int strlist_parse(struct gw_strlist *out, const char *val, bool patterns, const char *src,
                         char *err, size_t errlen)
{
    struct gw_strlist l = { NULL, 0 };
    const char *p = val;

    while (*p == ' ')
        p++;
    while (*p) {
        const char *end = strchr(p, ','), *stop;
        char *item;

        if (!end)
            end = p + strlen(p);
        stop = end;
        while (stop > p && stop[-1] == ' ')
            stop--;
        item = gw_xstrndup(p, (size_t)(stop - p));
        if (patterns ? !gw_pattern_valid(item) : item[0] == '\0') {
            int rc = patterns ? gw_text_err(err, errlen,
                                            "%s: \"%.80s\" is not a channel pattern (channel-name "
                                            "bytes and {sub}, at most one '*', only at the end)",
                                            src, item)
                              : gw_text_err(err, errlen, "%s: empty item in a comma-separated list", src);
            free(item);
            strlist_clear(&l);
            return rc;
        }
        l.v = gw_xrealloc(l.v, (l.n + 1) * sizeof l.v[0]);
        l.v[l.n++] = item;
        p = *end ? end + 1 : end;
        while (*p == ' ')
            p++;
    }
    strlist_clear(out);
    *out = l;
    return 0;
}

int gw_config_opt_set(struct gw_config *cfg, const struct gw_config_opt *o, const char *val, const char *src,
                   char *err, size_t errlen)
{
    char *base = (char *)cfg;
    size_t len = strlen(val);
    long long v;
    int rc;

    switch (o->type) {
    case OPT_INT:
    case OPT_SIZE:
        if (gw_text_parse_ll(val, &v) != 0 || v < o->min || v > o->max)
            return gw_text_err(err, errlen, "%s: expected an integer in %lld..%lld, got \"%.64s\"",
                           src, o->min, o->max, val);
        if (o->type == OPT_INT)
            *(int *)(base + o->off) = (int)v;
        else
            *(size_t *)(base + o->off) = (size_t)v;
        return 0;
    case OPT_LISTEN: {
        char *host, reason[160];
        int port;

        if (gw_addr_parse_listen(val, &host, &port, reason, sizeof reason) != 0)
            return gw_text_err(err, errlen, "%s: %s", src, reason);
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        return 0;
    }
    case OPT_REDIS_URL: {
        struct gw_redis_addr addr;
        char reason[160];

        /* Empty means standalone, so a deployment template can always set
         * the variable. */
        if (len == 0) {
            gw_addr_redis_deinit(&cfg->redis);
            free(cfg->redis_url);
            cfg->redis_url = NULL;
            return 0;
        }
        rc = gw_addr_parse_redis(val, &addr, reason, sizeof reason);
        if (rc != 0)
            return gw_text_err(err, errlen, "%s: %s", src, reason);
        gw_addr_redis_deinit(&cfg->redis);
        cfg->redis = addr;
        replace_str(&cfg->redis_url, val);
        return 0;
    }
    case OPT_PREFIX:
        if (len > PREFIX_MAX || !channel_chars(val, len))
            return gw_text_err(err, errlen,
                           "%s: expected at most %d bytes of A-Z a-z 0-9 _ - : . @ / =, got "
                           "\"%.80s\"",
                           src, PREFIX_MAX, val);
        /* Every channel under it would be the node's own: nothing left to serve. */
        if (strncmp(val, GW_CHANNEL_RESERVED, sizeof GW_CHANNEL_RESERVED - 1) == 0)
            return gw_text_err(err, errlen, "%s: \"%s\" names are reserved for the nodes, got \"%.80s\"",
                               src, GW_CHANNEL_RESERVED, val);
        replace_str(&cfg->channel_prefix, val);
        return 0;
    case OPT_NODE_ID:
        if (len == 0 || len > GW_CONFIG_NODE_ID_MAX || !channel_chars(val, len))
            return gw_text_err(err, errlen,
                           "%s: expected 1..%d bytes of A-Z a-z 0-9 _ - : . @ / =, got \"%.80s\"",
                           src, GW_CONFIG_NODE_ID_MAX, val);
        replace_str(&cfg->node_id, val);
        return 0;
    case OPT_API_LISTEN: {
        char *host, reason[160];
        int port;

        if (len == 0) {
            free(cfg->api_listen_host);
            cfg->api_listen_host = NULL;
            return 0;
        }
        if (gw_addr_parse_listen(val, &host, &port, reason, sizeof reason) != 0)
            return gw_text_err(err, errlen, "%s: %s", src, reason);
        free(cfg->api_listen_host);
        cfg->api_listen_host = host;
        cfg->api_listen_port = port;
        return 0;
    }
    case OPT_LOG_LEVEL:
        if (gw_log_level_parse(val, &cfg->log_level) != 0)
            return gw_text_err(err, errlen,
                           "%s: expected error, warn, info or debug, got \"%.64s\"", src, val);
        return 0;
    case OPT_LOG_FORMAT:
        if (gw_log_format_parse(val, &cfg->log_format) != 0)
            return gw_text_err(err, errlen, "%s: expected text or json, got \"%.64s\"", src, val);
        return 0;
    case OPT_STR:
    case OPT_SECRET: {
        char **slot = (char **)(base + o->off);

        /* Empty unsets, so a deployment template can always set the variable. */
        free_secret(*slot);
        *slot = len ? gw_xstrdup(val) : NULL;
        return 0;
    }
    case OPT_FILES:
    case OPT_PATTERNS:
        return strlist_parse((struct gw_strlist *)(base + o->off), val, o->type == OPT_PATTERNS, src,
                             err, errlen);
    case OPT_ORIGINS: {
        char reason[200];

        if (gw_origin_list_parse(&cfg->origins, val, reason, sizeof reason) != 0)
            return gw_text_err(err, errlen, "%s: %s", src, reason);
        replace_str(&cfg->allowed_origins, val);
        return 0;
    }
    case OPT_FLAG:
        break;
    }
    return gw_text_err(err, errlen, "%s: takes no value", src);
}

/* ---- release ---- */

void gw_config_opt_release(struct gw_config *cfg)
{
    free(cfg->listen_host);
    free(cfg->redis_url);
    free(cfg->channel_prefix);
    free(cfg->node_id);
    free(cfg->jwt_hmac_secret_file);
    free(cfg->jwt_issuer);
    free(cfg->jwt_audience);
    strlist_clear(&cfg->jwt_public_key_files);
    strlist_clear(&cfg->anonymous_subscribe);
    strlist_clear(&cfg->anonymous_publish);
    strlist_clear(&cfg->history_channels);
    strlist_clear(&cfg->presence_channels);
    strlist_clear(&cfg->anonymous_presence);
    free(cfg->api_key_file);
    free(cfg->redis_tls_ca_file);
    free(cfg->redis_tls_cert_file);
    free(cfg->redis_tls_key_file);
    free(cfg->redis_tls_server_name);
    free(cfg->redis_sentinel_user);
    free_secret(cfg->redis_sentinel_password);
    free(cfg->api_listen_host);
    free(cfg->allowed_origins);
    gw_origin_list_deinit(&cfg->origins);
    gw_addr_redis_deinit(&cfg->redis);
}
