/* Parsers for the node's two addresses: where it listens and where its Redis
 * is. They only turn text into fields; nothing here resolves names or opens
 * sockets. Any thread; no state. */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* One Sentinel's address: host owned by the gw_redis_addr that lists it. */
struct gw_sentinel_addr {
    char *host;
    int port;
};

/* At most this many Sentinels in one URL (a group is 3 or 5). */
#define GW_ADDR_MAX_SENTINELS 16

/* A parsed Redis URL. Every string is owned by the struct and released by
 * gw_addr_redis_deinit(). Exactly one of host, unix_path and master_name is
 * set: a direct TCP Redis, a unix socket, or a master found through the
 * Sentinels listed in sentinels. */
struct gw_redis_addr {
    char *host; /* TCP host, or NULL when unix_path or master_name is set; owned */
    int port;
    char *unix_path; /* owned, or NULL */
    char *username; /* owned, or NULL (Redis 6 ACL user) */
    char *password; /* owned, or NULL */
    int db;
    bool tls; /* rediss:// or rediss+sentinel:// (then Sentinels and master alike) */
    char *master_name; /* redis+sentinel://: the monitored master's name; owned, or NULL */
    struct gw_sentinel_addr *sentinels; /* owned array of nsentinels, each host owned */
    int nsentinels;
};

/* Parses "host:port", "[v6]:port" or ":port" (host 0.0.0.0), port 1..65535.
 * Returns 0 with *host a new string the caller owns, or -EINVAL with *host
 * NULL and a one-line reason in err (errlen bytes). */
int gw_addr_parse_listen(const char *s, char **host, int *port, char *err, size_t errlen);

/* Parses redis://[[user]:password@]host[:port][/db],
 * rediss://... (the same, over TLS: addr->tls),
 * redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master>[?db=N]
 * (Sentinels on port 26379 by default; the user info is the master's AUTH,
 * not the Sentinels'), rediss+sentinel://... (the same, over TLS) and
 * unix://[[user]:password@]/path/to.sock[?db=N]. Returns 0 with *addr filled (release it with
 * gw_addr_redis_deinit), or -EINVAL with *addr zeroed and a reason in err
 * that never repeats the URL, which may carry a password. */
int gw_addr_parse_redis(const char *url, struct gw_redis_addr *addr, char *err, size_t errlen);

/* Frees the strings of addr, wiping the password first, and zeroes it.
 * Safe on a zeroed or already released addr. */
void gw_addr_redis_deinit(struct gw_redis_addr *addr);

#endif
