/* Private to common/config*.c: the one option table (defined in
 * config_opts.c) that parsing (config.c), usage and the startup log line
 * (config_print.c) all read, so they cannot drift apart, and the setter that
 * applies one value to its field. Nothing outside common/config*.c includes
 * this. All calls run on the thread that owns the config (startup). */
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

#define GW_CONFIG_ENV_PREFIX "WSGATE_"
#define GW_CONFIG_NODE_ID_MAX 64

extern const struct gw_config_opt gw_config_opt_table[];
extern const size_t gw_config_opt_count;

/* WSGATE_ + flag name upper-cased with '-' -> '_', into out (outlen bytes). */
void gw_config_opt_env_name(const struct gw_config_opt *o, char *out, size_t outlen);

/* The option whose flag (without "--") is name[0..len), or NULL. */
const struct gw_config_opt *gw_config_opt_find_flag(const char *name, size_t len);

/* The option whose environment variable is name[0..len), or NULL (flags such
 * as --help have none). */
const struct gw_config_opt *gw_config_opt_find_env(const char *name, size_t len);

/* Checks val (NUL-terminated, borrowed) and applies it to o's field of cfg,
 * copying what it keeps; a string or list it replaces is freed. src names
 * where the value came from ("--workers", "WSGATE_WORKERS", "default") for the
 * message. Returns 0, or -EINVAL with the reason in err (errlen bytes; err may
 * be NULL), cfg then unchanged. */
int gw_config_opt_set(struct gw_config *cfg, const struct gw_config_opt *o, const char *val, const char *src,
                      char *err, size_t errlen);

/* Frees every field the setters (and the computed default node id) allocate;
 * secrets are wiped first. Leaves the pointers dangling: the caller clears cfg. */
void gw_config_opt_release(struct gw_config *cfg);

#endif
