/* Many-producer, single-consumer hand-off between threads: a mutex and an
 * intrusive singly linked list. post() tells the producer whether the box was
 * empty, so it wakes the consumer only once per batch; the consumer takes the
 * whole list with one lock and processes it without the lock. */
#ifndef GW_MAILBOX_H
#define GW_MAILBOX_H

#include <pthread.h>
#include <stdbool.h>

/* Embed this as the first member of each message type. */
struct gw_mail {
    struct gw_mail *next;
};

struct gw_mailbox {
    pthread_mutex_t lock;
    struct gw_mail *head, *tail; /* guarded by lock */
};

void gw_mailbox_init(struct gw_mailbox *mb);
/* The box must be empty (take_all and free what it returns first). */
void gw_mailbox_deinit(struct gw_mailbox *mb);

/* Appends m (ownership moves to the box). Returns true when the box was
 * empty before, i.e. the caller must wake the consumer. Any thread. */
bool gw_mailbox_post(struct gw_mailbox *mb, struct gw_mail *m);

/* Detaches and returns every queued message in FIFO order (NULL if none);
 * the caller owns them. Consumer thread. */
struct gw_mail *gw_mailbox_take_all(struct gw_mailbox *mb);

#endif
