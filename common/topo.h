/* A Redis Cluster's topology as the gateway sees it: which master serves each
 * of the 16384 slots, built from a parsed CLUSTER SHARDS or CLUSTER SLOTS
 * reply (a hiredis redisReply tree, RESP2), with lookups by slot and by key,
 * the diff between two maps (the slots whose owner changed: the channels
 * that must be subscribed again elsewhere) and the parsing of MOVED/ASK
 * error replies.
 *
 * A map owns its nodes and their strings; it never owns or keeps a reply.
 * It opens no connection and knows no channel: the connection layer
 * (gateway/rconn) hands it replies and asks it where a key lives. Replies are
 * validated strictly: a malformed one gives -EPROTO and a reason in
 * gw_topo_errstr, never a crash, and leaves the map empty.
 *
 * Not thread-safe: one thread owns a map; a built map is read-only, so it may
 * be handed to another thread whole (and then never touched by the builder). */
#ifndef GW_TOPO_H
#define GW_TOPO_H

#include <stddef.h>
#include <stdint.h>

#include "slot.h"

struct redisReply;
struct gw_topo;

#define GW_TOPO_ID_LEN 40     /* a cluster node ID: 40 hex digits */
#define GW_TOPO_HOST_MAX 255  /* a host name or address, without the NUL */
#define GW_TOPO_MAX_NODES 1024 /* more masters than that: the reply is refused */

/* What CLUSTER SHARDS says of a node's health; CLUSTER SLOTS says nothing
 * (UNKNOWN). A FAILED master still owns its slots until a replica is
 * promoted, so lookups still return it. */
enum gw_topo_health {
    GW_TOPO_HEALTH_UNKNOWN = 0,
    GW_TOPO_HEALTH_ONLINE,
    GW_TOPO_HEALTH_LOADING,
    GW_TOPO_HEALTH_FAILED,
};
const char *gw_topo_health_name(enum gw_topo_health h);

/* One master. Strings are NUL-terminated and owned by the map. */
struct gw_topo_node {
    char id[GW_TOPO_ID_LEN + 1];
    char host[GW_TOPO_HOST_MAX + 1]; /* SHARDS: endpoint, else ip; SLOTS: host */
    uint16_t port;                   /* plain TCP port, 0 when none is announced */
    uint16_t tls_port;               /* TLS port, 0 when none is announced */
    long long repl_offset;           /* SHARDS' replication-offset, else 0 */
    enum gw_topo_health health;
    uint32_t slots;                  /* how many slots it serves (0 for an empty master) */
    uint64_t config_epoch;           /* CLUSTER NODES' config epoch, else 0 */
};

/* A new empty map (no node, no slot served, version 0). Never NULL. */
struct gw_topo *gw_topo_new(void);
/* Frees t and its nodes. NULL is allowed. */
void gw_topo_free(struct gw_topo *t);

/* Rebuilds t from reply, the answer to CLUSTER SHARDS (Redis 7+). Every
 * master becomes a node, also one with no slots (a master added but not yet
 * given slots, or a failed one whose replica took over: health says which);
 * replicas are validated and skipped. version is the caller's number for
 * this map (e.g. a refresh counter): kept, never interpreted here.
 * Returns 0, or -EPROTO with t empty and a reason in gw_topo_errstr (an
 * error reply, a wrong shape, a bad field, a slot served twice, a shard with
 * slots and not exactly one master). reply is borrowed. */
int gw_topo_from_shards(struct gw_topo *t, const struct redisReply *reply, uint64_t version);

/* The same from CLUSTER SLOTS (any Redis Cluster version). seed_host is the
 * host the reply came from: Redis gives an empty host when it does not know
 * its own address, meaning "the one you asked". NULL refuses such a reply.
 * A "?" host (unknown endpoint) is refused. Only masters that serve slots
 * are listed by SLOTS, so only those become nodes. Same returns as above. */
int gw_topo_from_slots(struct gw_topo *t, const struct redisReply *reply, const char *seed_host,
                       uint64_t version);

/* The same from CLUSTER NODES (a bulk string of one line per node). It is
 * the only one of the three that carries each master's config epoch: the
 * number Redis Cluster itself uses to decide which claim on a slot is newer.
 * A failover's election raises the cluster's highest epoch; a migration
 * makes the importing master hold the highest (raising it unless that master
 * held it already). So a view whose gw_topo_epoch is lower than one already
 * seen missed a change and is stale; an equal one does not prove the same
 * view.
 * Nodes in handshake are skipped; a master without an address is refused if
 * it serves slots, skipped if not; an empty address on the `myself` line is
 * seed_host (NULL refuses it). Slots being migrated ("[N->-id]",
 * "[N-<-id]") stay with the master that serves them. Same returns. */
int gw_topo_from_nodes(struct gw_topo *t, const struct redisReply *reply, const char *seed_host,
                       uint64_t version);

/* The highest config epoch of the map's masters (0 for a map built from
 * SHARDS or SLOTS, which carry none). */
uint64_t gw_topo_epoch(const struct gw_topo *t);

/* The reason the last build failed ("" after a success). Owned by t. */
const char *gw_topo_errstr(const struct gw_topo *t);
uint64_t gw_topo_version(const struct gw_topo *t);
/* How many slots have a master (16384 in a healthy cluster). */
uint32_t gw_topo_covered(const struct gw_topo *t);

size_t gw_topo_node_count(const struct gw_topo *t);
/* The i-th node (i < gw_topo_node_count), borrowed from t until its next
 * build or free. */
const struct gw_topo_node *gw_topo_node(const struct gw_topo *t, size_t i);
/* The node with that 40-digit ID, or NULL. */
const struct gw_topo_node *gw_topo_find(const struct gw_topo *t, const char *id);

/* The master serving slot (< GW_SLOT_COUNT), or NULL when none does (or the
 * slot is out of range). Borrowed as gw_topo_node's. */
const struct gw_topo_node *gw_topo_slot_owner(const struct gw_topo *t, unsigned slot);
/* The master serving the len-byte key's slot (gw_slot_of), or NULL. */
const struct gw_topo_node *gw_topo_key_owner(const struct gw_topo *t, const char *key, size_t len);

/* The slots whose owner differs between two maps. An owner is the same when
 * its node ID, host and ports are (a node that came back on another address
 * needs a new connection, so it counts as a move). */
struct gw_topo_diff {
    uint32_t count; /* slots that changed */
    uint8_t bits[GW_SLOT_COUNT / 8];
};

/* Fills d with the slots whose owner in `to` is not their owner in `from`:
 * taken, lost or given to another node. from may be NULL (an empty map:
 * every served slot of `to` changed). Cannot fail. */
void gw_topo_diff(const struct gw_topo *from, const struct gw_topo *to, struct gw_topo_diff *d);
/* The first changed slot >= from, or -1 when there is none. */
int gw_topo_diff_next(const struct gw_topo_diff *d, unsigned from);

/* A redirection error reply: "MOVED <slot> <host>:<port>" or
 * "ASK <slot> <host>:<port>". host may be empty (Redis does not know its
 * endpoint: use the address the command went to); a v6 address is written
 * without brackets, so the port follows the last ':'. */
enum gw_topo_redirect_kind {
    GW_TOPO_MOVED = 1, /* the slot lives there now: update the map, resend */
    GW_TOPO_ASK,       /* this once: send ASKING then the command there */
};
struct gw_topo_redirect {
    enum gw_topo_redirect_kind kind;
    uint16_t slot;
    uint16_t port;
    char host[GW_TOPO_HOST_MAX + 1];
};

/* What a cluster error reply asks of the client, told by its first word. */
enum gw_topo_error {
    GW_TOPO_ERR_OTHER = 0,   /* not a cluster condition: the command itself failed */
    GW_TOPO_ERR_MOVED,       /* gw_topo_redirect_parse: update the map, resend there */
    GW_TOPO_ERR_ASK,         /* gw_topo_redirect_parse: ASKING + the command there, once */
    GW_TOPO_ERR_TRYAGAIN,    /* a multi-key command while its keys are split by a migration:
                              * retry after a short pause */
    GW_TOPO_ERR_CLUSTERDOWN, /* the cluster or the slot is not served: back off, refresh, retry */
    GW_TOPO_ERR_CROSSSLOT,   /* keys of different slots in one command: the caller's bug,
                              * never retried */
};
/* Classifies the len bytes of an error reply's text. Cannot fail. */
enum gw_topo_error gw_topo_error_kind(const char *s, size_t len);

/* Parses the len bytes of an error reply's text. Returns 0 with *r filled,
 * -ENOENT when it is not a redirection (another error: *r untouched), or
 * -EBADMSG when it starts like one but is malformed (slot out of range, no
 * port, trailing bytes...). */
int gw_topo_redirect_parse(const char *s, size_t len, struct gw_topo_redirect *r);

#endif
