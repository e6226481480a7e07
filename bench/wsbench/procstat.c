/* What the servers cost: CPU time and RSS of a set of processes read from /proc, and
 * one counter scraped from a wsgate /metrics page. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench.h"

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (int)n;
}

/* Fields 4 (ppid), 14 (utime) and 15 (stime) of /proc/<pid>/stat; the command name in
 * field 2 may contain spaces and parentheses, so parsing starts after the last ')'. */
static int read_stat(int pid, int *ppid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    int pp;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut, &st) != 4)
        return -1;
    if (ppid)
        *ppid = pp;
    if (ticks)
        *ticks = ut + st;
    return 0;
}

static int procset_has(const struct procset *s, int pid)
{
    for (int i = 0; i < s->n; i++)
        if (s->pid[i] == pid)
            return 1;
    return 0;
}

void procset_expand(const struct procset *roots, struct procset *out)
{
    *out = *roots;
    for (int changed = 1; changed;) {
        changed = 0;
        DIR *d = opendir("/proc");
        if (!d)
            return;
        struct dirent *e;
        while ((e = readdir(d)) && out->n < BENCH_MAX_PIDS) {
            int pid = atoi(e->d_name);
            int ppid;
            if (pid <= 0 || procset_has(out, pid) || read_stat(pid, &ppid, NULL) < 0)
                continue;
            if (procset_has(out, ppid)) {
                out->pid[out->n++] = pid;
                changed = 1;
            }
        }
        closedir(d);
    }
}

struct proc_sample procset_sample(const struct procset *s)
{
    static long hz;
    if (!hz)
        hz = sysconf(_SC_CLK_TCK);
    struct proc_sample r = { 0, 0 };
    for (int i = 0; i < s->n; i++) {
        unsigned long long ticks;
        if (read_stat(s->pid[i], NULL, &ticks) == 0)
            r.cpu_s += (double)ticks / (double)hz;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/status", s->pid[i]);
        if (read_file(path, buf, sizeof buf) > 0) {
            char *v = strstr(buf, "VmRSS:");
            if (v)
                r.rss_kib += strtol(v + 6, NULL, 10);
        }
    }
    return r;
}

double rusage_cpu_s(const struct rusage *a, const struct rusage *b)
{
    double ua = (double)a->ru_utime.tv_sec + (double)a->ru_utime.tv_usec / 1e6;
    double sa = (double)a->ru_stime.tv_sec + (double)a->ru_stime.tv_usec / 1e6;
    double ub = (double)b->ru_utime.tv_sec + (double)b->ru_utime.tv_usec / 1e6;
    double sb = (double)b->ru_stime.tv_sec + (double)b->ru_stime.tv_usec / 1e6;
    return (ub + sb) - (ua + sa);
}

/* Blocking GET of /metrics with a 2 s timeout; finds the line "<name> <value>".
 * Returns 0 and sets *value, or -1. Called only between phases. */
int metrics_scrape(const struct sockaddr_in *addr, const char *name, double *value)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    static char buf[1 << 20];
    size_t len = 0;
    int rc = -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
        goto out;
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
        goto out;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        /* lws may keep the connection open: stop once the body is complete */
        char *body = strstr(buf, "\r\n\r\n");
        char *cl = strstr(buf, "content-length:");
        if (!cl)
            cl = strstr(buf, "Content-Length:");
        if (body && cl && cl < body && len >= (size_t)(body + 4 - buf) + strtoull(cl + 15, NULL, 10))
            break;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = 0;
    size_t nl = strlen(name);
    for (char *p = buf; (p = strstr(p, name)); p += nl) {
        if ((p == buf || p[-1] == '\n') && p[nl] == ' ') {
            *value = strtod(p + nl + 1, NULL);
            rc = 0;
            break;
        }
    }
out:
    close(fd);
    return rc;
}

/* Jiffies of the whole machine from the first line of /proc/stat: busy in processes
 * (user, nice, system), in interrupts (irq, softirq: most of loopback TCP), and the
 * total. Softirq work runs inside whichever task was on the CPU and is also counted
 * in that task's stime, so the two overlap. */
void machine_sample(struct machine_sample *m)
{
    char buf[512];
    unsigned long long v[8] = { 0 };
    memset(m, 0, sizeof *m);
    if (read_file("/proc/stat", buf, sizeof buf) <= 0)
        return;
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) < 4)
        return;
    for (int i = 0; i < 8; i++)
        m->total += v[i];
    m->proc = v[0] + v[1] + v[2];
    m->irq = v[5] + v[6];
}

/* Kernel memory held by TCP sockets machine-wide, in KiB ("mem" pages in
 * /proc/net/sockstat): socket buffers that no process's RSS shows. -1 if unknown. */
long tcp_mem_kib(void)
{
    char buf[1024];
    if (read_file("/proc/net/sockstat", buf, sizeof buf) <= 0)
        return -1;
    char *t = strstr(buf, "TCP:");
    char *m = t ? strstr(t, " mem ") : NULL;
    if (!m)
        return -1;
    return strtol(m + 5, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}
