/* Messages into a worker's inbox, from the bus thread or from main. Each one
 * is malloc'd by the sender and freed by the worker (gw_wmail_free). */
#ifndef GW_WMAIL_H
#define GW_WMAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "mailbox.h"

enum gw_wmail_type {
    GW_WMAIL_DELIVER = 1,      /* frame for every local subscriber of name */
    GW_WMAIL_LIVE,             /* the node's subscription to name is live */
    GW_WMAIL_PUBLISH_RESULT,   /* ok or unavailable for one client publish */
    GW_WMAIL_DRAIN,            /* SIGTERM: close every client with 1001 */
};

struct gw_wmail {
    struct gw_mail link; /* first */
    enum gw_wmail_type type;
    struct gw_frame *frame; /* DELIVER: one reference, owned by the mail */
    uint64_t session_id; /* PUBLISH_RESULT */
    bool has_id;
    int64_t id;
    bool ok;
    size_t name_len;
    char name[]; /* DELIVER, LIVE: channel name, NUL-terminated */
};

/* Returns a new mail with room for the name (copied when given). */
struct gw_wmail *gw_wmail_new(enum gw_wmail_type type, const char *name, size_t len);
/* Drops the frame reference, if any, and frees the mail. */
void gw_wmail_free(struct gw_wmail *m);

#endif
