/* The bus's channel helpers, shared by bus.c and bus_read.c and calling
 * neither: Redis key <-> client name, the wanted-channel lookup, the size
 * rule for payloads and the hand-off of one frame to every worker that
 * wants its channel. Bus thread. */
#define GW_LOG_MODULE "bus"

#include <inttypes.h>
#include <string.h>

#include "bus_int.h"
#include "log.h"

/* One line per power of two of a counter, not one per message. */
bool gw_bus_log_this(const gw_stat *counter)
{
    uint64_t n = gw_stat_get(counter);
    return (n & (n - 1)) == 0;
}

bool gw_bus_too_large(struct gw_bus *bus, const char *name, size_t payload_len)
{
    if (payload_len <= bus->cfg->max_message_bytes)
        return false;
    gw_stat_add(&bus->stats.redis_messages_dropped_too_large, 1);
    if (gw_bus_log_this(&bus->stats.redis_messages_dropped_too_large))
        LOG_WARN("dropped message reason=too_large channel=%s bytes=%zu limit=%zu dropped_total=%" PRIu64, name,
                 payload_len, bus->cfg->max_message_bytes, gw_stat_get(&bus->stats.redis_messages_dropped_too_large));
    return true;
}

struct bus_chan *gw_bus_chan(struct gw_bus *bus, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&bus->chans, name, len);
    struct bus_chan *ch = e ? e->value : NULL;
    return ch && ch->want_mask ? ch : NULL;
}

void gw_bus_fanout(struct gw_bus *bus, const char *name, size_t len, struct gw_frame *frame)
{
    struct bus_chan *ch = gw_bus_chan(bus, name, len);
    if (!ch) {
        gw_frame_unref(frame);
        return;
    }
    int last = 63 - __builtin_clzll(ch->want_mask);
    for (int w = 0; w <= last; w++) {
        if (!(ch->want_mask & (1ULL << w)))
            continue;
        struct gw_wmail *m = gw_wmail_new(GW_WMAIL_DELIVER, name, len);
        /* Each worker gets its own buffer so refcounts stay plain and never
         * bounce between cores per recipient. The JSON is encoded once; other
         * workers get a memcpy, made before the encoded frame is posted
         * (after that it belongs to its worker). */
        m->frame = w == last ? frame : gw_frame_copy(frame);
        bus->ops->post(bus->ctx, w, m);
    }
}

size_t gw_bus_prefixed(const struct gw_bus *bus, const char *name, size_t len, char *out)
{
    size_t plen = bus->prefix_len;
    memcpy(out, bus->cfg->channel_prefix, plen);
    memcpy(out + plen, name, len);
    out[plen + len] = '\0';
    return plen + len;
}

const char *gw_bus_unprefixed(const struct gw_bus *bus, const char *key, size_t klen, size_t *len)
{
    size_t plen = bus->prefix_len;
    if (klen < plen || memcmp(key, bus->cfg->channel_prefix, plen) != 0)
        return NULL;
    *len = klen - plen;
    return key + plen;
}
