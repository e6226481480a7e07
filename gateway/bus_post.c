/* What the workers (any thread) post into the bus's inbox: each gw_bus_post_*
 * of bus.h becomes one bus_cmd, handled in order on the bus thread by bus.c.
 * Nothing here runs on the bus thread or touches its state. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus_int.h"

void gw_bus_cmd_post(struct gw_bus *bus, struct bus_cmd *cmd)
{
    if (gw_mailbox_post(&bus->inbox, &cmd->link))
        event_active(bus->wake_ev, EV_READ, 0);
}

struct bus_cmd *gw_bus_cmd_new(enum bus_cmd_type type, int worker, const char *name, size_t len)
{
    struct bus_cmd *cmd = gw_xcalloc(1, sizeof(*cmd) + len + 1);
    cmd->type = type;
    cmd->worker = worker;
    memcpy(cmd->name, name, len);
    cmd->name_len = len;
    return cmd;
}

void gw_bus_post_subscribe(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t gen)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_SUBSCRIBE, worker, name, len);
    cmd->gen = gen;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_unsubscribe(struct gw_bus *bus, int worker, const char *name, size_t len)
{
    gw_bus_cmd_post(bus, gw_bus_cmd_new(CMD_UNSUBSCRIBE, worker, name, len));
}

bool gw_bus_post_publish(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                         const char *name, size_t len, char *payload, size_t payload_len)
{
    /* Only publishes carry payloads; everything else posted is small and
     * bounded by the subscriptions. */
    if (atomic_fetch_add_explicit(&bus->inbox_bytes, payload_len, memory_order_relaxed) + payload_len >
        bus->cfg->max_inbox_bytes) {
        atomic_fetch_sub_explicit(&bus->inbox_bytes, payload_len, memory_order_relaxed);
        return false; /* the client's unavailable is counted by its worker */
    }
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_PUBLISH, worker, name, len);
    cmd->session_id = session_id;
    cmd->has_id = has_id;
    cmd->id = id;
    cmd->payload = payload;
    cmd->payload_len = payload_len;
    gw_bus_cmd_post(bus, cmd);
    return true;
}

void gw_bus_post_presence(struct gw_bus *bus, int worker, uint64_t session_id, const char *name, size_t len,
                          struct gw_presence_req *req)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_PRESENCE, worker, name, len);
    cmd->session_id = session_id;
    cmd->pres = req;
    gw_bus_cmd_post(bus, cmd);
}

static void cmd_set_since(struct bus_cmd *cmd, const struct gw_position *since)
{
    cmd->has_since = since != NULL;
    if (since)
        cmd->since = *since;
}

void gw_bus_post_recover(struct gw_bus *bus, int worker, uint64_t session_id, uint32_t seq, const char *name,
                         size_t len, const struct gw_position *since, uint64_t target)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_RECOVER, worker, name, len);
    cmd->session_id = session_id;
    cmd->seq = seq;
    cmd->target = target;
    cmd_set_since(cmd, since);
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_history(struct gw_bus *bus, int worker, uint64_t session_id, bool has_id, int64_t id,
                         const char *name, size_t len, const struct gw_position *since, int limit)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_HISTORY, worker, name, len);
    cmd->session_id = session_id;
    cmd->has_id = has_id;
    cmd->id = id;
    cmd_set_since(cmd, since);
    cmd->limit = limit;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_left(struct gw_bus *bus, int worker, uint64_t session_id)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_LEFT, worker, "", 0);
    cmd->session_id = session_id;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_post_channels(struct gw_bus *bus, int worker, uint64_t session_id, const struct gw_ctl_channels *q)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_CHANNELS, worker, "", 0);
    cmd->session_id = session_id;
    cmd->chq = gw_xmalloc(sizeof *cmd->chq);
    *cmd->chq = *q;
    gw_bus_cmd_post(bus, cmd);
}

void gw_bus_counts_add(struct gw_bus_counts *c, const char *name, size_t len, uint32_t count)
{
    uint16_t l16 = (uint16_t)len; /* a channel name is at most GW_CHANNEL_MAX bytes */
    size_t need = sizeof count + sizeof l16 + len;

    if (c->len + need > c->cap) {
        c->cap = c->cap * 2 > c->len + need ? c->cap * 2 : c->len + need + 1024;
        c->buf = gw_xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, &count, sizeof count);
    memcpy(c->buf + c->len + sizeof count, &l16, sizeof l16);
    memcpy(c->buf + c->len + sizeof count + sizeof l16, name, len);
    c->len += need;
}

void gw_bus_post_counts(struct gw_bus *bus, int worker, struct gw_bus_counts *c)
{
    if (!c->len) {
        free(c->buf);
        *c = (struct gw_bus_counts){ 0 };
        return;
    }
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_COUNTS, worker, "", 0);
    cmd->payload = c->buf; /* not a publish's: not in inbox_bytes */
    cmd->payload_len = c->len;
    *c = (struct gw_bus_counts){ 0 };
    gw_bus_cmd_post(bus, cmd);
}
