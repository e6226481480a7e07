/* The single epoll loop of wsbench: dispatches socket events, paces connection
 * starts and drives the publisher's schedule. It calls into wsconn.c and
 * pub.c; they reach the loop only through base.c, never back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "bench.h"

#define MAX_EVENTS 1024

void loop_run(struct bench *b, int64_t deadline_us, int (*done)(struct bench *))
{
    struct epoll_event ev[MAX_EVENTS];
    /* busy time of one iteration: from epoll_wait returning to the next epoll_wait */
    int64_t woke = bench_now_us();
    for (;;) {
        while (b->next_to_start < b->nconns && b->in_progress < b->o.connect_concurrency)
            conn_start(b, &b->conns[b->next_to_start++]);

        int64_t now = bench_now_us();
        /* Poll done() at least every 50 ms so phases end on time when the loop is idle. */
        int timeout_ms = 50;
        if (b->publishing) {
            int next = pub_tick(b, now);
            if (next < timeout_ms)
                timeout_ms = next;
        }
        if (done && done(b))
            return;
        now = bench_now_us();
        if (now >= deadline_us)
            return;
        int64_t left_ms = (deadline_us - now + 999) / 1000;
        if (left_ms < timeout_ms)
            timeout_ms = (int)left_ms;
        hist_record(&b->ph.loop_busy, now - woke);

        int n = epoll_wait(b->epfd, ev, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            bench_die("epoll_wait: %s", strerror(errno));
        }
        woke = bench_now_us();
        for (int i = 0; i < n; i++) {
            uint8_t kind = *(uint8_t *)ev[i].data.ptr;
            if (kind == EP_CONN)
                conn_on_event(b, ev[i].data.ptr, ev[i].events);
            else
                pub_on_event(b, ev[i].data.ptr, ev[i].events);
        }
    }
}
