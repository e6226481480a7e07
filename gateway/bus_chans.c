/* The cluster-wide index of active channels and their subscriber counts
 * behind GET /api/channels (docs/PROTOCOL.md, "Server API"). Bus thread only.
 *
 * The workers tell the bus each channel's local subscriber count when it
 * changes (1 with the channel's subscribe, 0 with its unsubscribe, the
 * counts between in a mail per 250 ms sweep: gw_hub_take_counts); the bus
 * keeps the node's total per channel and, once a second, writes only the
 * channels whose total changed (HSET name count, HDEL at 0) into this node's
 * hash {wsgate}:chans:count:<id> with one EVAL, which also touches the
 * hash's 5 s TTL (the node's liveness: a write with no change is that touch
 * alone). A channel new in the hash is added to {wsgate}:chans, one
 * lexicographic ZSET (all scores 0) shared by the nodes, and the node's id
 * to {wsgate}:chans:counters. The hash holds a marker field "" (no channel
 * name is empty): a write that finds it gone (the hash expired while the
 * link was down, or Redis lost it) changes nothing and answers 0, and the
 * node then rewrites its whole hash, as it does at start and after any write
 * whose answer was lost, and each time the link (on a cluster, the {wsgate}
 * master) is live again: Redis may then hold older counts than the node
 * wrote, the marker intact (a promoted replica that missed the last acked
 * writes; no write failed, so nothing else would tell). Writes cost the
 * churn, not the channels.
 *
 * A read walks the ZSET from the cursor with ZRANGEBYLEX (cost proportional
 * to the page and the live nodes, not to the index), sums HGET of each name
 * over the node hashes still alive, and drops a name no live node holds
 * (stale) from the ZSET there. A killed node's counts go when its hash
 * expires (5 s). All keys share the {wsgate} hash tag: in cluster mode every
 * command goes to that slot's master (bus_command). */
#define GW_LOG_MODULE "bus"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_int.h"
#include "frame.h"
#include "list.h"
#include "log.h"
#include "wmail.h"

#define CHANS_ZSET "{wsgate}:chans"
#define CHANS_NODES "{wsgate}:chans:counters"
#define CHANS_NODE "{wsgate}:chans:count:"
#define CHANS_TTL_MS "5000"
#define CHANS_BATCH 512 /* channels per write */
#define CHANS_KEY_MAX 320

/* One write: ARGV mode ("reset": the hash rewritten from nothing, "delta":
 * only if the marker is there), TTL in ms, node id, then name/count pairs
 * (count "0": gone from this node). Answers 1, or 0 when a delta found the
 * hash gone (nothing done). */
static const char write_script[] =
    "local key, zset, nodes = KEYS[1], KEYS[2], KEYS[3]\n"
    "if ARGV[1] == 'reset' then\n"
    "  redis.call('DEL', key)\n"
    "  redis.call('HSET', key, '', ARGV[3])\n"
    "elseif redis.call('HEXISTS', key, '') == 0 then\n"
    "  return 0\n"
    "end\n"
    "for i = 4, #ARGV - 1, 2 do\n"
    "  local c, n = ARGV[i], ARGV[i + 1]\n"
    "  if n == '0' then redis.call('HDEL', key, c)\n"
    "  elseif redis.call('HSET', key, c, n) == 1 then redis.call('ZADD', zset, 0, c) end\n"
    "end\n"
    "redis.call('PEXPIRE', key, ARGV[2])\n"
    "redis.call('SADD', nodes, ARGV[3])\n"
    "return 1\n";

/* One read: scans at most 4 x limit names of the ZSET (the page's cost
 * bound); a page that ran out of budget still gives a next_cursor. Builds
 * the JSON answer itself (cjson), so the bus passes it through. ARGV: node
 * key prefix, cursor ("" = from the start), prefix, "1" for one exact name,
 * limit. */
static const char read_script[] =
    "local zset, nodes, nkey = KEYS[1], KEYS[2], ARGV[1]\n"
    "local cursor, prefix, exact, limit = ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])\n"
    "local live = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', nodes)) do\n"
    "  if redis.call('EXISTS', nkey .. id) == 1 then live[#live + 1] = nkey .. id\n"
    "  else redis.call('SREM', nodes, id) end\n"
    "end\n"
    "local function entry(c)\n"
    "  local subs, k = 0, 0\n"
    "  for _, key in ipairs(live) do\n"
    "    local n = redis.call('HGET', key, c)\n"
    "    if n then subs, k = subs + tonumber(n), k + 1 end\n"
    "  end\n"
    "  if k == 0 then return nil end\n"
    "  return '{\"channel\":' .. cjson.encode(c) .. ',\"subscribers\":' .. subs .. ',\"nodes\":' .. k .. '}'\n"
    "end\n"
    "local out, last, done = {}, nil, false\n"
    "if exact then\n"
    "  done = true\n"
    "  if cursor == '' and prefix ~= '' then out[1] = entry(prefix) end\n"
    "else\n"
    "  local start = cursor == '' and ('[' .. prefix) or ('(' .. cursor)\n"
    "  local budget = limit * 4\n"
    "  while not done and #out < limit and budget > 0 do\n"
    "    local want = math.min(budget, limit - #out)\n"
    "    local batch = redis.call('ZRANGEBYLEX', zset, start, '+', 'LIMIT', 0, want)\n"
    "    if #batch < want then done = true end\n"
    "    for _, c in ipairs(batch) do\n"
    "      if string.sub(c, 1, #prefix) ~= prefix then done = true break end\n"
    "      budget = budget - 1\n"
    "      last = c\n"
    "      local e = entry(c)\n"
    "      if e then out[#out + 1] = e else redis.call('ZREM', zset, c) end\n"
    "    end\n"
    "    if last then start = '(' .. last end\n"
    "  end\n"
    "end\n"
    "local nc = 'null'\n"
    "if not done and last then nc = cjson.encode(last) end\n"
    "return '{\"channels\":[' .. table.concat(out, ',') .. '],\"next_cursor\":' .. nc .. '}'\n";

/* This node's total for one channel, and each worker's part. */
struct chan_count {
    const char *name; /* the dict entry's key */
    size_t len;
    struct gw_list dirty; /* in idx->dirty while the total is not written */
    uint32_t total;
    uint32_t written; /* the total last sent to Redis (0: none, or its HDEL) */
    uint32_t per_worker[];
};

enum idx_state {
    IDX_REWRITE, /* the node's hash must be rewritten whole (start, a write lost) */
    IDX_SYNCED,  /* Redis has every total but the dirty ones (as far as we know) */
};

struct bus_chans {
    struct gw_dict counts; /* name -> struct chan_count*, totals above 0 or not yet written */
    struct gw_list dirty;
    enum idx_state state;
    uint32_t epoch; /* bumped by each rewrite: older writes' failures are moot */
    struct event *tick_ev;
};

/* Tokens handed to bus_command: the first int is the kind (as bus_ctl.c's
 * and bus_idem.c's). */
struct chans_write {
    int kind; /* BUS_TOKEN_CHANS_WRITE */
    uint32_t epoch;
};
struct chans_read {
    int kind; /* BUS_TOKEN_CHANS_READ */
    int worker;
    uint64_t session_id;
};

/* Every command here names {wsgate} keys only: in cluster mode it goes to
 * that tag's master. */
static int chans_command(struct gw_bus *bus, int argc, const char *const *argv, const size_t *lens, void *token)
{
    return bus_command(bus, CHANS_ZSET, sizeof CHANS_ZSET - 1, argc, argv, lens, token);
}

struct bus_chans *gw_bus_chans_new(struct gw_bus *bus)
{
    struct bus_chans *x = gw_xcalloc(1, sizeof *x);

    (void)bus;
    gw_dict_init(&x->counts);
    gw_list_init(&x->dirty);
    x->state = IDX_REWRITE;
    return x;
}

void gw_bus_chans_free(struct bus_chans *x)
{
    if (!x)
        return;
    for (struct gw_dict_entry *e = gw_dict_first(&x->counts); e; e = gw_dict_next(&x->counts, e))
        free(e->value);
    gw_dict_deinit(&x->counts);
    free(x);
}

/* ---- the counts ---- */

static void set_count(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t n)
{
    struct bus_chans *x = bus->chans_idx;
    struct gw_dict_entry *e = gw_dict_find(&x->counts, name, len);
    struct chan_count *c;

    if (!bus_has_redis(bus) || worker < 0 || worker >= bus->nworkers)
        return;
    if (!e) {
        if (n == 0)
            return;
        c = gw_xcalloc(1, sizeof *c + sizeof(uint32_t) * (size_t)bus->nworkers);
        e = gw_dict_add(&x->counts, name, len, c, NULL);
        c->name = e->key;
        c->len = len;
        gw_list_init(&c->dirty);
    }
    c = e->value;
    c->total = c->total - c->per_worker[worker] + n;
    c->per_worker[worker] = n;
    if (gw_list_empty(&c->dirty))
        gw_list_push(&x->dirty, &c->dirty);
}

void gw_bus_chans_count(struct gw_bus *bus, int worker, const char *name, size_t len, uint32_t n)
{
    set_count(bus, worker, name, len, n);
}

void gw_bus_cmd_counts(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    const char *p = cmd->payload, *end = cmd->payload + cmd->payload_len;
    uint32_t n;
    uint16_t len;

    while (p && end - p >= (ptrdiff_t)(sizeof n + sizeof len)) {
        memcpy(&n, p, sizeof n);
        memcpy(&len, p + sizeof n, sizeof len);
        p += sizeof n + sizeof len;
        if (end - p < len)
            break; /* cannot happen: gw_bus_counts_add wrote it */
        set_count(bus, cmd->worker, p, len, n);
        p += len;
    }
}

/* ---- the writes ---- */

/* One EVAL of write_script for c[0..n) (each with its total now). */
static int send_write(struct gw_bus *bus, bool reset, struct chan_count *const *c, int n)
{
    struct bus_chans *x = bus->chans_idx;
    char key[CHANS_KEY_MAX];
    int argc = 0, rc;
    const char **argv = gw_xmalloc(sizeof(*argv) * (size_t)(9 + 2 * n));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)(9 + 2 * n));
    char(*nums)[12] = gw_xmalloc(sizeof(*nums) * (size_t)(n ? n : 1));
    struct chans_write *t = gw_xmalloc(sizeof *t);

    *t = (struct chans_write){ BUS_TOKEN_CHANS_WRITE, x->epoch };
    snprintf(key, sizeof key, CHANS_NODE "%s", bus->cfg->node_id);
#define ARG(s, l) (argv[argc] = (s), lens[argc++] = (l))
    ARG("EVAL", 4);
    ARG(write_script, sizeof write_script - 1);
    ARG("3", 1);
    ARG(key, strlen(key));
    ARG(CHANS_ZSET, sizeof CHANS_ZSET - 1);
    ARG(CHANS_NODES, sizeof CHANS_NODES - 1);
    ARG(reset ? "reset" : "delta", 5);
    ARG(CHANS_TTL_MS, sizeof CHANS_TTL_MS - 1);
    ARG(bus->cfg->node_id, strlen(bus->cfg->node_id));
    for (int i = 0; i < n; i++) {
        ARG(c[i]->name, c[i]->len);
        ARG(nums[i], (size_t)snprintf(nums[i], sizeof nums[i], "%u", c[i]->total));
    }
#undef ARG
    rc = chans_command(bus, argc, argv, lens, t);
    if (rc != 0)
        free(t);
    free(argv);
    free(lens);
    free(nums);
    return rc;
}

/* The changed totals, in batches; a channel back to 0 is forgotten once
 * its HDEL is sent (or at once when Redis never had it). With none, one
 * write touches the TTL. A write not sent leaves the rest unsent: the
 * caller then rewrites everything. */
static int write_dirty(struct gw_bus *bus)
{
    struct bus_chans *x = bus->chans_idx;
    struct chan_count *batch[CHANS_BATCH];
    struct gw_list *l = NULL;
    int rc = 0;
    bool first = true; /* one write at least: the TTL touch */

    while (first || l) {
        int n = 0;
        while (n < CHANS_BATCH && (l = gw_list_pop(&x->dirty))) {
            struct chan_count *c = gw_container_of(l, struct chan_count, dirty);
            /* Back where Redis has it (a channel come and gone within the
             * second, a count up and down again): nothing to write. */
            if (c->total != c->written)
                batch[n++] = c;
            else if (c->total == 0)
                free(gw_dict_delete(&x->counts, c->name, c->len));
        }
        if (rc == 0 && (n > 0 || first))
            rc = send_write(bus, false, batch, n);
        first = false;
        for (int i = 0; i < n; i++) {
            batch[i]->written = batch[i]->total;
            if (batch[i]->total == 0)
                free(gw_dict_delete(&x->counts, batch[i]->name, batch[i]->len));
        }
    }
    return rc;
}

/* The whole hash from nothing: every channel with a total, the first batch
 * resetting the hash. */
static int write_all(struct gw_bus *bus)
{
    struct bus_chans *x = bus->chans_idx;
    struct chan_count *batch[CHANS_BATCH];
    struct gw_list *l;
    int rc = 0, n = 0;
    bool first = true;

    while ((l = gw_list_pop(&x->dirty))) {
        struct chan_count *c = gw_container_of(l, struct chan_count, dirty);
        if (c->total == 0)
            free(gw_dict_delete(&x->counts, c->name, c->len));
    }
    x->epoch++;
    for (struct gw_dict_entry *e = gw_dict_first(&x->counts); e && rc == 0; e = gw_dict_next(&x->counts, e)) {
        batch[n] = e->value;
        batch[n]->written = batch[n]->total;
        n++;
        if (n == CHANS_BATCH) {
            rc = send_write(bus, first, batch, n);
            first = false;
            n = 0;
        }
    }
    if (rc == 0 && (n || first))
        rc = send_write(bus, first, batch, n);
    /* Retried every second while refused (the {wsgate} master down): logged once sent. */
    if (rc == 0)
        LOG_INFO("channel index: this node's counts rewritten channels=%zu", x->counts.count);
    return rc;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;
    struct bus_chans *x = bus->chans_idx;

    (void)fd;
    (void)what;
    /* The link itself, not gw_bus_ready (bus.c, which drives this file). */
    if (bus->clink ? !gw_clink_ready(bus->clink) : !bus->link || !gw_link_ready(bus->link))
        return; /* the changes wait; the hash may expire meanwhile (then rewritten) */
    int rc = x->state == IDX_REWRITE ? write_all(bus) : write_dirty(bus);
    /* A write not sent lost its changes: rewrite at the next tick. */
    x->state = rc == 0 ? IDX_SYNCED : IDX_REWRITE;
}

void gw_bus_chans_start(struct gw_bus *bus)
{
    struct timeval tv = { 1, 0 };
    struct bus_chans *x = bus->chans_idx;

    if (!bus_has_redis(bus))
        return;
    x->tick_ev = event_new(bus->base, -1, EV_PERSIST, on_tick, bus);
    if (!x->tick_ev || event_add(x->tick_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the channel index timer");
        abort();
    }
}

void gw_bus_chans_relive(struct gw_bus *bus)
{
    struct bus_chans *x = bus->chans_idx;

    if (x->state == IDX_SYNCED)
        LOG_DBG("channel index: the link is live again, this node's counts are rewritten whole");
    x->state = IDX_REWRITE;
}

void gw_bus_chans_keys_live(struct gw_bus *bus, gw_bus_key_pred pred, void *pctx)
{
    if (pred(pctx, CHANS_ZSET, sizeof CHANS_ZSET - 1))
        gw_bus_chans_relive(bus);
}

void gw_bus_chans_stop(struct gw_bus *bus)
{
    struct bus_chans *x = bus->chans_idx;

    if (x->tick_ev)
        event_free(x->tick_ev);
    x->tick_ev = NULL;
}

/* ---- the reads ---- */

static void answer(struct gw_bus *bus, int worker, uint64_t session_id, struct gw_frame *frame)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_HISTORY_RESULT, "", 0);

    m->session_id = session_id;
    m->frame = frame;
    bus->ops->post(bus->ctx, worker, m);
}

void gw_bus_cmd_channels(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    const struct gw_ctl_channels *q = cmd->chq;
    char nkey[CHANS_KEY_MAX], lim[16];
    struct chans_read *t = gw_xcalloc(1, sizeof *t);

    t->kind = BUS_TOKEN_CHANS_READ;
    t->worker = cmd->worker;
    t->session_id = cmd->session_id;
    snprintf(nkey, sizeof nkey, CHANS_NODE);
    snprintf(lim, sizeof lim, "%d", q->limit);
    /* A cursor before the prefix's range (byte order, as ZRANGEBYLEX's)
     * means the range's start: the script stops at the first name outside it. */
    size_t cmp_len = q->cursor_len < q->prefix_len ? q->cursor_len : q->prefix_len;
    int cmp = memcmp(q->cursor, q->prefix, cmp_len);
    size_t cursor_len = q->wildcard && (cmp < 0 || (cmp == 0 && q->cursor_len < q->prefix_len)) ? 0 : q->cursor_len;
    const char *argv[] = { "EVAL", read_script, "2", CHANS_ZSET, CHANS_NODES, nkey, q->cursor, q->prefix,
                           q->wildcard ? "0" : "1", lim };
    size_t lens[] = { 4, sizeof read_script - 1, 1, sizeof CHANS_ZSET - 1, sizeof CHANS_NODES - 1, strlen(nkey),
                      cursor_len, q->prefix_len, 1, strlen(lim) };
    if (chans_command(bus, 10, argv, lens, t) != 0) {
        answer(bus, t->worker, t->session_id, NULL);
        free(t);
    }
}

void gw_bus_chans_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply)
{
    struct bus_chans *x = bus->chans_idx;

    if (*(const int *)token == BUS_TOKEN_CHANS_WRITE) {
        struct chans_write *w = token;
        bool ok = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
        /* Lost (the hash expired or Redis forgot it), refused, or unknown
         * (the link went down): what Redis holds is not known, rewrite it.
         * A failure of a write older than the last rewrite changes nothing. */
        if (!ok && w->epoch == x->epoch && x->state == IDX_SYNCED) {
            if (reply && reply->type == REDIS_REPLY_ERROR)
                LOG_WARN("channel index write failed: %.*s", (int)reply->len, reply->str);
            x->state = IDX_REWRITE;
        }
        free(w);
        return;
    }
    struct chans_read *t = token;
    if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)) {
        answer(bus, t->worker, t->session_id, gw_frame_new_copy(reply->str, reply->len));
    } else {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            LOG_WARN("channel index read failed: %.*s", (int)reply->len, reply->str);
        answer(bus, t->worker, t->session_id, NULL);
    }
    free(t);
}
