/* Open connections per peer IP address, shared by every worker of a node for
 * --max-connections-per-ip. A mutex around a SipHash table (dict.h): one
 * short critical section per upgrade and per close, cheap next to the
 * handshake itself. An entry exists only while its count is above zero, so
 * the table holds at most one entry per open connection. Any thread. */
#ifndef GW_IPCOUNT_H
#define GW_IPCOUNT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "dict.h"

/* An IPv6 address; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so a
 * dual-stack listener counts one client once whichever family it arrives on. */
struct gw_ipcount_key {
    unsigned char b[16];
};

/* Fills key from a peer address. Returns 0, or -EAFNOSUPPORT for anything
 * but AF_INET / AF_INET6 (or a short address). Pure. */
int gw_ipcount_key_from_sockaddr(struct gw_ipcount_key *key, const struct sockaddr *sa, socklen_t len);

/* Writes the address as text (a.b.c.d for IPv4) into out. Pure. */
void gw_ipcount_key_format(const struct gw_ipcount_key *key, char *out, size_t outlen);

struct gw_ipcount {
    pthread_mutex_t lock;
    struct gw_dict counts; /* guarded by lock: key bytes -> count (as uintptr_t) */
};

void gw_ipcount_init(struct gw_ipcount *t);
/* Frees the entries; call when no thread uses the table any more. */
void gw_ipcount_deinit(struct gw_ipcount *t);

/* Takes one slot for key if fewer than max are taken; returns whether it did.
 * Check and increment happen under one lock, so concurrent callers never
 * overshoot max. Every true must be paired with one gw_ipcount_give. */
bool gw_ipcount_take(struct gw_ipcount *t, const struct gw_ipcount_key *key, int max);

/* Gives back one slot of key; removes the entry when its count reaches 0. */
void gw_ipcount_give(struct gw_ipcount *t, const struct gw_ipcount_key *key);

/* Slots taken for key (0 when it has no entry). */
int gw_ipcount_get(struct gw_ipcount *t, const struct gw_ipcount_key *key);

/* Entries in the table: addresses with at least one slot. */
size_t gw_ipcount_entries(struct gw_ipcount *t);

#endif
