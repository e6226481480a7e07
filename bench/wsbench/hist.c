/* Quantiles of the log-bucketed histogram (recording is inline in hist.h). */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof *h);
}

static uint64_t bucket_upper(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t lower = (uint64_t)(HIST_SUB + idx % HIST_SUB) << shift;
    return lower + ((uint64_t)1 << shift) - 1;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bucket_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
