/* Many-producer, single-consumer hand-off between threads, lock-free: an
 * intrusive list that producers push onto with one compare-and-swap and the
 * consumer empties with one exchange. post() tells the producer whether the
 * box was empty, so it wakes the consumer only once per batch; the consumer
 * takes the whole list at once and processes it without touching the box. */
#ifndef GW_MAILBOX_H
#define GW_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>

/* Embed this as the first member of each message type. */
struct gw_mail {
    struct gw_mail *next;
};

/* Shared by any number of producer threads and one consumer thread. */
struct gw_mailbox {
    /* Newest message first, NULL when empty. Producers only push (CAS);
     * the consumer only swaps it for NULL. */
    _Atomic(struct gw_mail *) head;
};

void gw_mailbox_init(struct gw_mailbox *mb);
/* The box must be empty (take_all and free what it returns first). */
void gw_mailbox_deinit(struct gw_mailbox *mb);

/* Appends m (ownership moves to the box, and m's contents become visible to
 * the consumer that takes it). Returns true when the box was empty before,
 * i.e. the caller must wake the consumer: after each take_all that emptied
 * the box, exactly one post gets true. Any thread; no lock, cannot fail. */
bool gw_mailbox_post(struct gw_mailbox *mb, struct gw_mail *m);

/* Detaches and returns every queued message (NULL if none); the caller owns
 * them. FIFO in the order the posts took effect, so each producer's messages
 * keep that producer's order. The consumer thread only (one at a time). */
struct gw_mail *gw_mailbox_take_all(struct gw_mailbox *mb);

#endif
