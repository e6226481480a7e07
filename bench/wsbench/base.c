/* What every wsbench module uses: the clock, fatal errors and the log, and
 * registering a socket with the one epoll set. Calls no other module. */
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

void bench_ep_add(struct bench *b, int fd, uint32_t events, void *obj)
{
    struct epoll_event ev = { .events = events, .data.ptr = obj };
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        bench_die("epoll_ctl add: %s", strerror(errno));
}

void bench_ep_mod(struct bench *b, int fd, uint32_t events, void *obj)
{
    struct epoll_event ev = { .events = events, .data.ptr = obj };
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        bench_die("epoll_ctl mod: %s", strerror(errno));
}

void bench_ep_del(struct bench *b, int fd)
{
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
}
