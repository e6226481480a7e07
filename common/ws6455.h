/* The RFC 6455 checks lws 4.1.6 leaves to its user: the opening handshake's
 * Sec-WebSocket-Key and Sec-WebSocket-Version, and the body of a client's
 * close frame. Pure functions over bytes; any thread. */
#ifndef GW_WS6455_H
#define GW_WS6455_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an upgrade request deserves before lws answers it (RFC 6455 4.2.1,
 * 4.2.2): 0 to go on, 400 (no or malformed key, no version) or 426 (a
 * version other than 13; the answer must then carry
 * "Sec-WebSocket-Version: 13"). key and version are the header values,
 * NULL when absent. */
int gw_ws_upgrade_status(const char *key, size_t key_len, const char *version, size_t version_len);

/* True when body[0..len) is an acceptable close frame body from a peer
 * (RFC 6455 5.5.1, 7.4): empty, or a 2-byte code in 1000..1003, 1007..1011 or
 * 3000..4999 followed by any reason. A 1-byte body never is. */
bool gw_ws_close_body_valid(const uint8_t *body, size_t len);

#endif
