/* Error text and strict integers for the configuration parsers. */
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

int gw_text_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int gw_text_parse_ll(const char *s, long long *out)
{
    const char *p = s + (*s == '-');
    char *end;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
    }
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == ERANGE ? -ERANGE : 0;
}

int gw_text_read_file(const char *path, size_t max, char **out, size_t *len)
{
    /* One byte more than allowed tells a full file from an oversized one. */
    char *buf = gw_xmalloc(max + 2);
    size_t n = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    while (n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        rc = -EFBIG;
        goto fail;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}
