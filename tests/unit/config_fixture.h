/* The fixture the configuration suites share (test_config.c, test_config_print.c):
 * one config per test, loaded from argv and envp as main() would. Header-only,
 * inline, so that a suite that leaves one helper unused still builds. */
#ifndef GW_TEST_CONFIG_FIXTURE_H
#define GW_TEST_CONFIG_FIXTURE_H

#include <errno.h>

#include "config.h"
#include "unit.h"

static struct gw_config cfg;
static char err[256];

static inline void setup(void)
{
    gw_config_init(&cfg);
    err[0] = '\0';
}

static inline void teardown(void)
{
    gw_config_deinit(&cfg);
}

/* Loads argv (NULL-terminated, without argv[0]) and envp. */
static inline int load(char **args, char **env)
{
    char *argv[32] = { "wsgate" };
    int argc = 1;

    for (; args && args[argc - 1]; argc++)
        argv[argc] = args[argc - 1];
    return gw_config_load(&cfg, argc, argv, env, err, sizeof err);
}

#define ARGS(...) ((char *[]){ __VA_ARGS__, NULL })

/* Fresh config, load, expect failure with exactly this message. */
static inline void expect_fail(char **args, char **env, const char *msg)
{
    gw_config_deinit(&cfg);
    gw_config_init(&cfg);
    ck_assert_int_eq(load(args, env), -EINVAL);
    if (msg)
        ck_assert_str_eq(err, msg);
    else
        ck_assert(err[0] != '\0');
}

static inline void expect_ok(char **args, char **env)
{
    gw_config_deinit(&cfg);
    gw_config_init(&cfg);
    ck_assert_msg(load(args, env) == 0, "unexpected error: %s", err);
}

#endif
