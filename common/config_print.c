/* Node configuration, the human side: `wsgate --help` and the effective
 * configuration logged at startup, both read from the option table. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_opts.h"
#include "log.h"

/* ---- usage and startup log ---- */

void gw_config_usage(FILE *out)
{
    char env[64];
    int wflag = 0, wenv = 0, wdef = 0;

    for (size_t i = 0; i < gw_config_opt_count; i++) {
        const struct gw_config_opt *o = &gw_config_opt_table[i];
        const char *def = o->def ? o->def : o->def_text;
        int n = (int)strlen(o->name) + 2;

        gw_config_opt_env_name(o, env, sizeof env);
        wflag = n > wflag ? n : wflag;
        wenv = (int)strlen(env) > wenv ? (int)strlen(env) : wenv;
        wdef = (int)strlen(def) > wdef ? (int)strlen(def) : wdef;
    }
    fprintf(out, "Usage: wsgate [--option value | --option=value]...\n"
                 "Each option can also be set through its environment variable; flags win.\n\n");
    fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, "OPTION", wenv, "ENVIRONMENT", wdef, "DEFAULT",
            "MEANING");
    for (size_t i = 0; i < gw_config_opt_count; i++) {
        const struct gw_config_opt *o = &gw_config_opt_table[i];
        char flag[64];

        snprintf(flag, sizeof flag, "--%s", o->name);
        if (o->type == OPT_FLAG)
            snprintf(env, sizeof env, "-");
        else
            gw_config_opt_env_name(o, env, sizeof env);
        fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, flag, wenv, env, wdef,
                o->def ? o->def : o->def_text, o->help);
    }
}

/* Appends to a fixed buffer, silently stopping at its end. */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size;
}

/* host:port, an IPv6 host in brackets (as the URLs and --listen write it). */
static void append_host_port(char *buf, size_t size, size_t *len, const char *host, int port)
{
    bool v6 = strchr(host, ':') != NULL;

    append(buf, size, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static void append_redis(char *buf, size_t size, size_t *len, const struct gw_config *cfg)
{
    const struct gw_redis_addr *a = &cfg->redis;
    const char *user = a->username ? a->username : "";

    if (!cfg->redis_url) {
        append(buf, size, len, "none");
    } else if (a->cluster) {
        append(buf, size, len, "%s://%s%s", a->tls ? "rediss+cluster" : "redis+cluster", user,
               a->password ? ":***@" : "");
        for (size_t i = 0; i < a->n_seeds; i++) {
            append(buf, size, len, "%s", i ? "," : "");
            append_host_port(buf, size, len, a->seeds[i].host, a->seeds[i].port);
        }
    } else if (a->master_name) {
        append(buf, size, len, "%s://%s%s", a->tls ? "rediss+sentinel" : "redis+sentinel", user,
               a->password ? ":***@" : "");
        for (int i = 0; i < a->nsentinels; i++) {
            append(buf, size, len, "%s", i ? "," : "");
            append_host_port(buf, size, len, a->sentinels[i].host, a->sentinels[i].port);
        }
        append(buf, size, len, "/%s?db=%d", a->master_name, a->db);
    } else if (a->unix_path) {
        append(buf, size, len, "unix://%s%s%s?db=%d", user, a->password ? ":***@" : "",
               a->unix_path, a->db);
    } else {
        append(buf, size, len, "%s://%s%s", a->tls ? "rediss" : "redis", user, a->password ? ":***@" : "");
        append_host_port(buf, size, len, a->host, a->port);
        append(buf, size, len, "/%d", a->db);
    }
}

void gw_config_log(const struct gw_config *cfg)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    char buf[4096];
    size_t len = 0;

    for (size_t i = 0; i < gw_config_opt_count; i++) {
        const struct gw_config_opt *o = &gw_config_opt_table[i];
        const char *base = (const char *)cfg;

        if (o->type == OPT_FLAG)
            continue;
        append(buf, sizeof buf, &len, " ");
        for (const char *p = o->name; *p; p++)
            append(buf, sizeof buf, &len, "%c", *p == '-' ? '_' : *p);
        append(buf, sizeof buf, &len, "=");
        switch (o->type) {
        case OPT_INT:
            append(buf, sizeof buf, &len, "%d", *(const int *)(base + o->off));
            break;
        case OPT_SIZE:
            append(buf, sizeof buf, &len, "%zu", *(const size_t *)(base + o->off));
            break;
        case OPT_LISTEN:
            append_host_port(buf, sizeof buf, &len, cfg->listen_host, cfg->listen_port);
            break;
        case OPT_REDIS_URL:
            append_redis(buf, sizeof buf, &len, cfg);
            break;
        case OPT_PREFIX:
            append(buf, sizeof buf, &len, "\"%s\"", cfg->channel_prefix);
            break;
        case OPT_NODE_ID:
            append(buf, sizeof buf, &len, "%s", cfg->node_id);
            break;
        case OPT_API_LISTEN:
            if (!cfg->api_listen_host) {
                append(buf, sizeof buf, &len, "same");
                break;
            }
            append_host_port(buf, sizeof buf, &len, cfg->api_listen_host, cfg->api_listen_port);
            break;
        case OPT_LOG_LEVEL:
            append(buf, sizeof buf, &len, "%s", levels[cfg->log_level]);
            break;
        case OPT_LOG_FORMAT:
            append(buf, sizeof buf, &len, "%s", cfg->log_format == GW_LOG_JSON ? "json" : "text");
            break;
        case OPT_STR: {
            const char *v = *(char *const *)(base + o->off);
            append(buf, sizeof buf, &len, "\"%s\"", v ? v : "");
            break;
        }
        case OPT_SECRET:
            append(buf, sizeof buf, &len, "\"%s\"", *(char *const *)(base + o->off) ? "***" : "");
            break;
        case OPT_FILES:
        case OPT_PATTERNS: {
            const struct gw_strlist *l = (const struct gw_strlist *)(base + o->off);
            append(buf, sizeof buf, &len, "\"");
            for (size_t k = 0; k < l->n; k++)
                append(buf, sizeof buf, &len, "%s%s", k ? "," : "", l->v[k]);
            append(buf, sizeof buf, &len, "\"");
            break;
        }
        case OPT_ORIGINS:
            append(buf, sizeof buf, &len, "\"%s\"", cfg->allowed_origins ? cfg->allowed_origins : "");
            break;
        case OPT_FLAG:
            break;
        }
    }
    gw_log(GW_LOG_INFO, "config", "effective configuration%s", buf);
}
