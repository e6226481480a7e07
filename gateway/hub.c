/* Local hub: per-worker channel index. O(1) join and leave: each channel keeps
 * an array of subscription records and every record knows its index in it, so
 * removal swaps the last record into the hole. */
#include "hub.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* One (member, channel) pair. Lives in both the channel's array and the
 * member's array; idx is its position in the channel's array. */
struct gw_sub {
    struct gw_hub_member *member;
    struct gw_hub_channel *channel;
    size_t idx;
    bool ack_pending; /* subscribe not yet acknowledged: channel not live yet */
    bool presence_events; /* the member asked for join/leave events ("presence": true) */
    int nids; /* ids of the pending subscribe requests (repeats included) */
    int64_t *ids; /* owned, NULL when nids == 0 */
    struct gw_recovery *rec; /* owned; NULL unless a recovery runs (recovery.h) */
};

struct gw_hub_channel {
    const char *name; /* points into the dict entry key */
    size_t name_len;
    struct gw_sub **subs; /* owned array, records owned by members */
    size_t n, cap;
    bool live; /* node's Redis subscription confirmed, and not lost since */
    uint32_t gen; /* this incarnation of the channel on this worker; tags want/live */
    struct gw_list counted; /* in hub->counted while its count is not yet taken */
};

struct gw_recovery *gw_hub_sub_recovery(const struct gw_sub *sub)
{
    return sub->rec;
}

int gw_hub_member_count(const struct gw_hub_member *m)
{
    return m->nsubs;
}

const char *gw_hub_member_channel(const struct gw_hub_member *m, int i, size_t *len)
{
    *len = m->subs[i]->channel->name_len;
    return m->subs[i]->channel->name;
}

void gw_hub_init(struct gw_hub *hub, const struct gw_hub_ops *ops, void *ctx, const struct gw_client_ops *client,
                 size_t hold_max_bytes)
{
    gw_dict_init(&hub->channels);
    gw_dict_init(&hub->recovering);
    hub->ops = ops;
    hub->ctx = ctx;
    hub->client = client;
    hub->nsubs = 0;
    hub->hold_max_bytes = hold_max_bytes;
    hub->next_seq = 0;
    gw_list_init(&hub->counted);
}

void gw_hub_deinit(struct gw_hub *hub)
{
    for (struct gw_dict_entry *e = gw_dict_first(&hub->channels); e; e = gw_dict_next(&hub->channels, e)) {
        struct gw_hub_channel *ch = e->value;
        free(ch->subs);
        free(ch);
    }
    gw_dict_deinit(&hub->channels);
    gw_dict_deinit(&hub->recovering);
}

void gw_hub_member_init(struct gw_hub_member *m, void *owner)
{
    m->owner = owner;
    m->subs = NULL;
    m->nsubs = m->cap = 0;
}

static struct gw_hub_channel *channel_get_or_create(struct gw_hub *hub, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    if (e)
        return e->value;
    struct gw_hub_channel *ch = gw_xcalloc(1, sizeof(*ch));
    e = gw_dict_add(&hub->channels, name, len, ch, NULL);
    ch->name = e->key;
    ch->name_len = len;
    ch->gen = ++hub->next_gen;
    gw_list_init(&ch->counted);
    return ch;
}

static void sub_add_pending_id(struct gw_sub *sub, bool has_id, int64_t id)
{
    if (!has_id)
        return;
    sub->ids = gw_xrealloc(sub->ids, (size_t)(sub->nids + 1) * sizeof(*sub->ids));
    sub->ids[sub->nids++] = id;
}

/* Sends every ack still owed for sub and forgets the ids. */
static void sub_flush_acks(struct gw_hub *hub, struct gw_sub *sub)
{
    for (int i = 0; i < sub->nids; i++)
        hub->client->ack(sub->member->owner, sub->ids[i]);
    free(sub->ids);
    sub->ids = NULL;
    sub->nids = 0;
    sub->ack_pending = false;
}

/* sub is live: the member is told once (presence starts here). */
static void sub_went_live(struct gw_hub *hub, struct gw_sub *sub)
{
    if (hub->client->live)
        hub->client->live(sub->member->owner, sub->channel->name, sub->channel->name_len);
}

/* Forgets sub's recovery; from here on frames go straight to the member.
 * cancel: answer its subscribe if the recovery did not yet. */
static void sub_end_recovery(struct gw_hub *hub, struct gw_sub *sub, bool cancel)
{
    if (!sub->rec)
        return;
    uint32_t seq = gw_recovery_seq(sub->rec);
    gw_dict_delete(&hub->recovering, &seq, sizeof(seq));
    if (cancel)
        gw_recovery_cancel(sub->rec);
    else
        gw_recovery_free(sub->rec);
    sub->rec = NULL;
}

void gw_hub_recovery_page(struct gw_hub *hub, const struct gw_wmail *m)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->recovering, &m->seq, sizeof(m->seq));
    struct gw_sub *sub = e ? e->value : NULL;

    if (sub && gw_recovery_page(sub->rec, m) == GW_RECOVERY_DONE) {
        sub_end_recovery(hub, sub, false);
        sub_went_live(hub, sub);
        sub_flush_acks(hub, sub);
    }
}

void gw_hub_member_room(struct gw_hub *hub, struct gw_hub_member *m)
{
    for (int i = 0; i < m->nsubs; i++)
        if (m->subs[i]->rec)
            gw_recovery_room(m->subs[i]->rec);
}

/* The index of m's subscription to name, or -1. Linear: a member holds at
 * most --max-subscriptions channels (default 64). */
static int member_find(const struct gw_hub_member *m, const char *name, size_t len)
{
    for (int i = 0; i < m->nsubs; i++) {
        const struct gw_hub_channel *ch = m->subs[i]->channel;
        if (ch->name_len == len && memcmp(ch->name, name, len) == 0)
            return i;
    }
    return -1;
}

struct gw_sub *gw_hub_find(const struct gw_hub_member *m, const char *name, size_t len)
{
    int i = member_find(m, name, len);
    return i < 0 ? NULL : m->subs[i];
}

int gw_hub_subscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len,
                     bool has_id, int64_t id, int max_subs, bool allow_new, const struct gw_recovery_req *rec)
{
    struct gw_sub *existing = gw_hub_find(m, name, len);
    if (existing) {
        if (!existing->ack_pending)
            return GW_HUB_SUB_ACK_NOW;
        /* A repeat while the first is pending waits for the same live event. */
        if (has_id && existing->nids >= GW_HUB_MAX_PENDING_IDS)
            return -E2BIG;
        sub_add_pending_id(existing, has_id, id);
        return GW_HUB_SUB_ACK_LATER;
    }
    if (m->nsubs >= max_subs)
        return -ENOSPC;

    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    struct gw_hub_channel *ch = e ? e->value : NULL;
    if (!(ch && ch->live) && !allow_new)
        return -EAGAIN;
    ch = channel_get_or_create(hub, name, len);

    struct gw_sub *sub = gw_xmalloc(sizeof(*sub));
    sub->member = m;
    sub->channel = ch;
    sub->ack_pending = !ch->live || rec;
    sub->presence_events = false;
    sub->nids = 0;
    sub->ids = NULL;
    sub->rec = NULL;
    if (rec) {
        /* Its own reply comes with the first replayed page (recovery.c). */
        uint32_t seq = ++hub->next_seq;
        sub->rec = gw_recovery_new(hub->client, m->owner, ch->name, ch->name_len, seq, rec, hub->hold_max_bytes);
        gw_dict_add(&hub->recovering, &seq, sizeof(seq), sub, NULL);
    } else if (sub->ack_pending) {
        sub_add_pending_id(sub, has_id, id);
    }

    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = gw_xrealloc(ch->subs, ch->cap * sizeof(*ch->subs));
    }
    sub->idx = ch->n;
    ch->subs[ch->n++] = sub;

    if (m->nsubs == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4;
        m->subs = gw_xrealloc(m->subs, (size_t)m->cap * sizeof(*m->subs));
    }
    m->subs[m->nsubs++] = sub;
    hub->nsubs++;

    if (ch->n == 1)
        hub->ops->channel_wanted(hub->ctx, ch->name, ch->name_len, ch->gen);
    else if (gw_list_empty(&ch->counted))
        gw_list_push(&hub->counted, &ch->counted);
    if (sub->rec && ch->live)
        gw_recovery_start(sub->rec);
    if (!sub->ack_pending)
        sub_went_live(hub, sub);
    return sub->ack_pending ? GW_HUB_SUB_ACK_LATER : GW_HUB_SUB_ACK_NOW;
}

/* Unlinks sub from its channel and frees it; drops the channel when empty. */
static void sub_remove_from_channel(struct gw_hub *hub, struct gw_sub *sub)
{
    struct gw_hub_channel *ch = sub->channel;
    struct gw_sub *last = ch->subs[ch->n - 1];
    ch->subs[sub->idx] = last;
    last->idx = sub->idx;
    ch->n--;
    hub->nsubs--;
    sub_end_recovery(hub, sub, false);
    free(sub->ids);
    free(sub);
    if (ch->n > 0 && gw_list_empty(&ch->counted))
        gw_list_push(&hub->counted, &ch->counted);
    if (ch->n == 0) {
        gw_list_remove(&ch->counted);
        hub->ops->channel_unwanted(hub->ctx, ch->name, ch->name_len);
        free(ch->subs);
        /* The name lives in the dict entry: delete it last. */
        struct gw_hub_channel *victim = ch;
        gw_dict_delete(&hub->channels, ch->name, ch->name_len);
        free(victim);
    }
}

void gw_hub_unsubscribe(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len)
{
    int i = member_find(m, name, len);
    if (i < 0)
        return;
    struct gw_sub *sub = m->subs[i];
    sub_end_recovery(hub, sub, true);
    sub_flush_acks(hub, sub);
    m->subs[i] = m->subs[--m->nsubs];
    sub_remove_from_channel(hub, sub);
}

void gw_hub_leave_all(struct gw_hub *hub, struct gw_hub_member *m)
{
    for (int i = 0; i < m->nsubs; i++)
        sub_remove_from_channel(hub, m->subs[i]);
    free(m->subs);
    m->subs = NULL;
    m->nsubs = m->cap = 0;
}

void gw_hub_link_down(struct gw_hub *hub)
{
    for (struct gw_dict_entry *e = gw_dict_first(&hub->channels); e; e = gw_dict_next(&hub->channels, e))
        ((struct gw_hub_channel *)e->value)->live = false;
}

void gw_hub_channel_down(struct gw_hub *hub, const char *name, size_t len)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    if (e)
        ((struct gw_hub_channel *)e->value)->live = false;
}

void gw_hub_channel_live(struct gw_hub *hub, const char *name, size_t len, uint32_t gen)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    if (!e)
        return;
    struct gw_hub_channel *ch = e->value;
    if (ch->live || ch->gen != gen)
        return;
    ch->live = true;
    for (size_t i = 0; i < ch->n; i++) {
        struct gw_sub *sub = ch->subs[i];
        if (sub->rec) {
            gw_recovery_start(sub->rec); /* a no-op once started */
        } else if (sub->ack_pending) {
            sub_went_live(hub, sub);
            sub_flush_acks(hub, sub);
        }
    }
}

size_t gw_hub_deliver(struct gw_hub *hub, const char *name, size_t len, struct gw_frame *frame)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    if (!e)
        return 0;
    struct gw_hub_channel *ch = e->value;
    /* deliver() may shed a member, but shedding only marks it closing; the
     * array is not modified until lws closes the socket later. */
    for (size_t i = 0; i < ch->n; i++) {
        struct gw_sub *sub = ch->subs[i];
        if (sub->rec)
            gw_recovery_hold(sub->rec, frame);
        else
            hub->client->deliver(sub->member->owner, frame);
    }
    return ch->n;
}

void gw_hub_want_presence(struct gw_hub *hub, struct gw_hub_member *m, const char *name, size_t len, bool on)
{
    (void)hub;
    struct gw_sub *sub = gw_hub_find(m, name, len);
    if (sub)
        sub->presence_events = on;
}

size_t gw_hub_deliver_presence(struct gw_hub *hub, const char *name, size_t len, struct gw_frame *frame)
{
    struct gw_dict_entry *e = gw_dict_find(&hub->channels, name, len);
    size_t n = 0;
    if (!e)
        return 0;
    struct gw_hub_channel *ch = e->value;
    for (size_t i = 0; i < ch->n; i++) {
        struct gw_sub *sub = ch->subs[i];
        if (sub->presence_events && !sub->ack_pending) {
            hub->client->deliver(sub->member->owner, frame);
            n++;
        }
    }
    return n;
}

size_t gw_hub_channel_count(const struct gw_hub *hub)
{
    return hub->channels.count;
}

size_t gw_hub_take_counts(struct gw_hub *hub, gw_hub_count_fn fn, void *arg)
{
    size_t n = 0;
    struct gw_list *l;

    while ((l = gw_list_pop(&hub->counted))) {
        const struct gw_hub_channel *ch = gw_container_of(l, struct gw_hub_channel, counted);
        fn(arg, ch->name, ch->name_len, (uint32_t)ch->n);
        n++;
    }
    return n;
}

int gw_hub_busiest(const struct gw_hub *hub, struct gw_hub_top *top, int max)
{
    int n = 0;

    /* One pass, keeping the max busiest sorted by insertion. */
    for (struct gw_dict_entry *e = gw_dict_first(&hub->channels); e; e = gw_dict_next(&hub->channels, e)) {
        const struct gw_hub_channel *ch = e->value;
        int i = n < max ? n++ : max;
        if (i == max && ch->n <= top[max - 1].subscribers)
            continue;
        if (i == max)
            i = max - 1;
        for (; i > 0 && top[i - 1].subscribers < ch->n; i--)
            top[i] = top[i - 1];
        memcpy(top[i].name, ch->name, ch->name_len);
        top[i].name[ch->name_len] = '\0';
        top[i].subscribers = (uint32_t)ch->n;
    }
    return n;
}
