/* eventfd wake-up for a libuv loop, safe to send from any thread until closed. */
#include "wake.h"

#include <errno.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

void gw_wake_init(struct gw_wake *wk)
{
    atomic_init(&wk->open, false);
    atomic_init(&wk->senders, 0);
    wk->fd = -1;
}

int gw_wake_open(struct gw_wake *wk, uv_loop_t *loop, uv_poll_cb cb, void *data)
{
    int rc;

    wk->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wk->fd < 0)
        return -errno;
    if ((rc = uv_poll_init(loop, &wk->poll, wk->fd)) != 0) {
        close(wk->fd);
        wk->fd = -1;
        return rc; /* libuv errors are negative errno values */
    }
    wk->poll.data = data;
    if ((rc = uv_poll_start(&wk->poll, UV_READABLE, cb)) != 0) {
        uv_close((uv_handle_t *)&wk->poll, NULL); /* the loop frees nothing: poll is embedded */
        close(wk->fd);
        wk->fd = -1;
        return rc;
    }
    atomic_store(&wk->open, true);
    return 0;
}

void gw_wake_send(struct gw_wake *wk)
{
    /* The count makes gw_wake_close wait for us, so the fd is never written
     * after it was closed (or, worse, reused by another thread). */
    atomic_fetch_add(&wk->senders, 1);
    if (atomic_load(&wk->open))
        (void)eventfd_write(wk->fd, 1);
    atomic_fetch_sub(&wk->senders, 1);
}

void gw_wake_clear(struct gw_wake *wk)
{
    eventfd_t n;
    (void)eventfd_read(wk->fd, &n);
}

void gw_wake_close(struct gw_wake *wk)
{
    atomic_store(&wk->open, false);
    while (atomic_load(&wk->senders) > 0)
        sched_yield();
    if (wk->fd >= 0)
        uv_close((uv_handle_t *)&wk->poll, NULL);
}

void gw_wake_deinit(struct gw_wake *wk)
{
    if (wk->fd >= 0)
        close(wk->fd);
    wk->fd = -1;
}
