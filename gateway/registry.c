/* A worker's sessions by id, in a list, and in the end-of-batch flush list. */
#include "registry.h"

void gw_registry_init(struct gw_registry *r)
{
    gw_dict_init(&r->by_id);
    r->head = r->flush_head = NULL;
    r->count = 0;
}

void gw_registry_deinit(struct gw_registry *r)
{
    gw_dict_deinit(&r->by_id);
}

void gw_registry_add(struct gw_registry *r, struct gw_session *s)
{
    gw_dict_add(&r->by_id, &s->id, sizeof(s->id), s, NULL);
    s->prev = NULL;
    s->next = r->head;
    if (s->next)
        s->next->prev = s;
    r->head = s;
    r->count++;
}

static void flush_unlink(struct gw_registry *r, struct gw_session *s)
{
    if (!s->flush_queued)
        return;
    if (s->flush_prev)
        s->flush_prev->flush_next = s->flush_next;
    else
        r->flush_head = s->flush_next;
    if (s->flush_next)
        s->flush_next->flush_prev = s->flush_prev;
    s->flush_prev = s->flush_next = NULL;
    s->flush_queued = false;
}

void gw_registry_remove(struct gw_registry *r, struct gw_session *s)
{
    flush_unlink(r, s);
    gw_dict_delete(&r->by_id, &s->id, sizeof(s->id));
    if (s->prev)
        s->prev->next = s->next;
    else
        r->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    r->count--;
}

struct gw_session *gw_registry_find(struct gw_registry *r, uint64_t id)
{
    struct gw_dict_entry *e = gw_dict_find(&r->by_id, &id, sizeof(id));
    return e ? e->value : NULL;
}

void gw_registry_want_flush(struct gw_registry *r, struct gw_session *s)
{
    if (s->flush_queued)
        return;
    s->flush_queued = true;
    s->flush_prev = NULL;
    s->flush_next = r->flush_head;
    if (r->flush_head)
        r->flush_head->flush_prev = s;
    r->flush_head = s;
}

void gw_registry_flush(struct gw_registry *r)
{
    struct gw_session *s;
    /* A flush can close a session but never frees one, so taking the head
     * each time stays safe even when a flush queues another session. */
    while ((s = r->flush_head)) {
        flush_unlink(r, s);
        gw_session_flush(s);
    }
}
