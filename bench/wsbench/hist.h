/* Log-bucketed latency histogram in the spirit of HdrHistogram: exact below 32,
 * then 32 sub-buckets per power of two (worst relative error about 3%). Fixed size,
 * no allocation, so recording is one clz and one increment. */
#ifndef WSBENCH_HIST_H
#define WSBENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
};

void hist_reset(struct hist *h);

static inline void hist_record(struct hist *h, int64_t v)
{
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    unsigned idx;
    if (u < HIST_SUB) {
        idx = (unsigned)u;
    } else {
        unsigned msb = 63u - (unsigned)__builtin_clzll(u);
        unsigned shift = msb - HIST_SUB_BITS;
        idx = (shift + 1) * HIST_SUB + (unsigned)((u >> shift) - HIST_SUB);
    }
    h->b[idx]++;
    h->count++;
    if (u > h->max)
        h->max = u;
}

/* Value at quantile q (0..1): the upper edge of the bucket holding it, never above
 * the exact maximum. 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
