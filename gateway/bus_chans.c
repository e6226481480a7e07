/* The cluster-wide index of active channels behind GET /api/channels
 * (docs/PROTOCOL.md, "Server API"). Bus thread only.
 *
 * Every second each node rewrites {wsgate}:chans:<node-id>, the set of the
 * channels it wants (at least one local subscriber: want_mask != 0 in the
 * bus's channel table), with a 5 s TTL, and adds the same names to
 * {wsgate}:chans, one lexicographic ZSET (all scores 0) shared by the nodes,
 * and its id to {wsgate}:chans:nodes. A read walks the ZSET from the cursor
 * with ZRANGEBYLEX (cost proportional to the page, not to the index) and
 * counts, per name, the node sets still alive that hold it; a name no live
 * node holds is dropped from the ZSET there (the writer re-adds it within a
 * second if it comes back), a node set gone is dropped from the node list.
 * A killed node's channels therefore disappear when its set expires (5 s).
 * All keys share the {wsgate} hash tag; the link is single-Redis only for
 * now (bus_link_command), so in cluster mode nothing is written and the read
 * answers 503. */
#define GW_LOG_MODULE "bus"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_int.h"
#include "frame.h"
#include "log.h"
#include "wmail.h"

#define CHANS_ZSET "{wsgate}:chans"
#define CHANS_NODES "{wsgate}:chans:nodes"
#define CHANS_NODE "{wsgate}:chans:node:"
#define CHANS_TTL "5"
#define CHANS_BATCH 512 /* names per SADD/ZADD */
#define CHANS_KEY_MAX 320

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
    "local function count(c)\n"
    "  local k = 0\n"
    "  for _, key in ipairs(live) do k = k + redis.call('SISMEMBER', key, c) end\n"
    "  return k\n"
    "end\n"
    "local out, last, done = {}, nil, false\n"
    "if exact then\n"
    "  done = true\n"
    "  if cursor == '' then\n"
    "    local k = count(prefix)\n"
    "    if k > 0 then out[1] = '{\"channel\":' .. cjson.encode(prefix) .. ',\"nodes\":' .. k .. '}' end\n"
    "  end\n"
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
    "      local k = count(c)\n"
    "      if k > 0 then out[#out + 1] = '{\"channel\":' .. cjson.encode(c) .. ',\"nodes\":' .. k .. '}'\n"
    "      else redis.call('ZREM', zset, c) end\n"
    "    end\n"
    "    if last then start = '(' .. last end\n"
    "  end\n"
    "end\n"
    "local nc = 'null'\n"
    "if not done and last then nc = cjson.encode(last) end\n"
    "return '{\"channels\":[' .. table.concat(out, ',') .. '],\"next_cursor\":' .. nc .. '}'\n";

/* Tokens handed to bus_link_command: the first int is the kind (as
 * bus_ctl.c's and bus_idem.c's). Writes need no answer: one static token. */
struct chans_read {
    int kind; /* BUS_TOKEN_CHANS_READ */
    int worker;
    uint64_t session_id;
};
static const int write_token = BUS_TOKEN_CHANS_WRITE;

static void node_key(const struct gw_bus *bus, char *out, const char *suffix)
{
    snprintf(out, CHANS_KEY_MAX, CHANS_NODE "%s%s", bus->cfg->node_id, suffix);
}

static void send_words(struct gw_bus *bus, int argc, const char *const *argv, const size_t *lens)
{
    /* A refused command (link down) is simply not done; the next tick
     * rewrites everything. */
    (void)bus_link_command(bus, argc, argv, lens, (void *)&write_token);
}

/* One SADD (to the node's fresh set, then its TTL) or one ZADD (to the
 * index) of names[0..n). */
static void send_batch(struct gw_bus *bus, const char *tmp, const char *const *names, const size_t *nlens, int n)
{
    const char **argv = gw_xmalloc(sizeof(*argv) * (size_t)(2 * n + 2));
    size_t *lens = gw_xmalloc(sizeof(*lens) * (size_t)(2 * n + 2));
    int argc = 2;

    argv[0] = tmp ? "SADD" : "ZADD";
    lens[0] = 4;
    argv[1] = tmp ? tmp : CHANS_ZSET;
    lens[1] = tmp ? strlen(tmp) : sizeof CHANS_ZSET - 1;
    for (int i = 0; i < n; i++) {
        if (!tmp) {
            argv[argc] = "0";
            lens[argc++] = 1;
        }
        argv[argc] = names[i];
        lens[argc++] = nlens[i];
    }
    send_words(bus, argc, argv, lens);
    if (tmp) {
        const char *exp[] = { "EXPIRE", tmp, CHANS_TTL };
        size_t elens[] = { 6, strlen(tmp), strlen(CHANS_TTL) };
        send_words(bus, 3, exp, elens);
    }
    free(argv);
    free(lens);
}

/* The wanted channels in batches: into the node's fresh set tmp, or (tmp
 * NULL) into the index. Returns how many. */
static int send_wanted(struct gw_bus *bus, const char *tmp)
{
    const char *names[CHANS_BATCH];
    size_t nlens[CHANS_BATCH];
    int n = 0, total = 0;

    for (struct gw_dict_entry *e = gw_dict_first(&bus->chans); e; e = gw_dict_next(&bus->chans, e)) {
        if (!((struct bus_chan *)e->value)->want_mask)
            continue;
        names[n] = e->key;
        nlens[n++] = e->klen;
        total++;
        if (n == CHANS_BATCH) {
            send_batch(bus, tmp, names, nlens, n);
            n = 0;
        }
    }
    if (n)
        send_batch(bus, tmp, names, nlens, n);
    return total;
}

/* The node's set is built under a temporary name (its TTL set with each
 * batch) and renamed over the old one, which keeps that TTL: readers see
 * the old set or the new one, and nothing outlives a dead node by more
 * than the TTL. The names go into the index only after the set is in
 * place and the node listed, so a read never finds a new name in the index
 * before a live set that holds it (it would drop it as stale). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;
    char key[CHANS_KEY_MAX], tmp[CHANS_KEY_MAX];

    (void)fd;
    (void)what;
    if (!bus->link || !gw_link_ready(bus->link))
        return;
    node_key(bus, key, "");
    node_key(bus, tmp, ":next");
    const char *del[] = { "DEL", tmp };
    size_t dlens[] = { 3, strlen(tmp) };
    send_words(bus, 2, del, dlens);
    if (send_wanted(bus, tmp) > 0) {
        const char *ren[] = { "RENAME", tmp, key };
        size_t rlens[] = { 6, strlen(tmp), strlen(key) };
        send_words(bus, 3, ren, rlens);
        const char *sadd[] = { "SADD", CHANS_NODES, bus->cfg->node_id };
        size_t slens[] = { 4, sizeof CHANS_NODES - 1, strlen(bus->cfg->node_id) };
        send_words(bus, 3, sadd, slens);
        send_wanted(bus, NULL);
    } else {
        const char *d2[] = { "DEL", key };
        size_t d2lens[] = { 3, strlen(key) };
        send_words(bus, 2, d2, d2lens);
    }
}

void gw_bus_chans_start(struct gw_bus *bus)
{
    struct timeval tv = { 1, 0 };

    if (!bus->link)
        return;
    bus->chans_ev = event_new(bus->base, -1, EV_PERSIST, on_tick, bus);
    if (!bus->chans_ev || event_add(bus->chans_ev, &tv) != 0) {
        LOG_ERR("libevent could not arm the channel index timer");
        abort();
    }
}

void gw_bus_chans_stop(struct gw_bus *bus)
{
    if (bus->chans_ev)
        event_free(bus->chans_ev);
    bus->chans_ev = NULL;
}

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
    if (bus_link_command(bus, 10, argv, lens, t) != 0) {
        answer(bus, t->worker, t->session_id, NULL);
        free(t);
    }
}

void gw_bus_chans_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply)
{
    struct chans_read *t = token;

    if (t->kind != BUS_TOKEN_CHANS_READ)
        return; /* a write's: nothing to do */
    if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)) {
        answer(bus, t->worker, t->session_id, gw_frame_new_copy(reply->str, reply->len));
    } else {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            LOG_WARN("channel index read failed: %.*s", (int)reply->len, reply->str);
        answer(bus, t->worker, t->session_id, NULL);
    }
    free(t);
}
