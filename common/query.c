/* The name=value walk of a query string (see query.h). */
#include "query.h"

#include <errno.h>
#include <string.h>

void gw_query_init(struct gw_query *it, const char *q, size_t len)
{
    it->p = q;
    it->end = q ? q + len : NULL;
}

int gw_query_next(struct gw_query *it, const char **name, size_t *nlen, const char **value, size_t *vlen)
{
    if (!it->p || it->p >= it->end)
        return 0;
    const char *p = it->p, *amp = memchr(p, '&', (size_t)(it->end - p)), *stop = amp ? amp : it->end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));

    if (!eq) {
        it->p = it->end;
        return -EINVAL;
    }
    *name = p;
    *nlen = (size_t)(eq - p);
    *value = eq + 1;
    *vlen = (size_t)(stop - (eq + 1));
    it->p = amp ? amp + 1 : it->end;
    return 1;
}
