/* Messages into a worker's inbox, from the bus thread or from main. Each one
 * is malloc'd by the sender and freed by the worker (gw_wmail_free). */
#ifndef GW_WMAIL_H
#define GW_WMAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "frame.h"
#include "mailbox.h"

enum gw_wmail_type {
    GW_WMAIL_DELIVER = 1,      /* frame for every local subscriber of name */
    GW_WMAIL_LIVE,             /* the node's subscription to name (incarnation gen) is live */
    GW_WMAIL_LINK_DOWN,        /* the Redis link is lost: no channel is live (with a name: that one) */
    GW_WMAIL_PUBLISH_RESULT,   /* ok or unavailable for one client publish */
    GW_WMAIL_DRAIN,            /* SIGTERM: close every client with 1001 */
    GW_WMAIL_RECOVERY,         /* one page of a client's recovery on channel name */
    GW_WMAIL_HISTORY_RESULT,   /* the reply frame to a history request, or NULL: unavailable */
    GW_WMAIL_DISCONNECT,       /* server API: close every session of user name (code id, reason text), answer seq */
    GW_WMAIL_UNSUBSCRIBE,      /* server API: user name's sessions leave channel text (push reason2), answer seq */
    GW_WMAIL_CTL_RESULT,       /* server API: the cluster's answer to a disconnect asked by API request session_id */
    GW_WMAIL_PRESENCE_RESULT,  /* the reply frame to a presence read, or NULL: unavailable */
    GW_WMAIL_PRESENCE_EVENT,   /* frame for the local subscribers of name that asked for presence events */
};

struct gw_wmail {
    struct gw_mail link; /* first */
    enum gw_wmail_type type;
    struct gw_frame *frame; /* DELIVER, HISTORY_RESULT, PRESENCE_RESULT, PRESENCE_EVENT: one reference, owned by the mail */
    uint64_t session_id; /* PUBLISH_RESULT, RECOVERY, HISTORY_RESULT, PRESENCE_RESULT */
    bool has_id;
    int64_t id;
    bool ok;
    bool busy; /* PUBLISH_RESULT, !ok: its idempotency key is held by a publish still on its way */
    /* PUBLISH_RESULT (ok, with history): the message's place. RECOVERY: the
     * channel's position when its stream was read (first page). */
    struct gw_position at;
    /* RECOVERY */
    uint32_t seq; /* the subscription's recovery it answers (hub.h) */
    bool first, last; /* first page carries the ack; last ends the replay */
    int recovered; /* first page: 1, 0, or -1 for a position-only request */
    struct gw_frame **frames; /* owned array of owned references, oldest first */
    size_t nframes;
    uint32_t gen; /* LIVE */
    char *text; /* DISCONNECT: the close reason; UNSUBSCRIBE: the channel; owned */
    char *text2; /* UNSUBSCRIBE: the push's reason, owned */
    uint64_t closed; /* CTL_RESULT: connections closed by the nodes that answered */
    int nodes, answered; /* CTL_RESULT: nodes the command reached; of them, those that answered */
    int64_t rev_at, rev_until; /* CTL_RESULT of a revocation: the record's times (seconds since the epoch) */
    size_t bytes; /* gw_wmail_bytes, counted once when posted to a worker */
    size_t name_len;
    char name[]; /* DELIVER, LIVE, PRESENCE_EVENT: channel name, NUL-terminated */
};

/* Returns a new mail with room for the name (copied when given). */
struct gw_wmail *gw_wmail_new(enum gw_wmail_type type, const char *name, size_t len);
/* The bytes m holds (itself, its name, its frames): what inbox bounds count. */
size_t gw_wmail_bytes(const struct gw_wmail *m);
/* Drops the frame reference, if any, and frees the mail. */
void gw_wmail_free(struct gw_wmail *m);

#endif
