/* Who may do what on this node: the JWT key set and policy built from the
 * config at startup, the anonymous rights, and the checks a session makes
 * before each subscribe and publish. Built by main before any worker starts
 * and read-only afterwards, so every worker thread may use it without a lock.
 * Knows nothing of sessions, sockets or metrics. */
#ifndef GW_ACCESS_H
#define GW_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jwt.h"
#include "jwtkeys.h"

struct gw_access {
    struct gw_jwt_keys *keys; /* owned; possibly empty (then every token is unknown_key) */
    struct gw_jwt_policy policy; /* strings borrowed from the config */
    const struct gw_strlist *anon_subscribe, *anon_publish, *anon_presence; /* the config's */
    const char *channel_prefix; /* the config's */
};

/* PRESENCE: read a channel's presence; needs SUBSCRIBE, narrowed by the
 * token's "presence" claim or, anonymous, by --anonymous-presence. */
enum gw_access_op { GW_ACCESS_SUBSCRIBE = 0, GW_ACCESS_PUBLISH, GW_ACCESS_PRESENCE };

/* Loads the keys named by cfg (which must outlive a) and checks that the
 * node grants something to someone: with no key and no anonymous pattern
 * nobody could ever subscribe or publish, so that is refused (secure by
 * default means an explicit choice, not an open node). Returns 0, or -EINVAL
 * with a one-line reason naming the flag in err; a is then deinitialised. */
int gw_access_init(struct gw_access *a, const struct gw_config *cfg, char *err, size_t errlen);
void gw_access_deinit(struct gw_access *a);

/* True when anonymous clients may subscribe to or publish to anything: then
 * they need no auth frame and no --auth-timeout applies. */
bool gw_access_anonymous_rights(const struct gw_access *a);

/* True when a client holding claims (NULL: anonymous) may do op on the
 * NUL-terminated channel. A token's channels/publish claims replace the
 * anonymous patterns; they are not added to them. Never true for a channel
 * whose Redis name is the node's own (gw_channel_reserved). Thread-safe. */
bool gw_access_allows(const struct gw_access *a, const struct gw_jwt_claims *claims,
                      enum gw_access_op op, const char *channel);

/* Verifies token[0..len) against the wall clock; as gw_jwt_verify (gives
 * *out to the caller on success, fills *err on failure). Thread-safe. */
int gw_access_verify(const struct gw_access *a, const char *token, size_t len,
                     struct gw_jwt_claims **out, struct gw_jwt_error *err);

/* Monotonic time (us) at which a token with this exp stops being accepted:
 * exp + --jwt-leeway, mapped from the wall clock onto gw_now_us() at now_us.
 * Never earlier than now_us; INT64_MAX for a token that outlives any
 * process (exp up to the 2^53 s jwt.c accepts). */
int64_t gw_access_expires_us(const struct gw_access *a, int64_t exp, int64_t now_us);

/* Copies sub into buf (size n >= 2) for a log field: printable ASCII other
 * than '"' and '\' kept, every other byte '?', truncated to n - 1 bytes;
 * "-" for NULL. The subject comes from the token issuer, not the client, but
 * a log line must not be splittable by any field. Returns buf. */
const char *gw_access_log_sub(const char *sub, char *buf, size_t n);

#endif
