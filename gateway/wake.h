/* A cross-thread wake-up for one libuv loop: an eventfd the loop polls. Any
 * thread may send; the loop's thread receives. Sending takes no lock; the
 * sender's mailbox decides when to send (once per batch), so this does no
 * coalescing of its own.
 *
 * Not uv_async_send(): libuv 1.44's receiver spins (a pause loop) until the
 * sender has returned from its write(), which cost 7.8% of a worker's CPU in
 * the many-channels profile on 2 cores (docs/BENCHMARKS.md). */
#ifndef GW_WAKE_H
#define GW_WAKE_H

#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

struct gw_wake {
    atomic_bool open;   /* sends reach the eventfd while set */
    atomic_int senders; /* threads inside gw_wake_send() */
    int fd;             /* eventfd, -1 when none */
    uv_poll_t poll;     /* loop thread only */
};

/* Before any thread can send: no eventfd, sends are dropped. */
void gw_wake_init(struct gw_wake *wk);

/* Creates the eventfd and starts polling it on loop; cb runs on the loop's
 * thread with poll.data = data. Returns 0 or -errno. Loop thread. */
int gw_wake_open(struct gw_wake *wk, uv_loop_t *loop, uv_poll_cb cb, void *data);

/* Wakes the loop (or does nothing once closed). Any thread. */
void gw_wake_send(struct gw_wake *wk);

/* Clears pending wake-ups: call before taking the mailbox, so a send after
 * the take wakes the loop again. Loop thread. */
void gw_wake_clear(struct gw_wake *wk);

/* Stops sends (waiting out any sender inside gw_wake_send) and starts closing
 * the poll handle; the loop must run once more before gw_wake_deinit. Loop thread. */
void gw_wake_close(struct gw_wake *wk);

/* Closes the eventfd after the loop has finished the handle's close. */
void gw_wake_deinit(struct gw_wake *wk);

#endif
