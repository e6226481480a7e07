/* Idempotent HTTP publishes (POST /api/publish with "idempotency_key",
 * docs/PROTOCOL.md): the first request claims the key in Redis (SET NX with
 * a short expiry, so a node that dies mid-way does not block the key for the
 * whole window), publishes, then stores its answer under the key for
 * --publish-idempotency-window; a retry on any node finds the answer and
 * publishes nothing. Standalone mode keeps the keys in memory. Bus thread. */
#define GW_LOG_MODULE "bus"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_int.h"
#include "clock.h"
#include "log.h"

#define IDEM_PREFIX "wsgate:idem:"
/* A claim outlives any publish command (the link's deadline is seconds). */
#define CLAIM_TTL_S "30"

enum idem_stage { IDEM_CLAIM, IDEM_READ, IDEM_STORE };

/* One idempotent publish on its way; also the token of its Redis commands
 * (its first member tells bus.c's reply dispatch what it is). */
struct idem_wait {
    int kind; /* BUS_TOKEN_IDEM */
    enum idem_stage stage;
    int worker;
    uint64_t session_id;
    char *payload; /* owned until published */
    size_t payload_len;
    size_t name_len;
    char name[GW_CHANNEL_MAX + 1];
    size_t klen;
    char key[sizeof IDEM_PREFIX + GW_CTL_IDEM_MAX];
};

/* Standalone: a key's answer and when it is forgotten. */
struct idem_local {
    int64_t until_us;
};

static void post_result(struct gw_bus *bus, int worker, uint64_t session_id, const struct gw_position *at, bool ok,
                        bool busy, bool count)
{
    struct gw_wmail *m = gw_wmail_new(GW_WMAIL_PUBLISH_RESULT, NULL, 0);

    m->session_id = session_id;
    m->ok = ok;
    m->busy = busy;
    if (at)
        m->at = *at;
    if (count)
        gw_stat_add(ok ? &bus->stats.publishes_ok : &bus->stats.publishes_failed, 1);
    bus->ops->post(bus->ctx, worker, m);
}

static void finish(struct idem_wait *iw)
{
    free(iw->payload);
    free(iw);
}

/* Every command of an idempotent publish touches its one key: on a cluster
 * the key's own slot picks the master (the name is the same in every mode). */
static int command(struct gw_bus *bus, struct idem_wait *iw, int argc, const char *const *argv, const size_t *lens)
{
    return bus_command(bus, iw->key, iw->klen, argc, argv, lens, iw);
}

/* Forgets the claim (the publish failed): a retry may publish. */
static void release(struct gw_bus *bus, struct idem_wait *iw)
{
    const char *argv[] = { "DEL", iw->key };
    size_t lens[] = { 3, iw->klen };

    iw->stage = IDEM_STORE;
    if (command(bus, iw, 2, argv, lens) != 0)
        finish(iw);
}

static void standalone(struct gw_bus *bus, struct bus_cmd *cmd)
{
    int64_t now = gw_now_us();
    struct gw_dict_entry *e = gw_dict_find(&bus->idem_local, cmd->idem_key, cmd->idem_len);
    struct idem_local *l = e ? e->value : NULL;

    if (l && l->until_us > now) {
        post_result(bus, cmd->worker, cmd->session_id, NULL, true, false, false);
        return;
    }
    if (!l) {
        l = gw_xmalloc(sizeof(*l));
        gw_dict_add(&bus->idem_local, cmd->idem_key, cmd->idem_len, l, NULL);
    }
    l->until_us = now + (int64_t)bus->cfg->publish_idempotency_window_min * 60 * 1000000;
    if (gw_bus_chan(bus, cmd->name, cmd->name_len))
        gw_bus_deliver(bus, cmd->name, cmd->name_len, NULL, cmd->payload, cmd->payload_len);
    post_result(bus, cmd->worker, cmd->session_id, NULL, true, false, true);
}

void gw_bus_idem_publish(struct gw_bus *bus, struct bus_cmd *cmd)
{
    struct idem_wait *iw;

    if (bus->standalone) {
        standalone(bus, cmd);
        return;
    }
    iw = gw_xcalloc(1, sizeof(*iw));
    iw->kind = BUS_TOKEN_IDEM;
    iw->worker = cmd->worker;
    iw->session_id = cmd->session_id;
    iw->payload = cmd->payload; /* taken: the drain frees cmd, not this */
    iw->payload_len = cmd->payload_len;
    cmd->payload = NULL;
    memcpy(iw->name, cmd->name, cmd->name_len);
    iw->name_len = cmd->name_len;
    iw->klen = (size_t)snprintf(iw->key, sizeof iw->key, IDEM_PREFIX "%.*s", (int)cmd->idem_len, cmd->idem_key);

    const char *argv[] = { "SET", iw->key, "", "NX", "EX", CLAIM_TTL_S };
    size_t lens[] = { 3, iw->klen, 0, 2, 2, strlen(CLAIM_TTL_S) };
    if (command(bus, iw, 6, argv, lens) != 0) {
        post_result(bus, iw->worker, iw->session_id, NULL, false, false, true);
        finish(iw);
    }
}

/* The claim is ours: publish as any HTTP publish, with the same bounds. */
static void publish(struct gw_bus *bus, struct idem_wait *iw)
{
    char key[256];
    size_t klen = gw_bus_prefixed(bus, iw->name, iw->name_len, key);
    struct pub_wait *pw;
    int rc = -1;

    if (bus->pub_in_flight < MAX_PUBLISHES_IN_FLIGHT &&
        bus->pub_bytes_in_flight + iw->payload_len <= bus->cfg->max_inbox_bytes) {
        pw = gw_xcalloc(1, sizeof(*pw));
        *pw = (struct pub_wait){ iw->payload_len, iw->worker, iw->session_id, false, 0, iw };
        rc = gw_config_keeps_history(bus->cfg, iw->name)
                 ? bus_publish(bus, key, klen, iw->payload, iw->payload_len, pw)
                 : bus_publish_plain(bus, key, klen, iw->payload, iw->payload_len, pw);
        if (rc != 0)
            free(pw);
    }
    free(iw->payload);
    iw->payload = NULL;
    if (rc != 0) {
        post_result(bus, iw->worker, iw->session_id, NULL, false, false, true);
        release(bus, iw);
        return;
    }
    bus->pub_in_flight++;
    bus->pub_bytes_in_flight += iw->payload_len;
}

void gw_bus_idem_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply)
{
    struct idem_wait *iw = token;
    struct gw_position at = { 0 };
    long long off;
    char *sp;

    switch (iw->stage) {
    case IDEM_CLAIM:
        if (reply && reply->type == REDIS_REPLY_STATUS) {
            publish(bus, iw);
            return;
        }
        if (reply && reply->type == REDIS_REPLY_NIL) {
            const char *argv[] = { "GET", iw->key };
            size_t lens[] = { 3, iw->klen };
            iw->stage = IDEM_READ;
            if (command(bus, iw, 2, argv, lens) == 0)
                return;
        }
        post_result(bus, iw->worker, iw->session_id, NULL, false, false, true);
        break;
    case IDEM_READ:
        /* "<offset> <epoch>": the first answer; "": the first request is
         * still on its way (or its node died: the claim expires soon). */
        if (reply && reply->type == REDIS_REPLY_STRING && reply->len > 0 && reply->len < 64 &&
            (sp = memchr(reply->str, ' ', reply->len)) && (off = strtoll(reply->str, NULL, 10)) >= 0) {
            gw_position_set(&at, (uint64_t)off, sp + 1, reply->len - (size_t)(sp + 1 - reply->str));
            post_result(bus, iw->worker, iw->session_id, &at, true, false, false);
        } else {
            post_result(bus, iw->worker, iw->session_id, NULL, false, reply != NULL, false);
        }
        break;
    case IDEM_STORE:
        break;
    }
    finish(iw);
}

void gw_bus_idem_published(struct gw_bus *bus, struct pub_wait *pw, const struct gw_position *at)
{
    struct idem_wait *iw = pw->idem;

    free(pw);
    post_result(bus, iw->worker, iw->session_id, at, at != NULL, false, true);
    if (!at) {
        release(bus, iw);
        return;
    }
    char value[64], ttl[16];
    size_t vlen = (size_t)snprintf(value, sizeof value, "%" PRIu64 " %s", at->offset, at->epoch);
    size_t tlen = (size_t)snprintf(ttl, sizeof ttl, "%d", bus->cfg->publish_idempotency_window_min * 60);
    const char *argv[] = { "SET", iw->key, value, "EX", ttl };
    size_t lens[] = { 3, iw->klen, vlen, 2, tlen };
    iw->stage = IDEM_STORE;
    if (command(bus, iw, 5, argv, lens) != 0) {
        LOG_WARN("idempotency answer not stored key_bytes=%zu reason=link_down", iw->klen);
        finish(iw);
    }
}

bool gw_bus_post_publish_once(struct gw_bus *bus, int worker, uint64_t session_id, const char *name, size_t len,
                              char *payload, size_t payload_len, const char *key, size_t klen)
{
    if (atomic_fetch_add_explicit(&bus->inbox_bytes, payload_len, memory_order_relaxed) + payload_len >
        bus->cfg->max_inbox_bytes) {
        atomic_fetch_sub_explicit(&bus->inbox_bytes, payload_len, memory_order_relaxed);
        return false;
    }
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_PUBLISH, worker, name, len);
    cmd->session_id = session_id;
    cmd->payload = payload;
    cmd->payload_len = payload_len;
    cmd->idem_key = gw_xstrndup(key, klen);
    cmd->idem_len = klen;
    gw_bus_cmd_post(bus, cmd);
    return true;
}

void gw_bus_idem_free(struct gw_bus *bus)
{
    for (struct gw_dict_entry *e = gw_dict_first(&bus->idem_local); e; e = gw_dict_next(&bus->idem_local, e))
        free(e->value);
    gw_dict_deinit(&bus->idem_local);
}
