/* Channel-name rules of protocol v1 (docs/PROTOCOL.md): 1..128 bytes of
 * A-Z a-z 0-9 _ - : . @ / =. Pure functions, no allocation. */
#ifndef GW_CHANNEL_H
#define GW_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define GW_CHANNEL_MAX 128

/* Redis channels under this prefix are the node's own (the heartbeat is
 * "__wsgate:hb:<node_id>"); no client may reach them. */
#define GW_CHANNEL_RESERVED "__wsgate:"

/* True when name[0..len) is a valid client channel name. */
bool gw_channel_valid(const char *name, size_t len);

/* True when the Redis channel prefix + name starts with GW_CHANNEL_RESERVED,
 * so that a client must not subscribe or publish to name. */
bool gw_channel_reserved(const char *prefix, size_t prefix_len, const char *name, size_t len);

#endif
