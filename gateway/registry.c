/* A worker's sessions by id, in a list, and in the end-of-batch flush list. */
#include "registry.h"

#include <string.h>

#include "clock.h"

void gw_registry_init(struct gw_registry *r)
{
    gw_dict_init(&r->by_id);
    memset(r->wheel, 0, sizeof(r->wheel));
    r->wheel_next = gw_now_us() / GW_WHEEL_SLOT_US;
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
    s->wheel_slot = -1;
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

static void wheel_unlink(struct gw_registry *r, struct gw_session *s)
{
    if (s->wheel_slot < 0)
        return;
    if (s->wheel_prev)
        s->wheel_prev->wheel_next = s->wheel_next;
    else
        r->wheel[s->wheel_slot] = s->wheel_next;
    if (s->wheel_next)
        s->wheel_next->wheel_prev = s->wheel_prev;
    s->wheel_prev = s->wheel_next = NULL;
    s->wheel_slot = -1;
}

void gw_registry_schedule(struct gw_registry *r, struct gw_session *s, int64_t due_us)
{
    /* Rounded up, so a slot is expired only once all of it has passed. */
    int64_t n = (due_us + GW_WHEEL_SLOT_US - 1) / GW_WHEEL_SLOT_US;

    wheel_unlink(r, s);
    if (n < r->wheel_next)
        n = r->wheel_next;
    if (n > r->wheel_next + GW_WHEEL_SLOTS - 1)
        n = r->wheel_next + GW_WHEEL_SLOTS - 1;
    s->wheel_slot = (int)(n % GW_WHEEL_SLOTS);
    s->wheel_prev = NULL;
    s->wheel_next = r->wheel[s->wheel_slot];
    if (s->wheel_next)
        s->wheel_next->wheel_prev = s;
    r->wheel[s->wheel_slot] = s;
}

void gw_registry_expire(struct gw_registry *r, int64_t now_us,
                        void (*tick)(void *ctx, struct gw_session *s, int64_t now_us), void *ctx)
{
    int64_t last = now_us / GW_WHEEL_SLOT_US;

    /* A stall longer than the wheel visits each slot once, not once per lap. */
    if (last - r->wheel_next >= GW_WHEEL_SLOTS)
        r->wheel_next = last - GW_WHEEL_SLOTS + 1;
    while (r->wheel_next <= last) {
        int slot = (int)(r->wheel_next % GW_WHEEL_SLOTS);
        struct gw_session *chain = r->wheel[slot];
        /* Detach the slot and move past it first: a tick that reschedules
         * lands in a later slot, never back in the chain being walked. */
        r->wheel[slot] = NULL;
        r->wheel_next++;
        while (chain) {
            struct gw_session *s = chain;
            chain = s->wheel_next;
            s->wheel_prev = s->wheel_next = NULL;
            s->wheel_slot = -1;
            tick(ctx, s, now_us);
        }
    }
}

void gw_registry_remove(struct gw_registry *r, struct gw_session *s)
{
    flush_unlink(r, s);
    wheel_unlink(r, s);
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
