/* wsbench: shared state of the load generator. One thread, one epoll loop: every
 * struct here belongs to that thread, so nothing is atomic or locked. */
#ifndef WSBENCH_BENCH_H
#define WSBENCH_BENCH_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include "hist.h"

#define BENCH_MAX_SERVERS 16
#define BENCH_MAX_PIDS 64
#define BENCH_MAX_RATES 32
#define BENCH_MAX_SWEEP 16
/* --sweep's "max": resolved from the descriptor limit at run time (sweep.c). */
#define BENCH_SWEEP_MAX (-1)
/* Descriptors wsbench keeps beyond its clients: stdio, epoll, the publisher connections,
 * the --json file, /proc and /metrics reads. */
#define BENCH_FD_RESERVE 256
#define BENCH_RBUF (256 * 1024)
/* Longest --token: the request line must fit wsgate's 4 KiB HTTP header buffer with the
 * other headers (about 200 bytes). */
#define BENCH_TOKEN_MAX 3584
/* Bytes of a frame we keep across reads: enough for a frame header plus the part of
 * the payload that holds "s" and "t" (the channel name comes first, up to 128 bytes). */
#define BENCH_PART_MAX 512
#define BENCH_HEAD_SCAN 320
/* Sliding window for duplicate/reorder detection, per connection. */
#define BENCH_WIN_BITS 1024

/* node and ideal speak wsgate protocol v1; nchan has its own adapter. */
enum bench_target { TARGET_WSGATE, TARGET_NCHAN, TARGET_NODE, TARGET_IDEAL };

/* First byte of every object registered in epoll, so one handler can dispatch. */
enum ep_kind { EP_CONN = 1, EP_PUB = 2 };

enum conn_state {
    CS_IDLE,        /* not started */
    CS_CONNECTING,  /* connect() in progress */
    CS_HANDSHAKE,   /* upgrade request sent, waiting for 101 */
    CS_SUBSCRIBING, /* subscribe sent, waiting for the ack (wsgate protocol only) */
    CS_LIVE,        /* receiving messages */
    CS_CLOSED       /* closed by either side or failed; never reused */
};

struct conn {
    uint8_t ep_kind;
    uint8_t state;
    uint8_t slow;      /* designated slow consumer: small SO_RCVBUF, may stop reading */
    uint8_t paused;    /* removed from epoll: not reading */
    uint8_t excluded;  /* left out of delivery/latency figures */
    uint8_t in_frag;   /* inside a fragmented data message */
    uint8_t failed;    /* never got live (connect/handshake error) */
    uint8_t pad_;
    int fd;
    uint32_t idx;
    uint32_t chan;
    uint16_t part_len;
    uint16_t close_code; /* from the server's close frame; 0 if none */
    uint8_t *part;       /* partial frame kept between reads, BENCH_PART_MAX bytes, lazy */
    uint64_t skip;       /* payload bytes of an already-accounted frame still to discard */
    int64_t frag_seq, frag_t;
    int64_t t_start_us, t_live_us;
    /* sequence tracking: max_seq is the highest seen; bit (s % WIN) set when s was seen */
    int64_t max_seq;
    uint64_t win[BENCH_WIN_BITS / 64];
    /* per phase */
    uint64_t recv, dups, reorders, stale;
};

struct chan {
    int64_t seq;  /* last sequence number published */
    int64_t base; /* first sequence number of the current phase */
    uint32_t measured; /* connections on this channel counted in the current phase */
    char name[48];
    uint8_t name_len;
    uint8_t owner; /* Redis Cluster: 1 + index of the master that owns the channel's slot; 0 unknown */
};

struct obuf {
    char *data;
    size_t off, len, cap; /* unsent bytes are data[off..len) */
};

/* A publisher connection: RESP to Redis, or pipelined HTTP POSTs to nchan. */
struct pubconn {
    uint8_t ep_kind;
    uint8_t want_out;
    uint8_t dead;
    int fd;
    struct obuf out;
    char *in;
    size_t in_len;
    uint64_t sent, replies, errors;
    int64_t receivers; /* sum of PUBLISH integer replies (Redis only) */
};

struct procset {
    int n;
    int pid[BENCH_MAX_PIDS];
};

struct proc_sample {
    double cpu_s;   /* utime + stime of every process in the set */
    long rss_kib;   /* sum of VmRSS */
};

struct machine_sample {
    unsigned long long proc, irq, total; /* jiffies (USER_HZ) */
};

/* Redis Cluster: a master and the slot range it owns (run.sh assigns the slots, so the map is
 * known before the run and never moves during it). */
struct cluster_master {
    int lo, hi;
    struct sockaddr_in addr;
};
#define BENCH_MAX_MASTERS 16

struct bench_opts {
    enum bench_target target;
    const char *target_name; /* shown and written instead of the target's name (NULL: the name) */
    int round;               /* copied into the JSON (0: not given) */
    struct cluster_master cluster[BENCH_MAX_MASTERS]; /* --redis-cluster: SPUBLISH to each slot's owner */
    int ncluster;
    const char *scenario;
    const char *label;
    struct sockaddr_in servers[BENCH_MAX_SERVERS];
    int nservers;
    struct sockaddr_in redis;
    struct sockaddr_in nchan_pub;
    int have_redis, have_nchan_pub;
    const char *path;         /* upgrade path; nchan: prefix, channel appended */
    const char *token;        /* wsgate: JWT sent as ?token= by every client; NULL: anonymous */
    const char *redis_prefix; /* prepended to channel names on PUBLISH */
    const char *chan_prefix;  /* channel name prefix, unique per run */
    int conns;
    int channels;
    double rates[BENCH_MAX_RATES];
    int nrates;
    int rates_are_deliveries; /* rates[] are deliveries/s, converted per scenario */
    int sweep[BENCH_MAX_SWEEP]; /* many-channels-sweep: connection counts, ascending once planned */
    int nsweep;
    double durations[BENCH_MAX_RATES]; /* many-channels-sweep: seconds per rate */
    int ndurations;
    int size;
    double duration_s;
    double warm_s;
    double drain_max_s;
    double settle_s; /* negative: scenario default */
    double slow_share;
    int slow_rcvbuf;
    double sat_loss_pct;
    double sat_p99_ms;
    double sat_factor;
    int sat_steps;
    double sat_max_s;
    int connect_concurrency;
    double connect_timeout_s;
    int src_addrs;
    int nchan_pub_conns;
    const char *json_path;
    struct procset server_roots; /* gateway pids given on the command line */
    struct procset redis_pids; /* Redis processes (every master in cluster mode) */
    int metrics; /* scrape wsgate /metrics */
    int quiet;
};

/* Counters and state of the measurement that is in progress. */
struct phase {
    const char *name;
    double rate;
    int64_t t_begin, t_pub_start, t_pub_end;
    uint64_t published;   /* messages published in this phase */
    uint64_t expected;    /* deliveries owed to measured connections */
    uint64_t delivered;   /* unique deliveries to measured connections */
    struct hist lat;      /* end-to-end latency, microseconds */
    struct hist loop_busy; /* time spent per loop iteration, microseconds */
    uint64_t sched_late;  /* publisher ticks more than 10 ms behind schedule */
    size_t max_pub_backlog_bytes;
    uint64_t max_pub_outstanding;
    struct rusage ru0;
    struct proc_sample srv0, redis0;
    struct machine_sample mach0;
};

struct bench {
    struct bench_opts o;
    int epfd;
    uint8_t *rbuf;
    struct conn *conns;
    int nconns;
    struct chan *chans;
    int nchans;
    struct pubconn *pubs;
    int npubs;
    /* publishing schedule */
    int publishing;
    double pub_rate;
    int64_t pub_t0;
    uint64_t pub_count;
    uint64_t rng;
    char *payload_pad;
    /* connection bookkeeping */
    int next_to_start;
    int in_progress;
    int live;
    int closed;
    uint64_t conn_errors;
    uint64_t ws_errors; /* error replies from the gateway */
    uint64_t closes_by_code[5000];
    struct procset servers; /* server_roots plus their descendants */
    struct phase ph;
    int exclude_slow;    /* slow clients stay out of the figures (slow-consumers) */
    double rss_per_conn; /* server RSS growth per live client while connecting; negative: unknown */
    FILE *json;
    int warned_tool;
};

/* base.c: the monotonic clock, a fatal error (exits 2), the log (quiet
 * aware), and a socket's place in the epoll set (obj starts with its kind). */
int64_t bench_now_us(void);
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void bench_log(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_ep_add(struct bench *b, int fd, uint32_t events, void *obj);
void bench_ep_mod(struct bench *b, int fd, uint32_t events, void *obj);
void bench_ep_del(struct bench *b, int fd);

/* loop.c: runs the epoll loop until deadline_us or until done(b) returns non-zero.
 * Drives connection starts (up to the concurrency cap) and the publisher schedule. */
void loop_run(struct bench *b, int64_t deadline_us, int (*done)(struct bench *));

/* wsconn.c */
void conn_start(struct bench *b, struct conn *c);
void conn_on_event(struct bench *b, struct conn *c, uint32_t events);
void conn_close(struct bench *b, struct conn *c);
void conn_pause(struct bench *b, struct conn *c);
void conn_resume(struct bench *b, struct conn *c);
void conn_phase_reset(struct conn *c);

/* pub.c */
void pub_open(struct bench *b);
void pub_close(struct bench *b);
void pub_on_event(struct bench *b, struct pubconn *p, uint32_t events);
/* Publishes what the schedule says is due by now; returns ms until the next message. */
int pub_tick(struct bench *b, int64_t now);
void pub_start(struct bench *b, double rate);
void pub_stop(struct bench *b);
uint64_t pub_outstanding(const struct bench *b);
size_t pub_backlog_bytes(const struct bench *b);

/* procstat.c */
void procset_expand(const struct procset *roots, struct procset *out);
struct proc_sample procset_sample(const struct procset *s);
int metrics_scrape(const struct sockaddr_in *addr, const char *name, double *value);
double rusage_cpu_s(const struct rusage *a, const struct rusage *b);
void machine_sample(struct machine_sample *m);
long tcp_mem_kib(void);

#endif
