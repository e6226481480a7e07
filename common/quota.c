/* Token bucket of bytes (quota.h). Kept in double: the refill is cap x
 * elapsed / window, which overflows 64-bit integers for a 1 GiB cap over a
 * year's window, and a budget needs no sub-byte exactness. */
#include "quota.h"

void gw_quota_init(struct gw_quota *q, size_t cap, int64_t window_us, int64_t now_us)
{
    q->cap = (double)cap;
    q->left = q->cap;
    q->window_us = window_us > 0 ? window_us : 1;
    q->at_us = now_us;
}

bool gw_quota_take(struct gw_quota *q, size_t n, int64_t now_us)
{
    if (q->cap <= 0)
        return true;
    if (now_us > q->at_us) {
        q->left += (double)(now_us - q->at_us) * q->cap / (double)q->window_us;
        if (q->left > q->cap)
            q->left = q->cap;
        q->at_us = now_us;
    }
    if (q->left < (double)n)
        return false;
    q->left -= (double)n;
    return true;
}

void gw_quota_give(struct gw_quota *q, size_t n)
{
    if (q->cap <= 0)
        return;
    q->left += (double)n;
    if (q->left > q->cap)
        q->left = q->cap;
}
