/* A query string's name=value pairs, one after the other ("a=1&b=2"), as
 * borrowed slices of the caller's text: no copy, no decoding (the HTTP layer
 * percent-decodes before). The one walk both server-API queries use
 * (ctl.c: GET /api/history, GET /api/channels). Pure; any thread. */
#ifndef GW_QUERY_H
#define GW_QUERY_H

#include <stddef.h>

/* A walk over q[0..len); the caller's text must outlive it. */
struct gw_query {
    const char *p, *end; /* the rest; p == end: done */
};

/* Starts a walk over q[0..len) (q may be NULL when len is 0: no pairs). */
void gw_query_init(struct gw_query *it, const char *q, size_t len);

/* The next part, split at its first '=' into *name (nlen bytes) and *value
 * (vlen bytes, may hold more '='), both pointing into the text. Parts are
 * separated by '&'; a trailing '&' ends the walk, but an empty part anywhere
 * else ("&a=1", "a=1&&b=2") is one without '='. Returns 1 for a pair, 0 at
 * the end, -EINVAL for a part without '=' (the walk then ends). */
int gw_query_next(struct gw_query *it, const char **name, size_t *nlen, const char **value, size_t *vlen);

#endif
