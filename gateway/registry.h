/* The sessions of one worker: the id table (so replies from other threads,
 * which carry only ids, find their session), the list of all of them, the
 * flush list of sessions owed a write at the end of the current batch, and
 * a timer wheel of when each next needs a tick (ping, idle check), so the
 * sweep costs what is due, not what is connected. Owned and used by one
 * worker thread; it never frees a session. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "session.h"

/* Wheel slots of 250 ms (the sweep's period): 64 s ahead; a tick due later
 * lands in the last slot and is simply rescheduled when it comes. */
#define GW_WHEEL_SLOT_US 250000
#define GW_WHEEL_SLOTS 256

struct gw_registry {
    struct gw_dict by_id; /* id (8 bytes) -> struct gw_session* */
    struct gw_session *wheel[GW_WHEEL_SLOTS];
    int64_t wheel_next; /* first slot number (time / GW_WHEEL_SLOT_US) not yet expired */
    struct gw_session *head; /* every session, newest first */
    struct gw_session *flush_head; /* sessions owed gw_session_flush() */
    size_t count;
};

void gw_registry_init(struct gw_registry *r);
/* Every session must have been removed. */
void gw_registry_deinit(struct gw_registry *r);

/* Adds s (not owned: the registry keeps a pointer until removal). */
void gw_registry_add(struct gw_registry *r, struct gw_session *s);
/* Removes s from the table and both lists. */
void gw_registry_remove(struct gw_registry *r, struct gw_session *s);
/* The open session with this id, or NULL once it has closed. */
struct gw_session *gw_registry_find(struct gw_registry *r, uint64_t id);

/* Schedules s's next tick at due_us (monotonic), replacing any earlier one. */
void gw_registry_schedule(struct gw_registry *r, struct gw_session *s, int64_t due_us);
/* Calls tick(ctx, s) for every session whose tick is due by now_us, after
 * unscheduling it. tick may schedule it again and may close sessions, but
 * must not remove any from the registry (CLOSED, which does, comes later). */
void gw_registry_expire(struct gw_registry *r, int64_t now_us,
                        void (*tick)(void *ctx, struct gw_session *s, int64_t now_us), void *ctx);

/* Queues s for the next gw_registry_flush(); no-op if already queued. */
void gw_registry_want_flush(struct gw_registry *r, struct gw_session *s);
/* Calls gw_session_flush() on every queued session, emptying the list. */
void gw_registry_flush(struct gw_registry *r);

#endif
