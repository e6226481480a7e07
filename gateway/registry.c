/* A worker's sessions by id, in a list, in the end-of-batch flush list and
 * on the tick wheel. */
#include "registry.h"

#include "clock.h"

void gw_registry_init(struct gw_registry *r)
{
    gw_dict_init(&r->by_id);
    for (int i = 0; i < GW_WHEEL_SLOTS; i++)
        gw_list_init(&r->wheel[i]);
    gw_list_init(&r->due);
    gw_list_init(&r->all);
    gw_list_init(&r->flush);
    r->wheel_next = gw_now_us() / GW_WHEEL_SLOT_US;
    r->count = 0;
}

void gw_registry_deinit(struct gw_registry *r)
{
    gw_dict_deinit(&r->by_id);
}

void gw_registry_add(struct gw_registry *r, struct gw_registry_entry *e, uint64_t id, struct gw_session *s)
{
    e->session = s;
    e->id = id;
    gw_list_init(&e->flush);
    gw_list_init(&e->wheel);
    gw_dict_add(&r->by_id, &e->id, sizeof(e->id), e, NULL);
    gw_list_push(&r->all, &e->all);
    r->count++;
}

void gw_registry_remove(struct gw_registry *r, struct gw_registry_entry *e)
{
    gw_list_remove(&e->flush);
    gw_list_remove(&e->wheel);
    gw_list_remove(&e->all);
    gw_dict_delete(&r->by_id, &e->id, sizeof(e->id));
    r->count--;
}

struct gw_session *gw_registry_find(struct gw_registry *r, uint64_t id)
{
    struct gw_dict_entry *d = gw_dict_find(&r->by_id, &id, sizeof(id));
    return d ? ((struct gw_registry_entry *)d->value)->session : NULL;
}

static struct gw_registry_entry *entry_of_all(struct gw_list *l)
{
    return l ? gw_container_of(l, struct gw_registry_entry, all) : NULL;
}

struct gw_registry_entry *gw_registry_first(struct gw_registry *r)
{
    return entry_of_all(gw_list_first(&r->all));
}

struct gw_registry_entry *gw_registry_next(struct gw_registry *r, struct gw_registry_entry *e)
{
    return entry_of_all(gw_list_next(&r->all, &e->all));
}

void gw_registry_schedule(struct gw_registry *r, struct gw_registry_entry *e, int64_t due_us)
{
    /* Rounded up, so a slot is expired only once all of it has passed. */
    int64_t n = (due_us + GW_WHEEL_SLOT_US - 1) / GW_WHEEL_SLOT_US;

    gw_list_remove(&e->wheel);
    if (n < r->wheel_next)
        n = r->wheel_next;
    if (n > r->wheel_next + GW_WHEEL_SLOTS - 1)
        n = r->wheel_next + GW_WHEEL_SLOTS - 1;
    gw_list_push(&r->wheel[n % GW_WHEEL_SLOTS], &e->wheel);
}

struct gw_session *gw_registry_next_due(struct gw_registry *r, int64_t now_us)
{
    int64_t last = now_us / GW_WHEEL_SLOT_US;

    /* A stall longer than the wheel visits each slot once, not once per lap. */
    if (last - r->wheel_next >= GW_WHEEL_SLOTS)
        r->wheel_next = last - GW_WHEEL_SLOTS + 1;
    /* Move whole slots to the due list and past them first: a tick that
     * reschedules lands in a later slot, never back in what is handed out. */
    while (gw_list_empty(&r->due) && r->wheel_next <= last) {
        gw_list_splice(&r->due, &r->wheel[r->wheel_next % GW_WHEEL_SLOTS]);
        r->wheel_next++;
    }
    struct gw_list *l = gw_list_pop(&r->due);
    return l ? gw_container_of(l, struct gw_registry_entry, wheel)->session : NULL;
}

void gw_registry_want_flush(struct gw_registry *r, struct gw_registry_entry *e)
{
    if (gw_list_empty(&e->flush))
        gw_list_push(&r->flush, &e->flush);
}

struct gw_session *gw_registry_next_flush(struct gw_registry *r)
{
    struct gw_list *l = gw_list_pop(&r->flush);
    return l ? gw_container_of(l, struct gw_registry_entry, flush)->session : NULL;
}
