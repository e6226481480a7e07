/* The client side of a recovery (docs/PROTOCOL.md, "History and recovery"):
 * turns the bus's GW_WMAIL_RECOVERY pages for one session into what the
 * client sees: the subscribe's ack with the channel's position and
 * "recovered", the missed messages in offset order, a gap notice where the
 * stream no longer had one, and then the live messages the hub held
 * meanwhile, without any the replay already sent. Worker thread. */
#ifndef GW_REPLAY_H
#define GW_REPLAY_H

#include "hub.h"
#include "session.h"
#include "wmail.h"

/* Applies one page m to s. A page for a subscription that is gone, or for an
 * older recovery of it (another seq), is ignored. Returns the recovery when
 * its next page is to be asked for (see gw_replay_next), else NULL. */
struct gw_sub_recovery *gw_replay_page(struct gw_hub *hub, struct gw_session *s, const struct gw_wmail *m);

/* Where the next page of rec starts: since (the last offset replayed, in
 * the replay's epoch) and target (the ack's offset) for gw_bus_post_recover. */
void gw_replay_next(const struct gw_sub_recovery *rec, struct gw_position *since, uint64_t *target);

#endif
