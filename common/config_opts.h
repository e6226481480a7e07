/* Private to common/config.c and common/config_print.c: the one option
 * table both read (parsing there, usage and the startup log line here), so
 * they cannot drift apart. Nothing else includes this. */
#ifndef GW_CONFIG_OPTS_H
#define GW_CONFIG_OPTS_H

#include <stddef.h>

#include "config.h"

enum opt_type {
    OPT_INT,    /* int field at off */
    OPT_SIZE,   /* size_t field at off */
    OPT_LISTEN,
    OPT_REDIS_URL,
    OPT_PREFIX,
    OPT_NODE_ID,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_STR,      /* optional char * field at off; empty = unset */
    OPT_SECRET,   /* as OPT_STR, but logged as "***" and wiped on release */
    OPT_FILES,    /* gw_strlist of non-empty paths at off */
    OPT_PATTERNS, /* gw_strlist of valid patterns at off */
    OPT_API_LISTEN,
    OPT_ORIGINS,
    OPT_FLAG,   /* --help, --version: no value, no environment variable */
};

struct gw_config_opt {
    const char *name; /* flag without the leading "--" */
    enum opt_type type;
    size_t off;
    long long min, max;
    const char *def; /* default as the user would type it; NULL = unset/computed */
    const char *def_text; /* shown in usage when def is NULL */
    const char *help;
};

extern const struct gw_config_opt gw_config_opts[];
extern const size_t gw_config_nopts;

/* WSGATE_ + flag name upper-cased with '-' -> '_', into out (outlen bytes). */
void gw_config_env_name(const struct gw_config_opt *o, char *out, size_t outlen);

#endif
