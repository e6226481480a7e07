/* The single epoll loop of wsbench: dispatches socket events, paces connection
 * starts and drives the publisher's schedule. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "bench.h"

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wsbench: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void bench_log(struct bench *b, const char *fmt, ...)
{
    if (b->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("wsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void loop_ep_add(struct bench *b, int fd, uint32_t events, void *obj)
{
    struct epoll_event ev = { .events = events, .data.ptr = obj };
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        bench_die("epoll_ctl add: %s", strerror(errno));
}

void loop_ep_mod(struct bench *b, int fd, uint32_t events, void *obj)
{
    struct epoll_event ev = { .events = events, .data.ptr = obj };
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        bench_die("epoll_ctl mod: %s", strerror(errno));
}

void loop_ep_del(struct bench *b, int fd)
{
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
}

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
