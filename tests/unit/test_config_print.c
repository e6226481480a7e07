/* The configuration as it is shown (config_print.c): the usage text lists
 * every option, and the startup log line says what runs without a secret. */
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "unit.h"

#include "config_fixture.h"

/* The configuration line gw_config_log writes for cfg, into line (size
 * bytes); returns its length. */
static ssize_t logged_config(char *line, size_t size)
{
    int fds[2];
    ssize_t n;

    ck_assert_int_eq(pipe(fds), 0);
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, fds[1]);
    gw_config_log(&cfg);
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT, 2);
    ck_assert_int_gt(n = read(fds[0], line, size - 1), 0);
    line[n] = '\0';
    close(fds[0]);
    close(fds[1]);
    return n;
}

/* Sentinel mode names every Sentinel and the master; neither password shows. */
START_TEST(log_line_sentinel)
{
    char line[4096];

    expect_ok(ARGS("--redis-url", "redis+sentinel://u:hunter2@s1,[::1]:26380/mymaster?db=2",
                   "--redis-sentinel-password", "hunter3"), NULL);
    logged_config(line, sizeof line);
    ck_assert_ptr_null(strstr(line, "hunter2"));
    ck_assert_ptr_null(strstr(line, "hunter3"));
    ck_assert_ptr_nonnull(strstr(line, " redis_url=redis+sentinel://u:***@s1:26379,[::1]:26380/mymaster?db=2 "));
    ck_assert_ptr_nonnull(strstr(line, " redis_sentinel_password=\"***\" "));
}
END_TEST

static char *capture_usage(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    gw_config_usage(f);
    fclose(f);
    return text;
}

START_TEST(usage_lists_everything)
{
    static const char *const want[] = {
        "--listen", "WSGATE_LISTEN", "0.0.0.0:8080", "--redis-url", "WSGATE_REDIS_URL",
        "--channel-prefix", "WSGATE_CHANNEL_PREFIX", "gw:", "--node-id", "WSGATE_NODE_ID",
        "--workers", "WSGATE_WORKERS", "--max-frame-bytes", "WSGATE_MAX_FRAME_BYTES", "65536",
        "--max-message-bytes", "WSGATE_MAX_MESSAGE_BYTES", "262144", "--max-subscriptions",
        "WSGATE_MAX_SUBSCRIPTIONS", "--queue-max-messages", "WSGATE_QUEUE_MAX_MESSAGES",
        "--queue-max-bytes", "WSGATE_QUEUE_MAX_BYTES", "4194304", "--client-rate",
        "WSGATE_CLIENT_RATE", "--client-burst", "WSGATE_CLIENT_BURST", "--ping-interval",
        "WSGATE_PING_INTERVAL", "--idle-timeout", "WSGATE_IDLE_TIMEOUT", "--drain-timeout",
        "WSGATE_DRAIN_TIMEOUT", "--redis-connect-timeout-ms", "WSGATE_REDIS_CONNECT_TIMEOUT_MS",
        "--redis-heartbeat-interval-ms", "WSGATE_REDIS_HEARTBEAT_INTERVAL_MS",
        "--redis-heartbeat-timeout-ms", "WSGATE_REDIS_HEARTBEAT_TIMEOUT_MS",
        "--redis-backoff-min-ms", "WSGATE_REDIS_BACKOFF_MIN_MS", "--redis-backoff-max-ms",
        "WSGATE_REDIS_BACKOFF_MAX_MS", "--resubscribe-batch", "WSGATE_RESUBSCRIBE_BATCH",
        "--jwt-hmac-secret-file", "WSGATE_JWT_HMAC_SECRET_FILE", "--jwt-public-key-files",
        "WSGATE_JWT_PUBLIC_KEY_FILES", "--jwt-issuer", "--jwt-audience", "--jwt-leeway",
        "--max-token-bytes", "WSGATE_MAX_TOKEN_BYTES", "--auth-timeout", "WSGATE_AUTH_TIMEOUT",
        "--anonymous-subscribe", "WSGATE_ANONYMOUS_SUBSCRIBE", "--anonymous-publish",
        "WSGATE_ANONYMOUS_PUBLISH",
        "--log-level", "WSGATE_LOG_LEVEL", "--log-format", "WSGATE_LOG_FORMAT", "--help",
        "--version", "--max-connections-per-ip", "WSGATE_MAX_CONNECTIONS_PER_IP",
        "--allowed-origins", "WSGATE_ALLOWED_ORIGINS",
    };
    char *text = capture_usage();

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "usage lacks %s", want[i]);
    free(text);
}
END_TEST

START_TEST(log_line_masks_password)
{
    char line[4096];
    ssize_t n;

    expect_ok(ARGS("--redis-url", "redis://app:hunter2@[::1]:7000/3", "--workers", "2"), NULL);
    n = logged_config(line, sizeof line);
    ck_assert_ptr_null(strstr(line, "hunter2"));
    ck_assert_ptr_nonnull(strstr(line, " redis_url=redis://app:***@[::1]:7000/3 "));
    ck_assert_ptr_nonnull(strstr(line, " workers=2 "));
    ck_assert_ptr_nonnull(strstr(line, " listen=0.0.0.0:8080 "));
    ck_assert_ptr_nonnull(strstr(line, " queue_max_bytes=4194304 "));
    ck_assert_ptr_nonnull(strstr(line, " log_format=text"));
    ck_assert_ptr_nonnull(strstr(line, "level=info module=config"));
    ck_assert_ptr_eq(strchr(line, '\n'), line + n - 1); /* one line */

    /* Listen addresses as they were written: an IPv6 host in brackets. */
    expect_ok(ARGS("--listen", "[::1]:9000", "--api-listen", "[fe80::2]:9001", "--api-key-file", "/k"), NULL);
    logged_config(line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, " listen=[::1]:9000 "));
    ck_assert_ptr_nonnull(strstr(line, " api_listen=[fe80::2]:9001 "));
    expect_ok(ARGS("--listen", "127.0.0.1:9000"), NULL);
    logged_config(line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, " listen=127.0.0.1:9000 "));
    ck_assert_ptr_nonnull(strstr(line, " api_listen=same "));
}
END_TEST

/* The logged URL keeps the scheme: an operator must see that the link is TLS. */
START_TEST(log_line_names_tls)
{
    char line[4096];

    expect_ok(ARGS("--redis-url", "rediss://:hunter2@redis.internal:6380", "--redis-tls-server-name", "r.example"),
              NULL);
    logged_config(line, sizeof line);
    ck_assert_ptr_null(strstr(line, "hunter2"));
    ck_assert_ptr_nonnull(strstr(line, " redis_url=rediss://:***@redis.internal:6380/0 "));
    ck_assert_ptr_nonnull(strstr(line, " redis_tls_server_name=\"r.example\" "));

    expect_ok(ARGS("--redis-url", "redis+cluster://u:hunter2@a:7000,[::1]:7001"), NULL);
    logged_config(line, sizeof line);
    ck_assert_ptr_null(strstr(line, "hunter2"));
    ck_assert_ptr_nonnull(strstr(line, " redis_url=redis+cluster://u:***@a:7000,[::1]:7001 "));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config_print");
    TCase *tc = tcase_create("config_print");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, usage_lists_everything);
    tcase_add_test(tc, log_line_sentinel);
    tcase_add_test(tc, log_line_masks_password);
    tcase_add_test(tc, log_line_names_tls);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
