/* Plain calls in cluster mode, for the roster (roster.c builds its commands
 * and walks their replies for both links): one command to the master of a
 * key, best effort, with no MOVED or ASK following; a failure shows as an
 * empty roster read and the next tick tries again. */
#include <errno.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "clink_int.h"

/* One call in flight: whom to tell. Owned by on_call_reply. */
struct call_wait {
    gw_link_reply_fn cb;
    void *token;
};

static void on_call_reply(struct gw_rconn *c, const redisReply *reply, void *privdata)
{
    struct call_wait *w = privdata;

    w->cb(w->token, reply);
    free(w);
}

int gw_clink_call(struct gw_clink *cl, const char *key, size_t klen, int argc, const char *const *argv,
                  const size_t *lens, gw_link_reply_fn cb, void *token)
{
    if (cl->state != CL_LIVE)
        return -ENOTCONN;
    struct cshard *sh = gw_clink_owner(cl, key, klen);
    if (!sh || sh->state != SH_LIVE)
        return -ENOTCONN;
    if (!cb)
        return gw_rconn_command(sh->cmd, argc, argv, lens, cl->cmd_timeout_ms, NULL, NULL);
    struct call_wait *w = gw_xmalloc(sizeof *w);
    w->cb = cb;
    w->token = token;
    int rc = gw_rconn_command(sh->cmd, argc, argv, lens, cl->cmd_timeout_ms, on_call_reply, w);
    if (rc != 0)
        free(w);
    return rc;
}
