/* Error text and strict integers for the configuration parsers. */
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
