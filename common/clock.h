/* The one clock for timeouts, rates and intervals: monotonic, so a wall-clock
 * step (NTP, an operator) never fires or stalls a timer. Any thread. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

/* Monotonic microseconds since an arbitrary start. Never fails. */
int64_t gw_now_us(void);

#endif
