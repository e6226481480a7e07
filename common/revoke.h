/* The node's copy of the token revocations (POST /api/revoke): per user
 * ("sub"), the second it was revoked and the second the record expires. A
 * token of a revoked user is refused when it was issued (iat) at or before
 * the revocation, or carries no iat at all; a later token is accepted.
 *
 * A mutex around a SipHash table (dict.h): the bus thread writes it (from
 * Redis at link-up and from the control channel), every worker reads it at
 * each token check, one short critical section with no Redis round trip
 * (cost in docs/BENCHMARKS.md, "Cost of a revocation check"). Any thread. */
#ifndef GW_REVOKE_H
#define GW_REVOKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dict.h"

/* Redis: one hash, user -> "<at> <until>" (gw_revoke_format_value). */
#define GW_REVOKE_HASH "wsgate:revoked"
/* How long a revocation is kept without "keep": 7 days, longer than any
 * token of the deployments this project documents (docs/AUTH.md). */
#define GW_REVOKE_KEEP_DEFAULT_S (7 * 86400)
#define GW_REVOKE_KEEP_MAX_S (366 * 86400)

struct gw_revoke {
    pthread_mutex_t lock;
    struct gw_dict users; /* guarded by lock: user -> struct gw_revoke_entry * */
    uint64_t seq;         /* guarded by lock: stamp of the last change */
};

void gw_revoke_init(struct gw_revoke *r);
/* Frees every entry; call when no thread uses the table any more. */
void gw_revoke_deinit(struct gw_revoke *r);

/* Records user[0..len) as revoked at `at` until `until` (seconds since the
 * epoch), replacing what was there; lifted: the revocation was lifted
 * instead (kept as a marker until `until`, see gw_revoke_reload). Copies
 * user. Returns the change's stamp. */
uint64_t gw_revoke_set(struct gw_revoke *r, const char *user, size_t len, int64_t at, int64_t until, bool lifted);

/* The stamp of the last change: taken before asking Redis for the whole
 * hash, handed to gw_revoke_reload with its answer. */
uint64_t gw_revoke_stamp(struct gw_revoke *r);

/* One entry of a reload: the user and its hash value. */
struct gw_revoke_item {
    const char *user;
    size_t len;
    int64_t at, until;
};

/* Replaces the table by what Redis held (n items, borrowed) when `stamp`
 * was taken, keeping every change made since (a revoke or a lift that the
 * control channel brought while the read was on its way wins over the
 * older read). Entries expired by now are dropped. */
void gw_revoke_reload(struct gw_revoke *r, uint64_t stamp, const struct gw_revoke_item *items, size_t n, int64_t now);

/* True when a token of user[0..len) issued at iat (has_iat false: no iat
 * claim) must be refused at now: the user is revoked (not lifted, not
 * expired) and iat <= its revocation second, or the token has no iat. */
bool gw_revoke_refuses(struct gw_revoke *r, const char *user, size_t len, bool has_iat, int64_t iat, int64_t now);

/* Entries held (revoked or lifted markers, expired ones until the next
 * reload or set). */
size_t gw_revoke_count(struct gw_revoke *r);

/* "<at> <until>" into out (room for 48 bytes); returns its length. Pure. */
size_t gw_revoke_format_value(char *out, int64_t at, int64_t until);
/* Parses such a value strictly. Returns 0 or -EINVAL. Pure. */
int gw_revoke_parse_value(const char *s, size_t len, int64_t *at, int64_t *until);

#endif
