/* wsbench: command line, resource limits, and the run of one scenario. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "report.h"
#include "scenario.h"
#include "sweep.h"

static void usage(FILE *out)
{
    fputs("usage: wsbench --target wsgate|nchan|node|ideal --servers HOST:PORT[,...] --scenario NAME [options]\n"
          "\n"
          "scenarios: fanout many-channels many-channels-sweep slow-consumers saturation idle-memory connect-storm\n"
          "\n"
          "  --redis HOST:PORT          Redis to PUBLISH into (wsgate, node)\n"
          "  --nchan-pub HOST:PORT      nchan publisher (default: first server); POST /pub/<channel>\n"
          "  --nchan-pub-conns N        pipelined publisher connections to nchan (16)\n"
          "  --conns N                  WebSocket clients (scenario default)\n"
          "  --channels N               channels; client i joins channel i %% N (fanout 1, many-channels N=conns)\n"
          "  --rate R[,R...]            publish rate(s), messages/s, one phase each\n"
          "  --deliveries D[,D...]      target deliveries/s instead; publish rate = D * channels / conns\n"
          "  --size BYTES               payload size (256; slow-consumers 4096)\n"
          "  --duration S               seconds per measured phase (scenario default)\n"
          "  --sweep N[,N...]           many-channels-sweep: connection counts; \"max\" = descriptor\n"
          "                             limit - 256, rounded down to 1000 (500,2000,8000,max); replaces --conns\n"
          "  --durations S[,S...]       many-channels-sweep: seconds per --rate (10,5); rates 1000,20000\n"
          "  --warm S                   slow-consumers: warm phase seconds (8)\n"
          "  --drain S                  longest wait for in-flight messages after a phase (5)\n"
          "  --settle S                 pause after connecting (nchan 1, idle-memory 2, others 0.3)\n"
          "  --slow-share F             slow-consumers: share of clients that stop reading (0.01)\n"
          "  --slow-rcvbuf BYTES        their SO_RCVBUF (4096)\n"
          "  --sat-loss PCT             saturation: a step fails above this loss (1)\n"
          "  --sat-p99-ms MS            ... or above this p99 (500)\n"
          "  --sat-factor F             rate multiplier between steps (2)\n"
          "  --sat-steps N              most steps (10); --sat-max-s S time budget (55)\n"
          "  --connect-concurrency N    connections in progress at once (500)\n"
          "  --connect-timeout S        give up on connections after this (30)\n"
          "  --src-addrs N              spread clients over source addresses 127.0.0.1..N (16)\n"
          "  --server-pids P[,P...]     gateway processes (children included) for CPU and RSS\n"
          "  --redis-pid P[,P...]       Redis process(es), reported separately (summed)\n"
          "  --redis-cluster LO-HI@HOST:PORT[,...]  Redis Cluster masters and their slot ranges:\n"
          "                             SPUBLISH each channel on its slot's master (wsgate only)\n"
          "  --target-name NAME         name shown and written for the target (e.g. wsgate-cluster)\n"
          "  --round N                  round number, copied into the JSON\n"
          "  --no-metrics               do not scrape wsgate /metrics\n"
          "  --path P                   upgrade path (wsgate/node /ws, nchan /sub/ + channel)\n"
          "  --token T                  wsgate: every client upgrades with PATH?token=T (one JWT for all)\n"
          "  --token-file FILE          ... the token read from FILE (one trailing newline dropped)\n"
          "  --redis-prefix P           Redis channel prefix (gw:)\n"
          "  --chan-prefix P            channel name prefix (unique per run by default)\n"
          "  --json FILE                append one JSON line per row\n"
          "  --label TEXT               copied into every JSON line\n"
          "  --no-header                do not print the table header\n"
          "  --quiet                    no progress lines on stderr\n",
          out);
}

static void parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        bench_die("bad address '%s' (want HOST:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1 || !a->sin_port)
        bench_die("bad address '%s' (IPv4 HOST:PORT)", s);
}

static int split(const char *s, char parts[][64], int max)
{
    int n = 0;
    while (*s && n < max) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len >= 64)
            bench_die("list item too long in '%s'", s);
        memcpy(parts[n], s, len);
        parts[n++][len] = 0;
        s += len + (e ? 1 : 0);
    }
    return n;
}

static void parse_sweep(struct bench_opts *o, const char *s)
{
    char parts[BENCH_MAX_SWEEP][64];
    o->nsweep = split(s, parts, BENCH_MAX_SWEEP);
    for (int i = 0; i < o->nsweep; i++)
        if (!strcmp(parts[i], "max"))
            o->sweep[i] = BENCH_SWEEP_MAX;
        else if ((o->sweep[i] = atoi(parts[i])) <= 0)
            bench_die("bad connection count '%s'", parts[i]);
}

static void parse_durations(struct bench_opts *o, const char *s)
{
    char parts[BENCH_MAX_RATES][64];
    o->ndurations = split(s, parts, BENCH_MAX_RATES);
    for (int i = 0; i < o->ndurations; i++)
        if ((o->durations[i] = atof(parts[i])) <= 0)
            bench_die("bad duration '%s'", parts[i]);
}

static void parse_rates(struct bench_opts *o, const char *s, int deliveries)
{
    char parts[BENCH_MAX_RATES][64];
    o->nrates = split(s, parts, BENCH_MAX_RATES);
    o->rates_are_deliveries = deliveries;
    for (int i = 0; i < o->nrates; i++)
        if ((o->rates[i] = atof(parts[i])) <= 0)
            bench_die("bad rate '%s'", parts[i]);
}

/* The token is the whole file but one trailing newline, as wsgate reads its secret. */
static const char *read_token(const char *path)
{
    static char buf[BENCH_TOKEN_MAX + 2];
    FILE *f = fopen(path, "r");
    if (!f)
        bench_die("cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    if (n && buf[n - 1] == '\r')
        buf[--n] = 0;
    return buf;
}

/* The token goes into the request line verbatim, so only base64url and '.' are allowed
 * (a JWT needs no percent-encoding), and it must fit wsgate's 4 KiB header buffer. */
static void check_token(const struct bench_opts *o)
{
    size_t len = strlen(o->token);
    if (o->target != TARGET_WSGATE)
        bench_die("--token/--token-file: only for --target wsgate");
    if (!len || len > BENCH_TOKEN_MAX)
        bench_die("token: %zu bytes, want 1..%d", len, BENCH_TOKEN_MAX);
    if (strspn(o->token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != len)
        bench_die("token: only base64url characters and '.' (a compact JWT)");
}

/* The generator needs one descriptor per client; root may raise the hard limit too. */
static void raise_nofile(int need)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= (rlim_t)need)
        return;
    if (rl.rlim_max < (rlim_t)need)
        rl.rlim_max = (rlim_t)need;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)need)
            bench_die("need %d file descriptors, the hard limit is %llu (raise it: ulimit -Hn)", need,
                      (unsigned long long)rl.rlim_max);
    }
}

enum {
    OPT_REDIS = 256, OPT_NCHAN_PUB, OPT_NCHAN_PUB_CONNS, OPT_CHANNELS, OPT_DELIV, OPT_WARM, OPT_DRAIN,
    OPT_SETTLE, OPT_SLOW_SHARE, OPT_SLOW_RCVBUF, OPT_SAT_LOSS, OPT_SAT_P99, OPT_SAT_FACTOR, OPT_SAT_STEPS,
    OPT_SAT_MAX, OPT_CC, OPT_CT, OPT_SRC, OPT_SPIDS, OPT_RPID, OPT_NO_METRICS, OPT_PATH, OPT_RPREFIX,
    OPT_CPREFIX, OPT_JSON, OPT_LABEL, OPT_NO_HEADER, OPT_QUIET, OPT_SWEEP, OPT_DURATIONS, OPT_TOKEN,
    OPT_TOKEN_FILE, OPT_RCLUSTER, OPT_TNAME, OPT_ROUND
};

static const struct option longopts[] = {
    { "target", 1, 0, 't' }, { "servers", 1, 0, 's' }, { "scenario", 1, 0, 'S' }, { "conns", 1, 0, 'c' },
    { "rate", 1, 0, 'r' }, { "size", 1, 0, 'z' }, { "duration", 1, 0, 'd' }, { "help", 0, 0, 'h' },
    { "redis", 1, 0, OPT_REDIS }, { "nchan-pub", 1, 0, OPT_NCHAN_PUB },
    { "nchan-pub-conns", 1, 0, OPT_NCHAN_PUB_CONNS }, { "channels", 1, 0, OPT_CHANNELS },
    { "deliveries", 1, 0, OPT_DELIV }, { "warm", 1, 0, OPT_WARM }, { "drain", 1, 0, OPT_DRAIN },
    { "settle", 1, 0, OPT_SETTLE }, { "slow-share", 1, 0, OPT_SLOW_SHARE },
    { "slow-rcvbuf", 1, 0, OPT_SLOW_RCVBUF }, { "sat-loss", 1, 0, OPT_SAT_LOSS },
    { "sat-p99-ms", 1, 0, OPT_SAT_P99 }, { "sat-factor", 1, 0, OPT_SAT_FACTOR },
    { "sat-steps", 1, 0, OPT_SAT_STEPS }, { "sat-max-s", 1, 0, OPT_SAT_MAX },
    { "connect-concurrency", 1, 0, OPT_CC }, { "connect-timeout", 1, 0, OPT_CT },
    { "src-addrs", 1, 0, OPT_SRC }, { "server-pids", 1, 0, OPT_SPIDS }, { "redis-pid", 1, 0, OPT_RPID },
    { "no-metrics", 0, 0, OPT_NO_METRICS }, { "path", 1, 0, OPT_PATH }, { "redis-prefix", 1, 0, OPT_RPREFIX },
    { "chan-prefix", 1, 0, OPT_CPREFIX }, { "json", 1, 0, OPT_JSON }, { "label", 1, 0, OPT_LABEL },
    { "no-header", 0, 0, OPT_NO_HEADER }, { "quiet", 0, 0, OPT_QUIET }, { "sweep", 1, 0, OPT_SWEEP },
    { "durations", 1, 0, OPT_DURATIONS }, { "token", 1, 0, OPT_TOKEN }, { "token-file", 1, 0, OPT_TOKEN_FILE },
    { "redis-cluster", 1, 0, OPT_RCLUSTER }, { "target-name", 1, 0, OPT_TNAME }, { "round", 1, 0, OPT_ROUND },
    { 0, 0, 0, 0 }
};

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    struct bench_opts *o = &b->o;
    b->rss_per_conn = -1;
    o->drain_max_s = 5;
    o->settle_s = -1;
    o->slow_share = 0.01;
    o->slow_rcvbuf = 4096;
    o->sat_loss_pct = 1;
    o->sat_p99_ms = 500;
    o->sat_factor = 2;
    o->sat_steps = 10;
    o->sat_max_s = 55;
    o->connect_concurrency = 500;
    o->connect_timeout_s = 30;
    o->src_addrs = 16;
    o->nchan_pub_conns = 16;
    o->metrics = 1;
    o->redis_prefix = "gw:";
    o->label = "";
    int header = 1, target_set = 0;
    char parts[BENCH_MAX_PIDS][64];
    const char *json_path = NULL;
    static char cprefix[32];

    int ch;
    while ((ch = getopt_long(argc, argv, "t:s:S:c:r:z:d:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            target_set = 1;
            if (!strcmp(optarg, "wsgate"))
                o->target = TARGET_WSGATE;
            else if (!strcmp(optarg, "nchan"))
                o->target = TARGET_NCHAN;
            else if (!strcmp(optarg, "node"))
                o->target = TARGET_NODE;
            else if (!strcmp(optarg, "ideal"))
                o->target = TARGET_IDEAL;
            else
                bench_die("unknown target '%s'", optarg);
            break;
        case 's':
            o->nservers = split(optarg, parts, BENCH_MAX_SERVERS);
            for (int i = 0; i < o->nservers; i++)
                parse_addr(parts[i], &o->servers[i]);
            break;
        case 'S': o->scenario = optarg; break;
        case 'c': o->conns = atoi(optarg); break;
        case 'r': parse_rates(o, optarg, 0); break;
        case 'z': o->size = atoi(optarg); break;
        case 'd': o->duration_s = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        case OPT_REDIS: parse_addr(optarg, &o->redis); o->have_redis = 1; break;
        case OPT_NCHAN_PUB: parse_addr(optarg, &o->nchan_pub); o->have_nchan_pub = 1; break;
        case OPT_NCHAN_PUB_CONNS: o->nchan_pub_conns = atoi(optarg); break;
        case OPT_CHANNELS: o->channels = atoi(optarg); break;
        case OPT_DELIV: parse_rates(o, optarg, 1); break;
        case OPT_WARM: o->warm_s = atof(optarg); break;
        case OPT_DRAIN: o->drain_max_s = atof(optarg); break;
        case OPT_SETTLE: o->settle_s = atof(optarg); break;
        case OPT_SLOW_SHARE: o->slow_share = atof(optarg); break;
        case OPT_SLOW_RCVBUF: o->slow_rcvbuf = atoi(optarg); break;
        case OPT_SAT_LOSS: o->sat_loss_pct = atof(optarg); break;
        case OPT_SAT_P99: o->sat_p99_ms = atof(optarg); break;
        case OPT_SAT_FACTOR: o->sat_factor = atof(optarg); break;
        case OPT_SAT_STEPS: o->sat_steps = atoi(optarg); break;
        case OPT_SAT_MAX: o->sat_max_s = atof(optarg); break;
        case OPT_CC: o->connect_concurrency = atoi(optarg); break;
        case OPT_CT: o->connect_timeout_s = atof(optarg); break;
        case OPT_SRC: o->src_addrs = atoi(optarg); break;
        case OPT_SPIDS:
            o->server_roots.n = split(optarg, parts, BENCH_MAX_PIDS);
            for (int i = 0; i < o->server_roots.n; i++)
                o->server_roots.pid[i] = atoi(parts[i]);
            break;
        case OPT_RPID:
            o->redis_pids.n = split(optarg, parts, BENCH_MAX_PIDS);
            for (int i = 0; i < o->redis_pids.n; i++)
                o->redis_pids.pid[i] = atoi(parts[i]);
            break;
        case OPT_RCLUSTER:
            o->ncluster = split(optarg, parts, BENCH_MAX_MASTERS);
            for (int i = 0; i < o->ncluster; i++) {
                char *at = strchr(parts[i], '@');
                if (!at || sscanf(parts[i], "%d-%d@", &o->cluster[i].lo, &o->cluster[i].hi) != 2 ||
                    o->cluster[i].lo < 0 || o->cluster[i].hi > 16383 || o->cluster[i].lo > o->cluster[i].hi)
                    bench_die("--redis-cluster: '%s' is not LO-HI@HOST:PORT", parts[i]);
                parse_addr(at + 1, &o->cluster[i].addr);
            }
            o->redis = o->cluster[0].addr;
            o->have_redis = 1;
            break;
        case OPT_TNAME: o->target_name = optarg; break;
        case OPT_ROUND: o->round = atoi(optarg); break;
        case OPT_NO_METRICS: o->metrics = 0; break;
        case OPT_PATH: o->path = optarg; break;
        case OPT_RPREFIX: o->redis_prefix = optarg; break;
        case OPT_CPREFIX: o->chan_prefix = optarg; break;
        case OPT_JSON: json_path = optarg; break;
        case OPT_LABEL: o->label = optarg; break;
        case OPT_NO_HEADER: header = 0; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_SWEEP: parse_sweep(o, optarg); break;
        case OPT_DURATIONS: parse_durations(o, optarg); break;
        case OPT_TOKEN: o->token = optarg; break;
        case OPT_TOKEN_FILE: o->token = read_token(optarg); break;
        default: usage(stderr); return 2;
        }
    }
    if (!target_set || !o->nservers || !o->scenario) {
        usage(stderr);
        return 2;
    }
    if (o->target != TARGET_NCHAN && !o->have_redis && strcmp(o->scenario, "idle-memory") &&
        strcmp(o->scenario, "connect-storm"))
        bench_die("--redis is required for every target but nchan");
    if (o->conns < 0 || o->size < 0 || o->src_addrs < 1 || o->src_addrs > 65000 || o->connect_concurrency < 1 ||
        o->nchan_pub_conns < 1 || o->slow_share <= 0 || o->slow_share >= 1 || o->sat_factor <= 1)
        bench_die("an option is out of range (see --help)");
    if (!o->path)
        o->path = o->target == TARGET_NCHAN ? "/sub/" : "/ws";
    if (o->token)
        check_token(o);
    if (!o->chan_prefix) {
        /* unique per run: nchan keeps messages per channel in Redis across runs */
        snprintf(cprefix, sizeof cprefix, "b%lx_%d_", (unsigned long)time(NULL) % 100000, (int)getpid());
        o->chan_prefix = cprefix;
    }

    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(o->scenario, "many-channels-sweep"))
        sweep_plan(b);
    raise_nofile((o->conns > 0 ? o->conns : 10000) + BENCH_FD_RESERVE);
    if ((b->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        bench_die("epoll_create1: %s", strerror(errno));
    if (!(b->rbuf = malloc(BENCH_RBUF)))
        bench_die("out of memory");
    b->rng = (uint64_t)bench_now_us() * 0x9E3779B97F4A7C15ull | 1;
    if (json_path && !(b->json = fopen(json_path, "a")))
        bench_die("cannot open %s: %s", json_path, strerror(errno));
    if (header)
        report_header(stdout);
    if (scenario_run(b) < 0)
        bench_die("unknown scenario '%s'", o->scenario);
    if (b->json)
        fclose(b->json);
    free(b->rbuf);
    return 0;
}
