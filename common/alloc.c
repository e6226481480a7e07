/* Aborting allocators: the project treats out-of-memory as fatal so that no
 * caller carries NULL-check paths that are never tested. */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t size)
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "wsgate: out of memory allocating %zu bytes\n", size);

    /* write() rather than stdio: stdio may itself need memory. */
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
        /* Nothing left to report to; abort below regardless. */
    }
    abort();
}

void *gw_xmalloc(size_t size)
{
    /* malloc(0) may legally return NULL, which must not read as OOM. */
    void *p = malloc(size ? size : 1);

    if (!p)
        oom(size);
    return p;
}

void *gw_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);

    if (!p)
        oom(count * size);
    return p;
}

void *gw_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (!p)
        oom(size);
    return p;
}

char *gw_xstrdup(const char *s)
{
    return gw_xstrndup(s, strlen(s));
}

char *gw_xstrndup(const char *s, size_t len)
{
    size_t n = strnlen(s, len);
    char *p = gw_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
