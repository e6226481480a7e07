/* A test driver for gateway/shards.[ch] (Redis Cluster discovery), run by
 * tests/integration/test_cluster_discovery.py against a real cluster:
 *
 *   shards_probe REFRESH_MS MIN_GAP_MS HOST:PORT...
 *
 * stdout, one line each, flushed: "map <version> covered <n> masters <m>
 * moved <k>" then "owner <first>-<last> <host>:<port>" lines and "end" for
 * every on_map; "error <why>" for on_error; "stats <queries> <failures>
 * <changes> <state> <sames>" (sames: on_same calls, answers that changed
 * nothing) and "bye" on request. stdin: "refresh N" (N calls of
 * gw_shards_refresh in a row), "hurry 1" / "hurry 0" (gw_shards_hurry; the
 * hurried period is HURRY_MS), "stats", "quit" (frees everything, exits 0). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "shards.h"

#define HURRY_MS 250

static struct gw_shards *shards;
static struct event_base *base;

static void on_map(void *ctx, const struct gw_topo *old, const struct gw_topo *map,
                   const struct gw_topo_diff *d)
{
    unsigned s = 0;

    printf("map %llu covered %u masters %zu moved %u\n", (unsigned long long)gw_topo_version(map),
           gw_topo_covered(map), gw_topo_node_count(map), d->count);
    while (s < GW_SLOT_COUNT) {
        const struct gw_topo_node *o = gw_topo_slot_owner(map, s);
        unsigned e = s;
        while (e + 1 < GW_SLOT_COUNT && gw_topo_slot_owner(map, e + 1) == o)
            e++;
        if (o)
            printf("owner %u-%u %s:%u\n", s, e, o->host, o->port);
        s = e + 1;
    }
    printf("end\n");
    fflush(stdout);
}

static void on_error(void *ctx, const char *why)
{
    printf("error %s\n", why);
    fflush(stdout);
}

static unsigned long long sames;

static void on_same(void *ctx, const struct gw_topo *map)
{
    sames++;
}

static const struct gw_shards_ops ops = { on_map, on_error, on_same };

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    char line[256];
    static char buf[4096];
    static size_t len;
    ssize_t n = read(0, buf + len, sizeof buf - 1 - len);

    if (n <= 0) {
        event_base_loopbreak(base);
        return;
    }
    len += (size_t)n;
    char *nl;
    while ((nl = memchr(buf, '\n', len))) {
        size_t l = (size_t)(nl - buf);
        snprintf(line, sizeof line, "%.*s", (int)l, buf);
        memmove(buf, nl + 1, len - l - 1);
        len -= l + 1;
        int k;
        if (sscanf(line, "refresh %d", &k) == 1) {
            for (int i = 0; i < k; i++)
                gw_shards_refresh(shards, "asked by the test");
        } else if (sscanf(line, "hurry %d", &k) == 1) {
            gw_shards_hurry(shards, k != 0);
        } else if (strcmp(line, "stats") == 0) {
            printf("stats %llu %llu %llu %s %llu\n", (unsigned long long)gw_shards_queries(shards),
                   (unsigned long long)gw_shards_failures(shards),
                   (unsigned long long)gw_shards_changes(shards),
                   gw_shards_state_name(gw_shards_state(shards)), sames);
            fflush(stdout);
        } else if (strcmp(line, "quit") == 0) {
            event_base_loopbreak(base);
        }
    }
}

int main(int argc, char **argv)
{
    struct gw_shards_addr seeds[8];
    char hosts[8][64];
    int n = 0;

    if (argc < 4 || argc - 3 > 8) {
        fprintf(stderr, "usage: shards_probe REFRESH_MS MIN_GAP_MS HOST:PORT...\n");
        return 2;
    }
    for (int i = 3; i < argc; i++, n++) {
        const char *colon = strrchr(argv[i], ':');
        if (!colon || (size_t)(colon - argv[i]) >= sizeof hosts[0])
            return 2;
        snprintf(hosts[n], sizeof hosts[n], "%.*s", (int)(colon - argv[i]), argv[i]);
        seeds[n].host = hosts[n];
        seeds[n].port = atoi(colon + 1);
    }
    gw_log_setup(GW_LOG_DEBUG, GW_LOG_TEXT, 2);
    base = event_base_new();
    struct gw_shards_opts o = {
        .seeds = seeds,
        .n_seeds = (size_t)n,
        .conn = { .connect_timeout_ms = 1000, .max_out_bytes = 1 << 20, .max_in_bytes = 16 << 20 },
        .refresh_ms = atoi(argv[1]),
        .min_gap_ms = atoi(argv[2]),
        .query_timeout_ms = 1000,
        .hurry_ms = HURRY_MS,
    };
    shards = gw_shards_new(base, &o, &ops, NULL);
    if (!shards)
        return 2;
    struct event *in = event_new(base, 0, EV_READ | EV_PERSIST, on_stdin, NULL);
    event_add(in, NULL);
    if (gw_shards_start(shards) != 0 || gw_shards_start(shards) != -EINVAL)
        return 3;
    event_base_dispatch(base);
    gw_shards_free(shards);
    event_free(in);
    event_base_free(base);
    printf("bye\n");
    fflush(stdout);
    return 0;
}
