/* Node configuration: the order of its sources (defaults, WSGATE_*
 * variables, then flags), the checks across options, and the questions asked
 * of it. The option table and each value's parsing live in config_opts.c. */
#include "config.h"
#include "config_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "channel.h"
#include "pattern.h"
#include "text.h"

/* ---- load, validate ---- */

static void default_node_id(struct gw_config *cfg)
{
    char host[256];
    char pid[24];
    char id[GW_CONFIG_NODE_ID_MAX + 1];
    size_t hlen, plen;

    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        strcpy(host, "wsgate");
    host[sizeof host - 1] = '\0';
    /* Hostnames are nearly always channel-safe; map the rest to '_'. */
    for (char *p = host; *p; p++) {
        if (!gw_channel_valid(p, 1))
            *p = '_';
    }
    plen = (size_t)snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    hlen = strlen(host);
    if (hlen > GW_CONFIG_NODE_ID_MAX - plen)
        hlen = GW_CONFIG_NODE_ID_MAX - plen;
    memcpy(id, host, hlen);
    memcpy(id + hlen, pid, plen + 1);
    cfg->node_id = gw_xstrdup(id);
}

/* Does channel match one of the patterns (no subject: {sub} matches nothing)? */
static bool matches_any(const struct gw_strlist *patterns, const char *channel)
{
    for (size_t i = 0; i < patterns->n; i++) {
        if (gw_pattern_match(patterns->v[i], NULL, channel))
            return true;
    }
    return false;
}

bool gw_config_keeps_history(const struct gw_config *cfg, const char *channel)
{
    return matches_any(&cfg->history_channels, channel);
}

bool gw_config_keeps_presence(const struct gw_config *cfg, const char *channel)
{
    return matches_any(&cfg->presence_channels, channel);
}

void gw_config_init(struct gw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < gw_config_opt_count; i++) {
        const struct gw_config_opt *o = &gw_config_opt_table[i];

        if (o->def && gw_config_opt_set(cfg, o, o->def, "default", NULL, 0) != 0)
            abort(); /* a broken default in config_opts.c's table */
    }
    default_node_id(cfg);
}

void gw_config_deinit(struct gw_config *cfg)
{
    gw_config_opt_release(cfg);
    memset(cfg, 0, sizeof *cfg);
}

static int validate(const struct gw_config *cfg, char *err, size_t errlen)
{
    /* A message frame adds the channel and about 40 bytes of envelope to a
     * payload; a queue that cannot hold one would evict every subscriber. */
    if (cfg->queue_max_bytes < cfg->max_message_bytes + 512)
        return gw_text_err(err, errlen,
                       "--queue-max-bytes (%zu) must be at least --max-message-bytes + 512 (%zu)",
                       cfg->queue_max_bytes, cfg->max_message_bytes + 512);
    if (cfg->queue_max_bytes < cfg->max_frame_bytes)
        return gw_text_err(err, errlen,
                       "--queue-max-bytes (%zu) must be at least --max-frame-bytes (%zu)",
                       cfg->queue_max_bytes, cfg->max_frame_bytes);
    if (cfg->idle_timeout_s <= cfg->ping_interval_s)
        return gw_text_err(err, errlen,
                       "--idle-timeout (%d) must be greater than --ping-interval (%d)",
                       cfg->idle_timeout_s, cfg->ping_interval_s);
    if (cfg->redis_heartbeat_timeout_ms <= cfg->redis_heartbeat_interval_ms)
        return gw_text_err(err, errlen,
                       "--redis-heartbeat-timeout-ms (%d) must be greater than "
                       "--redis-heartbeat-interval-ms (%d)",
                       cfg->redis_heartbeat_timeout_ms, cfg->redis_heartbeat_interval_ms);
    if (cfg->redis_backoff_max_ms < cfg->redis_backoff_min_ms)
        return gw_text_err(err, errlen,
                       "--redis-backoff-max-ms (%d) must be at least --redis-backoff-min-ms (%d)",
                       cfg->redis_backoff_max_ms, cfg->redis_backoff_min_ms);
    bool tls_opts = cfg->redis_tls_ca_file || cfg->redis_tls_cert_file || cfg->redis_tls_key_file ||
                    cfg->redis_tls_server_name || cfg->redis_tls_insecure;
    if (tls_opts && !cfg->redis.tls)
        return gw_text_err(err, errlen, "--redis-tls-* options need a rediss:// or rediss+sentinel:// --redis-url");
    if (!cfg->redis_tls_cert_file != !cfg->redis_tls_key_file)
        return gw_text_err(err, errlen, "--redis-tls-cert-file and --redis-tls-key-file go together");
    if (cfg->redis_tls_insecure && (cfg->redis_tls_ca_file || cfg->redis_tls_server_name))
        return gw_text_err(err, errlen,
                           "--redis-tls-insecure turns verification off: it cannot go with "
                           "--redis-tls-ca-file or --redis-tls-server-name");
    if ((cfg->redis_sentinel_user || cfg->redis_sentinel_password) && !cfg->redis.master_name)
        return gw_text_err(err, errlen, "--redis-sentinel-* options need a redis+sentinel:// --redis-url");
    if (cfg->redis_sentinel_user && !cfg->redis_sentinel_password)
        return gw_text_err(err, errlen, "--redis-sentinel-user needs --redis-sentinel-password");
    if (cfg->api_listen_host && !cfg->api_key_file)
        return gw_text_err(err, errlen, "--api-listen needs --api-key-file (without keys the API is off)");
    return 0;
}

static int load_env(struct gw_config *cfg, char **envp, char *err, size_t errlen)
{
    for (char **e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        const struct gw_config_opt *o;
        char name[64];

        if (strncmp(*e, GW_CONFIG_ENV_PREFIX, strlen(GW_CONFIG_ENV_PREFIX)) != 0 || !eq)
            continue;
        /* Unknown WSGATE_* names are ignored: the same environment may
         * serve other versions or helper scripts. */
        o = gw_config_opt_find_env(*e, (size_t)(eq - *e));
        if (!o)
            continue;
        gw_config_opt_env_name(o, name, sizeof name);
        if (gw_config_opt_set(cfg, o, eq + 1, name, err, errlen) != 0)
            return -EINVAL;
    }
    return 0;
}

static int load_argv(struct gw_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val;
        const struct gw_config_opt *o;
        size_t nlen;
        char src[64];

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return gw_text_err(err, errlen, "unexpected argument \"%.64s\" (see --help)", a);
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        o = gw_config_opt_find_flag(name, nlen);
        if (!o)
            return gw_text_err(err, errlen, "unknown option --%.*s (see --help)", (int)nlen, name);
        snprintf(src, sizeof src, "--%s", o->name);
        if (o->type == OPT_FLAG)
            return gw_text_err(err, errlen, "%s: takes no value", src);
        if (eq) {
            val = eq + 1;
        } else {
            /* "--workers --listen x" is a forgotten value, not a value. */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return gw_text_err(err, errlen, "%s: missing value", src);
            val = argv[++i];
        }
        if (gw_config_opt_set(cfg, o, val, src, err, errlen) != 0)
            return -EINVAL;
    }
    return 0;
}

int gw_config_load(struct gw_config *cfg, int argc, char **argv, char **envp, char *err,
                   size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    /* Help must work even when the environment holds a bad value. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            cfg->show_help = true;
        else if (strcmp(argv[i], "--version") == 0)
            cfg->show_version = true;
    }
    if (cfg->show_help || cfg->show_version)
        return 0;
    if (load_env(cfg, envp, err, errlen) != 0 || load_argv(cfg, argc, argv, err, errlen) != 0)
        return -EINVAL;
    return validate(cfg, err, errlen);
}
