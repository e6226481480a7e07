/* A budget of bytes that refills at a steady rate (a token bucket): at most
 * `cap` bytes in hand, refilled at cap per window. A client's budget of bytes
 * stored in channel history (--client-store-bytes per --client-store-window,
 * docs/SECURITY.md "Redis cost"). Pure: no clock of its own (the caller
 * passes the time), no allocation, no locks: one owner thread. */
#ifndef GW_QUOTA_H
#define GW_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_quota {
    double left; /* bytes in hand, 0..cap */
    double cap;  /* 0: no limit */
    int64_t window_us;
    int64_t at_us; /* time of the last refill */
};

/* A full budget of cap bytes (0: unlimited) refilled over window_us (> 0). */
void gw_quota_init(struct gw_quota *q, size_t cap, int64_t window_us, int64_t now_us);

/* Refills by the time since the last call, then takes n bytes when that many
 * are in hand: true (taken) or false (nothing taken). Always true without a
 * limit. A time before the last call refills nothing. */
bool gw_quota_take(struct gw_quota *q, size_t n, int64_t now_us);

/* Gives n bytes back (a charge that turned out smaller), up to cap. */
void gw_quota_give(struct gw_quota *q, size_t n);

#endif
