/* The sessions of one worker: the id table (so replies from other threads,
 * which carry only ids, find their session), the list of all of them, the
 * flush list of sessions owed a write at the end of the current batch, and
 * a timer wheel of when each next needs a tick (ping, idle check), so the
 * sweep costs what is due, not what is connected.
 *
 * Each session embeds a gw_registry_entry, which only this module touches;
 * the registry knows a session only as the pointer the entry carries, never
 * its struct, and it never frees one. The lists are one type (list.h). Owned
 * and used by one worker thread. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "list.h"

struct gw_session;

/* Wheel slots of 250 ms (the sweep's period): 64 s ahead; a tick due later
 * lands in the last slot and is simply rescheduled when it comes. */
#define GW_WHEEL_SLOT_US 250000
#define GW_WHEEL_SLOTS 256

/* A session's place in its registry: embedded in the session. */
struct gw_registry_entry {
    struct gw_session *session; /* what find and the next_ calls return */
    uint64_t id;
    struct gw_list all;   /* in gw_registry.all */
    struct gw_list flush; /* in gw_registry.flush while owed a flush */
    struct gw_list wheel; /* in one wheel slot (or the due list) while scheduled */
};

struct gw_registry {
    struct gw_dict by_id; /* id (8 bytes) -> struct gw_registry_entry* */
    struct gw_list wheel[GW_WHEEL_SLOTS];
    struct gw_list due; /* entries of expired slots not handed out yet */
    int64_t wheel_next; /* first slot number (time / GW_WHEEL_SLOT_US) not yet expired */
    struct gw_list all; /* every session, newest first */
    struct gw_list flush; /* sessions owed gw_session_flush() */
    size_t count;
};

void gw_registry_init(struct gw_registry *r);
/* Every session must have been removed. */
void gw_registry_deinit(struct gw_registry *r);

/* Adds session s under id, through its entry e (neither owned: the registry
 * keeps pointers until removal). */
void gw_registry_add(struct gw_registry *r, struct gw_registry_entry *e, uint64_t id, struct gw_session *s);
/* Removes e from the table and every list. */
void gw_registry_remove(struct gw_registry *r, struct gw_registry_entry *e);
/* The open session with this id, or NULL once it has closed. */
struct gw_session *gw_registry_find(struct gw_registry *r, uint64_t id);

/* Every session: for (e = gw_registry_first(r); e; e = gw_registry_next(r, e)).
 * Closing a session while iterating is fine; removing one is not. */
struct gw_registry_entry *gw_registry_first(struct gw_registry *r);
struct gw_registry_entry *gw_registry_next(struct gw_registry *r, struct gw_registry_entry *e);

/* Schedules e's next tick at due_us (monotonic), replacing any earlier one. */
void gw_registry_schedule(struct gw_registry *r, struct gw_registry_entry *e, int64_t due_us);
/* Unschedules and returns one session whose tick is due by now_us, or NULL
 * when none is left. The caller ticks it, and may schedule it again (it lands
 * in a later slot, so the same call never returns it twice) or close
 * sessions, but must not remove any before the loop ends. */
struct gw_session *gw_registry_next_due(struct gw_registry *r, int64_t now_us);

/* Queues e for a flush at the end of the batch; no-op if already queued. */
void gw_registry_want_flush(struct gw_registry *r, struct gw_registry_entry *e);
/* Unqueues and returns one session owed a flush, or NULL: the worker flushes
 * with while ((s = gw_registry_next_flush(r))) gw_session_flush(s). A flush
 * may queue another session; it is returned by the same loop. */
struct gw_session *gw_registry_next_flush(struct gw_registry *r);

#endif
