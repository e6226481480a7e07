/* The sessions of one worker: the id table (so replies from other threads,
 * which carry only ids, find their session), the list the sweep walks, and
 * the flush list of sessions owed a write at the end of the current batch.
 * Owned and used by one worker thread; it never frees a session. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "session.h"

struct gw_registry {
    struct gw_dict by_id; /* id (8 bytes) -> struct gw_session* */
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

/* Queues s for the next gw_registry_flush(); no-op if already queued. */
void gw_registry_want_flush(struct gw_registry *r, struct gw_session *s);
/* Calls gw_session_flush() on every queued session, emptying the list. */
void gw_registry_flush(struct gw_registry *r);

#endif
