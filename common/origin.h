/* The Origin check against cross-site WebSocket hijacking: a browser attaches
 * the page's cookies to any WebSocket upgrade, whatever page asks for it, and
 * names that page in the Origin header. This module parses the
 * --allowed-origins list and judges one upgrade's Origin and Host headers.
 * Pure: no sockets, no lws; a parsed list is read-only, so any thread.
 *
 * Grammar (docs/PROTOCOL.md, "Origin check"):
 *   Origin header  scheme "://" host [":" port]     scheme: http | https
 *   Host header    host [":" port]
 *   list entry     "*" | [scheme "://"] ["*."] host [":" port]
 *   host           DNS name (letters, digits, '-', '.'; no empty label) or
 *                  "[" IPv6 "]"; compared case-insensitively
 * A missing port is the scheme's default (80, 443). An entry without a scheme
 * matches http and https, each on its own default port unless a port is given.
 * "*.example.com" matches every name that ends in ".example.com" (any depth),
 * not example.com itself. "*" matches every well-formed Origin. */
#ifndef GW_ORIGIN_H
#define GW_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Longest Origin or Host header judged; longer ones are malformed. */
#define GW_ORIGIN_MAX 300
#define GW_ORIGIN_HOST_MAX 253

struct gw_origin_rule {
    unsigned schemes; /* GW_ORIGIN_HTTP and/or GW_ORIGIN_HTTPS */
    bool any; /* "*" */
    bool subdomains; /* "*." + host: strict subdomains of host */
    int port; /* 0: the default port of the Origin's scheme */
    char host[GW_ORIGIN_HOST_MAX + 1]; /* lower case, brackets kept for IPv6 */
};

#define GW_ORIGIN_HTTP 1u
#define GW_ORIGIN_HTTPS 2u

/* Zeroed memory is a valid empty list. */
struct gw_origin_list {
    struct gw_origin_rule *rules; /* owned */
    size_t count;
};

/* Parses text (comma-separated entries, spaces around commas ignored; ""
 * gives the empty list) into *list, replacing what it held. Returns 0, or
 * -EINVAL with a one-line reason in err and *list unchanged. Allocates. */
int gw_origin_list_parse(struct gw_origin_list *list, const char *text, char *err, size_t errlen);

/* Frees the rules; the list is empty afterwards. */
void gw_origin_list_deinit(struct gw_origin_list *list);

/* Whether an upgrade may proceed. origin/host are the header values (not
 * NUL-terminated), NULL when the header is absent. No Origin: allowed (not a
 * browser, and a non-browser can send any Origin it likes). A malformed
 * Origin: refused. Otherwise, with an empty list the Origin must name the
 * request's own Host (same host, same effective port; a Host without a port
 * accepts the default port of the Origin's scheme) and a missing or malformed
 * Host refuses; with a non-empty list only the list decides. */
bool gw_origin_allowed(const struct gw_origin_list *list, const char *origin, size_t origin_len,
                       const char *host, size_t host_len);

#endif
