/* One allocation policy for the whole project: running out of memory is fatal.
 * Callers of gw_x*() never check for NULL. Library calls (lws, hiredis,
 * jansson) that allocate internally are still checked where they are called. */
#ifndef GW_ALLOC_H
#define GW_ALLOC_H

#include <stddef.h>

void *gw_xmalloc(size_t size);
void *gw_xcalloc(size_t count, size_t size);
void *gw_xrealloc(void *ptr, size_t size);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t len);

#endif
