/* Internals of the slot map shared by topo.c (the map, its reading, diff and
 * redirections) and topo_reply.c (the reply parsers). No other file includes
 * this: the map is opaque everywhere else. */
#ifndef GW_TOPO_INT_H
#define GW_TOPO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topo.h"

#define GW_TOPO_NO_OWNER UINT16_MAX

/* The map. owner[] holds an index into nodes (< GW_TOPO_MAX_NODES, so it
 * fits in 16 bits and never equals GW_TOPO_NO_OWNER). */
struct gw_topo {
    uint64_t version;
    uint32_t covered;
    size_t n_nodes, cap_nodes;
    struct gw_topo_node *nodes; /* owned */
    uint16_t owner[GW_SLOT_COUNT];
    char errstr[200];
};

/* Empties t: no node, no slot served, version 0 (errstr is left alone). */
void gw_topo_reset(struct gw_topo *t);
/* Records why the build failed (the first reason only); returns -EPROTO. */
__attribute__((format(printf, 2, 3))) int gw_topo_fail(struct gw_topo *t, const char *fmt, ...);
/* A host as Redis announces it: printable, no space, at most HOST_MAX bytes
 * (an empty one is allowed here; callers decide what it means). */
bool gw_topo_host_ok(const char *s, size_t len);
/* A new zeroed node at the end of t's nodes; the pointer lasts until the next add. */
struct gw_topo_node *gw_topo_node_add(struct gw_topo *t);
/* The index of the node with that len-byte id, or SIZE_MAX. */
size_t gw_topo_index(const struct gw_topo *t, const char *id, size_t len);
/* Gives slots lo..hi to node idx; a slot out of range or already served is
 * an error (cmd names the reply in the reason). */
int gw_topo_assign(struct gw_topo *t, long long lo, long long hi, size_t idx, const char *cmd);

#endif
