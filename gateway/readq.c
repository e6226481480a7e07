/* The bus's waiting client reads, one turn per client (readq.h). */
#include "readq.h"

#include <stdlib.h>

#include "alloc.h"

struct readq_client {
    struct readq_client *prev, *next; /* turn order */
    struct gw_readq_item *head, *tail; /* its waiting items, oldest first */
    size_t n; /* items in that list */
    uint64_t id;
};

void gw_readq_init(struct gw_readq *q)
{
    gw_dict_init(&q->clients);
    q->head = q->tail = NULL;
    q->count = 0;
}

void gw_readq_deinit(struct gw_readq *q)
{
    struct readq_client *c = q->head;

    while (c) {
        struct readq_client *next = c->next;
        free(c);
        c = next;
    }
    gw_dict_deinit(&q->clients);
    q->head = q->tail = NULL;
    q->count = 0;
}

static void turn_append(struct gw_readq *q, struct readq_client *c)
{
    c->next = NULL;
    c->prev = q->tail;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
}

static void turn_unlink(struct gw_readq *q, struct readq_client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        q->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        q->tail = c->prev;
    c->prev = c->next = NULL;
}

/* Unlinks c from the turn order and the table and frees it. */
static void client_drop(struct gw_readq *q, struct readq_client *c)
{
    turn_unlink(q, c);
    gw_dict_delete(&q->clients, &c->id, sizeof c->id);
    free(c);
}

void gw_readq_push(struct gw_readq *q, struct gw_readq_item *it, uint64_t client)
{
    struct gw_dict_entry *e = gw_dict_find(&q->clients, &client, sizeof client);
    struct readq_client *c = e ? e->value : NULL;

    if (!c) {
        c = gw_xcalloc(1, sizeof(*c));
        c->id = client;
        gw_dict_add(&q->clients, &client, sizeof client, c, NULL);
        turn_append(q, c);
    }
    it->client = client;
    it->next = NULL;
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->n++;
    q->count++;
}

struct gw_readq_item *gw_readq_pop(struct gw_readq *q)
{
    struct readq_client *c = q->head;
    struct gw_readq_item *it;

    if (!c)
        return NULL;
    it = c->head;
    c->head = it->next;
    it->next = NULL;
    c->n--;
    q->count--;
    if (!c->head) {
        client_drop(q, c);
    } else {
        turn_unlink(q, c);
        turn_append(q, c);
    }
    return it;
}

size_t gw_readq_client_count(const struct gw_readq *q, uint64_t client)
{
    struct gw_dict_entry *e = gw_dict_find(&q->clients, &client, sizeof client);
    return e ? ((struct readq_client *)e->value)->n : 0;
}

struct gw_readq_item *gw_readq_take_client(struct gw_readq *q, uint64_t client)
{
    struct gw_dict_entry *e = gw_dict_find(&q->clients, &client, sizeof client);
    struct readq_client *c = e ? e->value : NULL;
    struct gw_readq_item *items;

    if (!c)
        return NULL;
    items = c->head;
    q->count -= c->n;
    client_drop(q, c);
    return items;
}
