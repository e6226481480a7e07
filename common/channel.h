/* Channel-name rules of protocol v1 (docs/PROTOCOL.md): 1..128 bytes of
 * A-Z a-z 0-9 _ - : . @ / =. Pure functions, no allocation. */
#ifndef GW_CHANNEL_H
#define GW_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define GW_CHANNEL_MAX 128

/* True when name[0..len) is a valid client channel name. */
bool gw_channel_valid(const char *name, size_t len);

#endif
