/* Worker inbox messages. */
#include "wmail.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct gw_wmail *gw_wmail_new(enum gw_wmail_type type, const char *name, size_t len)
{
    struct gw_wmail *m = gw_xcalloc(1, sizeof(*m) + len + 1);
    m->type = type;
    if (name) {
        memcpy(m->name, name, len);
        m->name_len = len;
    }
    return m;
}

size_t gw_wmail_bytes(const struct gw_wmail *m)
{
    size_t n = sizeof(*m) + m->name_len + 1 + (m->frame ? m->frame->cap : 0) + (m->text ? strlen(m->text) + 1 : 0) +
               (m->text2 ? strlen(m->text2) + 1 : 0);
    for (size_t i = 0; i < m->nframes; i++)
        n += sizeof(m->frames[i]) + m->frames[i]->cap;
    return n;
}

void gw_wmail_free(struct gw_wmail *m)
{
    gw_frame_unref(m->frame);
    for (size_t i = 0; i < m->nframes; i++)
        gw_frame_unref(m->frames[i]);
    free(m->frames);
    free(m->text);
    free(m->text2);
    free(m);
}
