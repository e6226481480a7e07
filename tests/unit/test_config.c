/* Configuration: defaults, environment vs flags, every validation failure,
 * the listen and Redis URL options (the usage text and the startup log line:
 * test_config_print.c). */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "unit.h"

#include "config_fixture.h"

START_TEST(defaults)
{
    char pid[32];

    ck_assert_int_eq(load(NULL, NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_int_eq(cfg.listen_port, 8080);
    ck_assert_ptr_null(cfg.redis_url);
    ck_assert_ptr_null(cfg.redis.host);
    ck_assert_ptr_null(cfg.redis.unix_path);
    ck_assert_str_eq(cfg.channel_prefix, "gw:");
    ck_assert_int_eq(cfg.workers, 1);
    ck_assert_uint_eq(cfg.max_frame_bytes, 65536);
    ck_assert_uint_eq(cfg.max_message_bytes, 262144);
    ck_assert_int_eq(cfg.max_subscriptions, 64);
    ck_assert_int_eq(cfg.max_connections, 0);
    ck_assert_uint_eq(cfg.queue_max_messages, 1024);
    ck_assert_uint_eq(cfg.queue_max_bytes, 4194304);
    ck_assert_int_eq(cfg.client_rate, 200);
    ck_assert_int_eq(cfg.client_burst, 400);
    ck_assert_int_eq(cfg.ping_interval_s, 25);
    ck_assert_int_eq(cfg.idle_timeout_s, 60);
    ck_assert_int_eq(cfg.drain_timeout_s, 10);
    ck_assert_int_eq(cfg.redis_connect_timeout_ms, 2000);
    ck_assert_int_eq(cfg.redis_heartbeat_interval_ms, 1000);
    ck_assert_int_eq(cfg.redis_heartbeat_timeout_ms, 3000);
    ck_assert_int_eq(cfg.redis_backoff_min_ms, 100);
    ck_assert_int_eq(cfg.redis_backoff_max_ms, 2000);
    ck_assert_int_eq(cfg.resubscribe_batch, 256);
    ck_assert_int_eq(cfg.log_level, GW_LOG_INFO);
    ck_assert_int_eq(cfg.log_format, GW_LOG_TEXT);
    ck_assert(!cfg.show_help);
    ck_assert(!cfg.show_version);
    /* <hostname>-<pid>, channel-safe */
    snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    ck_assert_uint_gt(strlen(cfg.node_id), strlen(pid));
    ck_assert_str_eq(cfg.node_id + strlen(cfg.node_id) - strlen(pid), pid);
    ck_assert(gw_channel_valid(cfg.node_id, strlen(cfg.node_id)));
}
END_TEST

START_TEST(flags_and_env)
{
    expect_ok(ARGS("--workers", "4"), NULL);
    ck_assert_int_eq(cfg.workers, 4);
    expect_ok(ARGS("--workers=8"), NULL);
    ck_assert_int_eq(cfg.workers, 8);
    expect_ok(NULL, ARGS("WSGATE_WORKERS=3"));
    ck_assert_int_eq(cfg.workers, 3);
    /* Flags win over the environment, whatever the order. */
    expect_ok(ARGS("--workers", "5"), ARGS("WSGATE_WORKERS=3"));
    ck_assert_int_eq(cfg.workers, 5);
    expect_ok(ARGS("--max-frame-bytes=1000", "--channel-prefix", "", "--node-id", "n-1"),
              ARGS("PATH=/bin", "WSGATE_CHANNEL_PREFIX=x:", "WSGATE_LOG_LEVEL=debug",
                   "WSGATE_LOG_FORMAT=json", "WSGATE_REDIS_HEARTBEAT_INTERVAL_MS=500"));
    ck_assert_uint_eq(cfg.max_frame_bytes, 1000);
    ck_assert_str_eq(cfg.channel_prefix, "");
    ck_assert_str_eq(cfg.node_id, "n-1");
    ck_assert_int_eq(cfg.log_level, GW_LOG_DEBUG);
    ck_assert_int_eq(cfg.log_format, GW_LOG_JSON);
    ck_assert_int_eq(cfg.redis_heartbeat_interval_ms, 500);
    /* Unknown WSGATE_* variables and malformed entries are ignored. */
    expect_ok(NULL, ARGS("WSGATE_NOPE=1", "WSGATE_WORKERSX=abc", "WSGATE_", "WSGATE_HELP=1",
                         "NOEQUALS", "workers=9"));
    ck_assert_int_eq(cfg.workers, 1);
    ck_assert(!cfg.show_help);
}
END_TEST

START_TEST(integer_errors)
{
    expect_fail(ARGS("--workers", "abc"), NULL,
                "--workers: expected an integer in 1..64, got \"abc\"");
    expect_fail(NULL, ARGS("WSGATE_WORKERS=abc"),
                "WSGATE_WORKERS: expected an integer in 1..64, got \"abc\"");
    expect_fail(ARGS("--workers=12x"), NULL, "--workers: expected an integer in 1..64, got \"12x\"");
    expect_fail(ARGS("--workers", "0"), NULL, "--workers: expected an integer in 1..64, got \"0\"");
    expect_fail(ARGS("--workers", "65"), NULL, "--workers: expected an integer in 1..64, got \"65\"");
    expect_fail(ARGS("--workers", " 1"), NULL, NULL);
    expect_fail(ARGS("--workers", "+1"), NULL, NULL);
    expect_fail(ARGS("--workers", "1.0"), NULL, NULL);
    expect_fail(ARGS("--workers="), NULL, "--workers: expected an integer in 1..64, got \"\"");
    expect_fail(ARGS("--workers", "-1"), NULL, NULL);
    expect_fail(ARGS("--workers", "99999999999999999999"), NULL,
                "--workers: expected an integer in 1..64, got \"99999999999999999999\"");
    expect_fail(ARGS("--queue-max-bytes", "-5"), NULL, NULL);
}
END_TEST

/* Every integer option: its bounds accepted, one past each bound refused
 * with an error naming the option (other checks may still object). */
START_TEST(integer_ranges)
{
    static const struct {
        const char *flag;
        long long min, max;
    } r[] = {
        { "workers", 1, 64 },
        { "max-frame-bytes", 128, 16777216 },
        { "max-message-bytes", 128, 67108864 },
        { "max-subscriptions", 1, 100000 },
        { "queue-max-messages", 1, 1000000 },
        { "client-rate", 1, 1000000 },
        { "client-burst", 1, 100000000 },
        { "ping-interval", 1, 3600 },
        { "idle-timeout", 1, 86400 },
        { "drain-timeout", 0, 3600 },
        { "redis-heartbeat-interval-ms", 50, 60000 },
        { "resubscribe-batch", 1, 100000 },
        { "redis-connect-timeout-ms", 1, 600000 },
        { "redis-backoff-min-ms", 1, 600000 },
        { "redis-backoff-max-ms", 1, 600000 },
        { "redis-heartbeat-timeout-ms", 1, 600000 },
    };

    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        long long probe[4] = { r[i].min, r[i].max, r[i].min - 1, r[i].max + 1 };
        char flag[64], prefix[64];

        snprintf(flag, sizeof flag, "--%s", r[i].flag);
        snprintf(prefix, sizeof prefix, "--%s:", r[i].flag);
        for (int k = 0; k < 4; k++) {
            char val[32];
            int rc;

            snprintf(val, sizeof val, "%lld", probe[k]);
            gw_config_deinit(&cfg);
            gw_config_init(&cfg);
            rc = load(ARGS(flag, val, "--queue-max-bytes", "1099511627776"), NULL);
            if (k < 2)
                ck_assert_msg(rc == 0 || strncmp(err, prefix, strlen(prefix)) != 0,
                              "%s %s refused: %s", flag, val, err);
            else
                ck_assert_msg(rc == -EINVAL && strncmp(err, prefix, strlen(prefix)) == 0,
                              "%s %s: rc %d err %s", flag, val, rc, err);
        }
    }
}
END_TEST

START_TEST(argument_errors)
{
    expect_fail(ARGS("--nope"), NULL, "unknown option --nope (see --help)");
    expect_fail(ARGS("--nope=1"), NULL, "unknown option --nope (see --help)");
    expect_fail(ARGS("--workers"), NULL, "--workers: missing value");
    expect_fail(ARGS("--workers", "--listen", ":1"), NULL, "--workers: missing value");
    expect_fail(ARGS("serve"), NULL, "unexpected argument \"serve\" (see --help)");
    expect_fail(ARGS("-x"), NULL, NULL);
    expect_fail(ARGS("--"), NULL, NULL);
    expect_fail(ARGS("--help=1"), NULL, "--help: takes no value");
}
END_TEST

START_TEST(help_and_version)
{
    expect_ok(ARGS("--help"), NULL);
    ck_assert(cfg.show_help);
    expect_ok(ARGS("-h"), NULL);
    ck_assert(cfg.show_help);
    expect_ok(ARGS("--version"), NULL);
    ck_assert(cfg.show_version);
    ck_assert(!cfg.show_help);
    /* Help still works next to bad values. */
    expect_ok(ARGS("--workers", "abc", "--help"), ARGS("WSGATE_WORKERS=0"));
    ck_assert(cfg.show_help);
}
END_TEST

START_TEST(cross_checks)
{
    expect_ok(ARGS("--max-message-bytes", "262144", "--queue-max-bytes", "262656"), NULL);
    expect_fail(ARGS("--max-message-bytes", "262144", "--queue-max-bytes", "262655"), NULL,
                "--queue-max-bytes (262655) must be at least --max-message-bytes + 512 (262656)");
    expect_fail(ARGS("--max-message-bytes", "1000", "--max-frame-bytes", "1000000",
                     "--queue-max-bytes", "999999"),
                NULL, "--queue-max-bytes (999999) must be at least --max-frame-bytes (1000000)");
    expect_ok(ARGS("--max-message-bytes", "1000", "--max-frame-bytes", "1000000",
                   "--queue-max-bytes", "1000000"),
              NULL);
    expect_fail(ARGS("--idle-timeout", "25"), NULL,
                "--idle-timeout (25) must be greater than --ping-interval (25)");
    expect_ok(ARGS("--idle-timeout", "26"), NULL);
    expect_fail(NULL, ARGS("WSGATE_PING_INTERVAL=100"),
                "--idle-timeout (60) must be greater than --ping-interval (100)");
    expect_fail(ARGS("--redis-heartbeat-timeout-ms", "1000"), NULL,
                "--redis-heartbeat-timeout-ms (1000) must be greater than "
                "--redis-heartbeat-interval-ms (1000)");
    expect_fail(ARGS("--redis-backoff-max-ms", "99"), NULL,
                "--redis-backoff-max-ms (99) must be at least --redis-backoff-min-ms (100)");
    expect_ok(ARGS("--redis-backoff-max-ms", "100"), NULL);
}
END_TEST

START_TEST(strings)
{
    char p64[70], p65[70];

    memset(p64, 'p', 64);
    p64[64] = '\0';
    memset(p65, 'p', 65);
    p65[65] = '\0';
    expect_ok(ARGS("--channel-prefix", p64), NULL);
    ck_assert_str_eq(cfg.channel_prefix, p64);
    expect_fail(ARGS("--channel-prefix", p65), NULL, NULL);
    ck_assert_ptr_nonnull(strstr(err, "--channel-prefix:"));
    expect_fail(ARGS("--channel-prefix", "a b"), NULL, NULL);
    expect_fail(ARGS("--channel-prefix", "x*"), NULL, NULL);
    /* Under __wsgate: every channel is the node's own (issue 8 item 10). */
    expect_fail(ARGS("--channel-prefix", "__wsgate:"), NULL,
                "--channel-prefix: \"__wsgate:\" names are reserved for the nodes, got \"__wsgate:\"");
    expect_fail(ARGS("--channel-prefix", "__wsgate:app:"), NULL, NULL);
    expect_ok(ARGS("--channel-prefix", "__wsgate"), NULL);
    expect_ok(ARGS("--channel-prefix=app/1.ws:"), NULL);
    ck_assert_str_eq(cfg.channel_prefix, "app/1.ws:");
    expect_fail(ARGS("--node-id="), NULL, NULL);
    ck_assert_ptr_nonnull(strstr(err, "--node-id:"));
    expect_fail(ARGS("--node-id", "a b"), NULL, NULL);
    expect_fail(ARGS("--node-id", p65), NULL, NULL);
    expect_fail(ARGS("--log-level", "verbose"), NULL,
                "--log-level: expected error, warn, info or debug, got \"verbose\"");
    expect_fail(NULL, ARGS("WSGATE_LOG_FORMAT=xml"),
                "WSGATE_LOG_FORMAT: expected text or json, got \"xml\"");
    expect_ok(ARGS("--log-level", "error", "--log-format", "text"), ARGS("WSGATE_LOG_FORMAT=json"));
    ck_assert_int_eq(cfg.log_level, GW_LOG_ERROR);
    ck_assert_int_eq(cfg.log_format, GW_LOG_TEXT);
}
END_TEST

START_TEST(api_options)
{
    expect_ok(NULL, NULL);
    ck_assert_ptr_null(cfg.api_key_file);
    ck_assert_ptr_null(cfg.api_listen_host);
    ck_assert_uint_eq(cfg.max_api_body_bytes, 65536);
    expect_ok(ARGS("--api-key-file", "/run/keys/api", "--api-listen", "127.0.0.1:9090"),
              ARGS("WSGATE_MAX_API_BODY_BYTES=1024"));
    ck_assert_str_eq(cfg.api_key_file, "/run/keys/api");
    ck_assert_str_eq(cfg.api_listen_host, "127.0.0.1");
    ck_assert_int_eq(cfg.api_listen_port, 9090);
    ck_assert_uint_eq(cfg.max_api_body_bytes, 1024);
    /* Empty means unset, so a template can always set the variables. */
    expect_ok(NULL, ARGS("WSGATE_API_KEY_FILE=", "WSGATE_API_LISTEN="));
    ck_assert_ptr_null(cfg.api_key_file);
    ck_assert_ptr_null(cfg.api_listen_host);
    expect_fail(ARGS("--api-listen", ":9090"), NULL,
                "--api-listen needs --api-key-file (without keys the API is off)");
    expect_fail(ARGS("--api-key-file", "k", "--api-listen", "nope"), NULL, NULL);
    ck_assert_ptr_nonnull(strstr(err, "--api-listen: "));
    expect_fail(ARGS("--max-api-body-bytes", "127"), NULL, NULL);
}
END_TEST

/* The access-control options: paths, patterns, lists; empty unsets. */
START_TEST(access_options)
{
    expect_ok(NULL, NULL);
    ck_assert_ptr_null(cfg.jwt_hmac_secret_file);
    ck_assert_ptr_null(cfg.jwt_issuer);
    ck_assert_ptr_null(cfg.jwt_audience);
    ck_assert_uint_eq(cfg.jwt_public_key_files.n, 0);
    ck_assert_uint_eq(cfg.anonymous_subscribe.n, 0);
    ck_assert_uint_eq(cfg.anonymous_publish.n, 0);
    ck_assert_int_eq(cfg.jwt_leeway_s, 30);
    ck_assert_uint_eq(cfg.max_token_bytes, 8192);
    ck_assert_int_eq(cfg.auth_timeout_s, 5);

    expect_ok(ARGS("--jwt-hmac-secret-file", "/run/s", "--jwt-public-key-files", "a.pem, /k/b.pem",
                   "--anonymous-subscribe", "demo*,user:{sub}, x", "--jwt-issuer=iss"),
              (char *[]){ "WSGATE_ANONYMOUS_PUBLISH=demo", "WSGATE_JWT_AUDIENCE=aud",
                          "WSGATE_ANONYMOUS_SUBSCRIBE=overridden", NULL });
    ck_assert_str_eq(cfg.jwt_hmac_secret_file, "/run/s");
    ck_assert_uint_eq(cfg.jwt_public_key_files.n, 2);
    ck_assert_str_eq(cfg.jwt_public_key_files.v[0], "a.pem");
    ck_assert_str_eq(cfg.jwt_public_key_files.v[1], "/k/b.pem");
    ck_assert_uint_eq(cfg.anonymous_subscribe.n, 3);
    ck_assert_str_eq(cfg.anonymous_subscribe.v[0], "demo*");
    ck_assert_str_eq(cfg.anonymous_subscribe.v[1], "user:{sub}");
    ck_assert_str_eq(cfg.anonymous_subscribe.v[2], "x");
    ck_assert_uint_eq(cfg.anonymous_publish.n, 1);
    ck_assert_str_eq(cfg.anonymous_publish.v[0], "demo");
    ck_assert_str_eq(cfg.jwt_issuer, "iss");
    ck_assert_str_eq(cfg.jwt_audience, "aud");

    /* Empty values unset, so a template can always set the variable. */
    expect_ok(ARGS("--jwt-issuer", "", "--anonymous-publish", ""),
              (char *[]){ "WSGATE_JWT_ISSUER=x", "WSGATE_ANONYMOUS_PUBLISH=a", NULL });
    ck_assert_ptr_null(cfg.jwt_issuer);
    ck_assert_uint_eq(cfg.anonymous_publish.n, 0);

    expect_fail(ARGS("--anonymous-subscribe", "a*b"), NULL,
                "--anonymous-subscribe: \"a*b\" is not a channel pattern (channel-name bytes and "
                "{sub}, at most one '*', only at the end)");
    expect_fail(ARGS("--anonymous-publish", "ok,,x"), NULL, NULL);
    expect_fail(NULL, (char *[]){ "WSGATE_ANONYMOUS_PUBLISH=a b", NULL }, NULL);
    ck_assert_ptr_nonnull(strstr(err, "WSGATE_ANONYMOUS_PUBLISH"));
    expect_fail(ARGS("--jwt-public-key-files", "a.pem,,b.pem"), NULL,
                "--jwt-public-key-files: empty item in a comma-separated list");
    expect_fail(ARGS("--max-token-bytes", "10"), NULL, NULL);
    expect_fail(ARGS("--auth-timeout", "0"), NULL, NULL);
    expect_fail(ARGS("--jwt-leeway", "86401"), NULL, NULL);
}
END_TEST

/* The parser itself is tested in test_addr.c; here only its wiring. */
START_TEST(listen_option)
{
    expect_ok(ARGS("--listen", "[::1]:7000"), NULL);
    ck_assert_str_eq(cfg.listen_host, "::1");
    ck_assert_int_eq(cfg.listen_port, 7000);
    expect_fail(NULL, ARGS("WSGATE_LISTEN=nope"), NULL);
    ck_assert_ptr_nonnull(strstr(err, "WSGATE_LISTEN: "));
}
END_TEST

START_TEST(redis_url_option)
{
    expect_ok(NULL, ARGS("WSGATE_REDIS_URL=redis://r:7000/1"));
    ck_assert_str_eq(cfg.redis_url, "redis://r:7000/1");
    ck_assert_str_eq(cfg.redis.host, "r");
    ck_assert_int_eq(cfg.redis.port, 7000);
    ck_assert_int_eq(cfg.redis.db, 1);
    /* The flag replaces the environment's address entirely. */
    expect_ok(ARGS("--redis-url", "unix:///s.sock"), ARGS("WSGATE_REDIS_URL=redis://:pw@r"));
    ck_assert_ptr_null(cfg.redis.host);
    ck_assert_ptr_null(cfg.redis.password);
    ck_assert_str_eq(cfg.redis.unix_path, "/s.sock");
    /* Empty means standalone. */
    expect_ok(ARGS("--redis-url="), ARGS("WSGATE_REDIS_URL=redis://r"));
    ck_assert_ptr_null(cfg.redis_url);
    ck_assert_ptr_null(cfg.redis.host);
    expect_ok(NULL, ARGS("WSGATE_REDIS_URL=rediss://r"));
    ck_assert(cfg.redis.tls);
    expect_ok(ARGS("--redis-url", "redis://r"), NULL);
    ck_assert(!cfg.redis.tls);
    expect_fail(ARGS("--redis-url", "redis://r", "--redis-tls-ca-file", "/ca.pem"), NULL,
                "--redis-tls-* options need a rediss:// or rediss+sentinel:// --redis-url");
    expect_fail(ARGS("--redis-url", "rediss://r", "--redis-tls-cert-file", "/c.pem"), NULL,
                "--redis-tls-cert-file and --redis-tls-key-file go together");
    expect_fail(ARGS("--redis-url", "rediss://r", "--redis-tls-insecure", "1", "--redis-tls-ca-file", "/ca.pem"),
                NULL,
                "--redis-tls-insecure turns verification off: it cannot go with --redis-tls-ca-file or "
                "--redis-tls-server-name");
    expect_ok(ARGS("--redis-url", "rediss://u:p@r:6380/2", "--redis-tls-ca-file", "/ca.pem", "--redis-tls-cert-file",
                   "/c.pem", "--redis-tls-key-file", "/k.pem", "--redis-tls-server-name", "redis.internal"),
              NULL);
    ck_assert(cfg.redis.tls);
    ck_assert_int_eq(cfg.redis.port, 6380);
    ck_assert_str_eq(cfg.redis_tls_ca_file, "/ca.pem");
    ck_assert_str_eq(cfg.redis_tls_server_name, "redis.internal");
    expect_fail(ARGS("--redis-url", "redis://"), NULL,
                "--redis-url: empty host in the Redis URL");
    expect_ok(ARGS("--redis-url", "rediss+cluster://:pw@a:7000,b:7001"), NULL);
    ck_assert(cfg.redis.cluster && cfg.redis.tls);
    ck_assert_uint_eq(cfg.redis.n_seeds, 2);
    ck_assert_str_eq(cfg.redis.seeds[1].host, "b");
    /* Cluster mode needs keys without a hash tag of their own (the slot of C
     * must be the slot of {C}:meta): neither prefixes nor names hold braces. */
    expect_fail(ARGS("--redis-url", "redis+cluster://a:7000", "--channel-prefix", "{gw}:"), NULL,
                "--channel-prefix: expected at most 64 bytes of A-Z a-z 0-9 _ - : . @ / =, got \"{gw}:\"");
}
END_TEST

START_TEST(sentinel_options)
{
    expect_ok(ARGS("--redis-url", "redis+sentinel://:mpw@s1,s2:5/mm", "--redis-sentinel-password", "spw"),
              ARGS("WSGATE_REDIS_SENTINEL_USER=sen"));
    ck_assert_str_eq(cfg.redis.master_name, "mm");
    ck_assert_int_eq(cfg.redis.nsentinels, 2);
    ck_assert_str_eq(cfg.redis.password, "mpw");
    ck_assert_str_eq(cfg.redis_sentinel_user, "sen");
    ck_assert_str_eq(cfg.redis_sentinel_password, "spw");
    expect_ok(ARGS("--redis-url", "rediss+sentinel://s1/mm", "--redis-tls-ca-file", "/ca.pem"), NULL);
    ck_assert(cfg.redis.tls);
    expect_fail(ARGS("--redis-url", "redis://r", "--redis-sentinel-password", "x"), NULL,
                "--redis-sentinel-* options need a redis+sentinel:// --redis-url");
    expect_fail(ARGS("--redis-url", "redis+sentinel://s/m", "--redis-sentinel-user", "x"), NULL,
                "--redis-sentinel-user needs --redis-sentinel-password");
}
END_TEST

/* The origin parser is tested in test_origin.c; here only its wiring. */
START_TEST(admission_options)
{
    ck_assert_int_eq(load(NULL, NULL), 0);
    ck_assert_int_eq(cfg.max_connections_per_ip, 0);
    ck_assert_ptr_null(cfg.allowed_origins);
    ck_assert_uint_eq(cfg.origins.count, 0);
    expect_ok(ARGS("--max-connections-per-ip", "10", "--allowed-origins",
                   "https://app.example.com,*.example.org"),
              ARGS("WSGATE_ALLOWED_ORIGINS=https://ignored.example"));
    ck_assert_int_eq(cfg.max_connections_per_ip, 10);
    ck_assert_str_eq(cfg.allowed_origins, "https://app.example.com,*.example.org");
    ck_assert_uint_eq(cfg.origins.count, 2);
    ck_assert_str_eq(cfg.origins.rules[1].host, "example.org");
    /* Empty means the default same-host rule, so a template can always set it. */
    expect_ok(NULL, ARGS("WSGATE_ALLOWED_ORIGINS=", "WSGATE_MAX_CONNECTIONS_PER_IP=3"));
    ck_assert_uint_eq(cfg.origins.count, 0);
    ck_assert_int_eq(cfg.max_connections_per_ip, 3);
    expect_fail(ARGS("--allowed-origins", "https://app.example.com/"), NULL,
                "--allowed-origins: origin \"https://app.example.com/\": an origin has no path");
    expect_fail(NULL, ARGS("WSGATE_ALLOWED_ORIGINS=a,,b"),
                "WSGATE_ALLOWED_ORIGINS: empty entry in the origin list");
    expect_fail(ARGS("--max-connections-per-ip", "-1"), NULL, NULL);
    ck_assert_ptr_nonnull(strstr(err, "--max-connections-per-ip:"));
}
END_TEST

/* Which channels keep history and presence: the pattern lists, each its own. */
START_TEST(keeps_history_and_presence)
{
    ck_assert(gw_config_keeps_history(&cfg, "anything")); /* default "*" */
    ck_assert(!gw_config_keeps_presence(&cfg, "anything")); /* default: none */
    expect_ok(ARGS("--history-channels", "room:*, feed", "--presence-channels", "lobby,chat:*"), NULL);
    ck_assert(gw_config_keeps_history(&cfg, "room:1"));
    ck_assert(gw_config_keeps_history(&cfg, "feed"));
    ck_assert(!gw_config_keeps_history(&cfg, "feed2"));
    ck_assert(!gw_config_keeps_history(&cfg, "lobby"));
    ck_assert(gw_config_keeps_presence(&cfg, "lobby"));
    ck_assert(gw_config_keeps_presence(&cfg, "chat:x"));
    ck_assert(!gw_config_keeps_presence(&cfg, "room:1"));
    expect_ok(ARGS("--history-channels", "", "--presence-channels", "u:{sub}"), NULL);
    ck_assert(!gw_config_keeps_history(&cfg, "room:1")); /* empty: none */
    ck_assert(!gw_config_keeps_presence(&cfg, "u:")); /* {sub} has no subject here */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, flags_and_env);
    tcase_add_test(tc, sentinel_options);
    tcase_add_test(tc, integer_errors);
    tcase_add_test(tc, integer_ranges);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, help_and_version);
    tcase_add_test(tc, cross_checks);
    tcase_add_test(tc, strings);
    tcase_add_test(tc, access_options);
    tcase_add_test(tc, listen_option);
    tcase_add_test(tc, api_options);
    tcase_add_test(tc, redis_url_option);
    tcase_add_test(tc, admission_options);
    tcase_add_test(tc, keeps_history_and_presence);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
