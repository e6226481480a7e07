/* An intrusive, circular, doubly linked list: a node is embedded in the
 * object it links, so linking never allocates and unlinking needs no head
 * and no search. A head is a node that links the others; a node that is in
 * no list points at itself (after gw_list_init or gw_list_remove), so
 * "is it linked?" has one answer. Not thread-safe: the owner's thread only. */
#ifndef GW_LIST_H
#define GW_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct gw_list {
    struct gw_list *prev, *next;
};

/* The object that embeds node ptr as member. */
#define gw_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* An empty head, or a node in no list. */
static inline void gw_list_init(struct gw_list *l)
{
    l->prev = l->next = l;
}

/* A head: true when it links nothing. A node: true when it is in no list. */
static inline bool gw_list_empty(const struct gw_list *l)
{
    return l->next == l;
}

/* Links node n (in no list) first in head's list. */
static inline void gw_list_push(struct gw_list *head, struct gw_list *n)
{
    n->prev = head;
    n->next = head->next;
    head->next->prev = n;
    head->next = n;
}

/* Unlinks n from whatever list holds it; a no-op when it is in none. */
static inline void gw_list_remove(struct gw_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    gw_list_init(n);
}

/* Unlinks and returns the first node of head's list, or NULL when empty. */
static inline struct gw_list *gw_list_pop(struct gw_list *head)
{
    struct gw_list *n = head->next;
    if (n == head)
        return NULL;
    gw_list_remove(n);
    return n;
}

/* Moves every node of src's list to the front of dst's (same order); src is
 * left empty. */
static inline void gw_list_splice(struct gw_list *dst, struct gw_list *src)
{
    if (gw_list_empty(src))
        return;
    src->prev->next = dst->next;
    dst->next->prev = src->prev;
    dst->next = src->next;
    src->next->prev = dst;
    gw_list_init(src);
}

/* The node after n in head's list, or NULL at the end (iterating with it
 * allows removing n, not its successor). */
static inline struct gw_list *gw_list_next(const struct gw_list *head, const struct gw_list *n)
{
    return n->next == head ? NULL : n->next;
}

/* The first node of head's list, or NULL. */
static inline struct gw_list *gw_list_first(const struct gw_list *head)
{
    return gw_list_next(head, head);
}

#endif
