/* wsgate: order of startup and shutdown, and signals. No protocol logic.
 *
 * Every thread blocks SIGTERM/SIGINT; main waits for them with sigwait(), so
 * the drain runs in ordinary code rather than in a signal handler. */
#define GW_LOG_MODULE "main"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "access.h"
#include "alloc.h"
#include "apikey.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "node.h"
#include "roster.h"
#include "rtls.h"
#include "worker.h"

#ifndef WSGATE_VERSION
#define WSGATE_VERSION "dev"
#endif

extern char **environ;

static void lws_log_emit(int level, const char *line)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    gw_log(level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN, "lws", "%.*s", (int)len, line);
}

/* What the bus's callbacks reach: the node and its workers. */
struct wiring {
    struct gw_node *node;
    struct gw_worker **workers;
};

/* gw_bus_ops.post: the bus reaches a worker only through this (bus thread). */
static void bus_post_to_worker(void *ctx, int worker, struct gw_wmail *m)
{
    gw_worker_post(((struct wiring *)ctx)->workers[worker], m);
}

static size_t bus_inbox_of_worker(void *ctx, int worker)
{
    return gw_worker_inbox_bytes(((struct wiring *)ctx)->workers[worker]);
}

/* This node's roster entry for the admin view: what the node and each
 * worker count, handed to roster.c, which builds the JSON. Bus thread. */
static char *describe_node(void *ctx, size_t *len)
{
    const struct wiring *wr = ctx;
    const struct gw_node *node = wr->node;
    struct gw_hub_top top[GW_WORKERS_MAX][GW_TOP_CHANNELS];
    struct gw_roster_channel chans[GW_WORKERS_MAX * GW_TOP_CHANNELS];
    struct gw_roster_master masters[GW_REDIS_MASTERS_MAX];
    const struct gw_redis_addr *ra = &node->cfg->redis;
    struct gw_roster_self self = {
        .id = node->cfg->node_id,
        .host = node->cfg->listen_host,
        .port = node->cfg->listen_port,
        .version = WSGATE_VERSION,
        .ready = gw_node_ready(node),
        .draining = gw_node_draining(node),
        .channels = gw_stat_get(&node->bus_stats->channels),
        .messages_in = gw_stat_get(&node->bus_stats->redis_messages_received),
        .top = chans,
        .redis_mode = !node->cfg->redis_url ? "standalone"
                      : ra->cluster         ? "cluster"
                      : ra->master_name     ? "sentinel"
                                            : "single",
        .masters = masters,
    };

    for (int w = 0; w < node->nworkers; w++) {
        const struct gw_worker_stats *st = node->worker_stats[w];
        int k = gw_worker_top_channels(wr->workers[w], top[w], GW_TOP_CHANNELS);
        self.connections += gw_stat_get(&st->connections);
        self.subscriptions += gw_stat_get(&st->subscriptions);
        self.messages_out += gw_stat_get(&st->messages_delivered);
        for (int r = 0; r < GW_SHED__COUNT; r++)
            self.shed += gw_stat_get(&st->shed[r]);
        for (int i = 0; i < k; i++)
            chans[self.ntop++] = (struct gw_roster_channel){ top[w][i].name, top[w][i].subscribers };
    }
    self.nmasters = gw_bus_masters(node->bus, masters, GW_REDIS_MASTERS_MAX);
    return gw_roster_entry(&self, len);
}

static const struct gw_bus_ops bus_ops = {
    .post = bus_post_to_worker,
    .inbox_bytes = bus_inbox_of_worker,
    .describe = describe_node,
};

/* bus.c holds each channel's workers as bits of a uint64_t. */
_Static_assert(GW_WORKERS_MAX <= 64, "--workers beyond the bus's 64-bit worker masks");

/* Drains every worker, then stops the bus, then tears the workers down one
 * at a time: lws 4.1.6 on libuv closes its event pipe twice while a context is
 * destroyed, and the second close must not hit a descriptor that another
 * thread (a Redis reconnect, another worker's accept) was just given. */
static void stop_all(struct gw_worker **workers, int started, struct gw_bus *bus)
{
    for (int i = 0; i < started; i++)
        gw_worker_post(workers[i], gw_wmail_new(GW_WMAIL_DRAIN, NULL, 0));
    for (int i = 0; i < started; i++)
        gw_worker_wait_stopped(workers[i]);
    gw_bus_stop(bus);
    for (int i = 0; i < started; i++)
        gw_worker_join(workers[i]);
}

static int run(const struct gw_config *cfg, const struct gw_access *access)
{
    struct gw_node node = { .cfg = cfg, .access = access, .nworkers = cfg->workers };
    struct gw_worker **workers = gw_xcalloc((size_t)cfg->workers, sizeof(*workers));
    struct gw_bus *bus;
    struct gw_apikeys keys = { 0 };
    sigset_t sigs;
    int sig = 0, started = 0, rc = 0;
    char err[512];

    /* Before any thread: a bad key file is a startup error, not a 401 later. */
    if (cfg->api_key_file) {
        if (gw_apikeys_load(&keys, cfg->api_key_file, err, sizeof(err)) != 0) {
            LOG_ERR("%s", err);
            gw_apikeys_deinit(&keys);
            free(workers);
            return 1;
        }
        node.api_keys = &keys;
        LOG_INFO("http publish api on keys=%zu listen=%s", keys.count, cfg->api_listen_host ? "own" : "same");
    }

    atomic_init(&node.draining, false);
    atomic_init(&node.connections, 0);
    gw_ipcount_init(&node.peers);
    gw_ipcount_init(&node.http_peers);
    node.worker_stats = gw_xcalloc((size_t)cfg->workers, sizeof(*node.worker_stats));
    for (int i = 0; i < cfg->workers; i++) {
        workers[i] = gw_worker_new(&node, i);
        node.worker_stats[i] = gw_worker_stats(workers[i]);
    }
    struct wiring wiring = { &node, workers };
    bus = gw_bus_new(cfg, cfg->workers, &bus_ops, &wiring);
    node.bus = bus;
    node.bus_stats = gw_bus_stats(bus);
    if ((rc = gw_bus_start(bus)) != 0) {
        LOG_ERR("cannot start bus thread error=\"%s\"", strerror(-rc));
        goto out;
    }
    for (; started < cfg->workers; started++) {
        if ((rc = gw_worker_start(workers[started])) != 0) {
            LOG_ERR("cannot listen host=%s port=%d", cfg->listen_host, cfg->listen_port);
            goto out;
        }
    }
    LOG_INFO("listening host=%s port=%d workers=%d node_id=%s mode=%s redis_mode=%s", cfg->listen_host,
             cfg->listen_port, cfg->workers, cfg->node_id, cfg->redis_url ? "cluster" : "standalone",
             !cfg->redis_url          ? "none"
             : cfg->redis.master_name ? (cfg->redis.tls ? "sentinel+tls" : "sentinel")
             : cfg->redis.unix_path   ? "unix"
             : cfg->redis.tls         ? "tls"
                                      : "tcp");

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (sigwait(&sigs, &sig) != 0)
        sig = SIGTERM;
    atomic_store(&node.draining, true);
    LOG_INFO("draining signal=%s timeout_s=%d", sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->drain_timeout_s);

out:
    stop_all(workers, started, bus);
    for (int i = 0; i < cfg->workers; i++)
        gw_worker_free(workers[i]);
    gw_bus_free(bus);
    free(workers);
    free(node.worker_stats);
    gw_apikeys_deinit(&keys);
    gw_ipcount_deinit(&node.peers);
    gw_ipcount_deinit(&node.http_peers);
    /* Every frame has one owner at a time; one left over is a leak, and the
     * tests (which all require exit 0 after SIGTERM) must see it. */
    int code = rc ? 1 : 0;
    if (gw_frame_live_count() != 0) {
        LOG_ERR("frames still allocated at exit count=%ld", gw_frame_live_count());
        code = code ? code : 3;
    }
    LOG_INFO("exit code=%d", code);
    return code;
}

int main(int argc, char **argv)
{
    struct gw_config cfg;
    char err[512];
    sigset_t sigs;

    /* Before any thread exists, so every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    gw_config_init(&cfg);
    if (gw_config_load(&cfg, argc, argv, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "wsgate: %s\nRun 'wsgate --help' for the list of options.\n", err);
        gw_config_deinit(&cfg);
        return 2;
    }
    if (cfg.show_help) {
        gw_config_usage(stdout);
        gw_config_deinit(&cfg);
        return 0;
    }
    if (cfg.show_version) {
        printf("wsgate %s (libwebsockets %s)\n", WSGATE_VERSION, lws_get_library_version());
        gw_config_deinit(&cfg);
        return 0;
    }
    gw_log_setup(cfg.log_level, cfg.log_format, STDERR_FILENO);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    gw_config_log(&cfg);

    /* Keys are read before any thread starts, so a bad key file stops the
     * node here, with the flag and the file named, not at the first client. */
    struct gw_access access;
    if (gw_access_init(&access, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "wsgate: %s\n", err);
        gw_config_deinit(&cfg);
        return 2;
    }
    /* The TLS material too: a bad CA, certificate or key file stops the node
     * here. The link builds its own context again on every reconnect, so a
     * rotated certificate is picked up without a restart. */
    if (cfg.redis.tls) {
        struct ssl_ctx_st *tls = NULL;
        if (gw_rtls_ctx_new(&cfg, &tls, err, sizeof(err)) != 0) {
            fprintf(stderr, "wsgate: %s\n", err);
            gw_access_deinit(&access);
            gw_config_deinit(&cfg);
            return 2;
        }
        SSL_CTX_free(tls);
        if (cfg.redis_tls_insecure)
            LOG_WARN("redis TLS without verification (--redis-tls-insecure 1): any server, any certificate is "
                     "accepted; testing only");
    }
    int rc = run(&cfg, &access);
    gw_access_deinit(&access);
    gw_config_deinit(&cfg);
    return rc;
}
