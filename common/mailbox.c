/* Cross-thread hand-off. The lock is held only to link or unlink pointers, so
 * producers never wait for the consumer's processing. */
#include "mailbox.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

static void lock_or_die(int rc, const char *what)
{
    /* These only fail on a corrupted or uninitialised mutex: a bug, not a
     * condition to recover from. */
    if (rc != 0) {
        fprintf(stderr, "wsgate: mailbox %s failed (%d)\n", what, rc);
        abort();
    }
}

void gw_mailbox_init(struct gw_mailbox *mb)
{
    lock_or_die(pthread_mutex_init(&mb->lock, NULL), "init");
    mb->head = NULL;
    mb->tail = NULL;
}

void gw_mailbox_deinit(struct gw_mailbox *mb)
{
    assert(mb->head == NULL);
    lock_or_die(pthread_mutex_destroy(&mb->lock), "destroy");
}

bool gw_mailbox_post(struct gw_mailbox *mb, struct gw_mail *m)
{
    bool was_empty;

    m->next = NULL;
    lock_or_die(pthread_mutex_lock(&mb->lock), "lock");
    was_empty = mb->head == NULL;
    if (was_empty)
        mb->head = m;
    else
        mb->tail->next = m;
    mb->tail = m;
    lock_or_die(pthread_mutex_unlock(&mb->lock), "unlock");
    return was_empty;
}

struct gw_mail *gw_mailbox_take_all(struct gw_mailbox *mb)
{
    struct gw_mail *all;

    lock_or_die(pthread_mutex_lock(&mb->lock), "lock");
    all = mb->head;
    mb->head = NULL;
    mb->tail = NULL;
    lock_or_die(pthread_mutex_unlock(&mb->lock), "unlock");
    return all;
}
