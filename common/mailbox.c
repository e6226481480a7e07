/* Cross-thread hand-off without a lock: a push-only LIFO list (a Treiber
 * stack whose only pop is "take everything"), reversed into FIFO order by the
 * consumer, so a post never waits for another thread. */
#include "mailbox.h"

#include <assert.h>
#include <stddef.h>

/* A platform that emulated pointer atomics with a lock would bring the mutex
 * back in disguise. */
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "the mailbox needs lock-free pointer atomics");

/* Memory ordering:
 * - post's successful CAS is a release: the message's contents and m->next,
 *   written before it, are published with the new head.
 * - take_all's exchange is an acquire. It reads the head written by the last
 *   producer's CAS; the CASes of earlier producers in the same batch are
 *   followed only by read-modify-writes (more CASes), so the consumer's
 *   acquire synchronizes with every producer whose message it took (C11
 *   release sequences), and walking the whole list is race-free.
 * - A failed CAS is relaxed: the producer only copies the pointer it read
 *   into m->next, never dereferences it.
 * - No ABA hazard: nothing is popped one by one. If a stale head A was taken,
 *   freed and re-posted before a producer's CAS, that CAS succeeds with
 *   m->next == A, which is then truly the head.
 * - "Was empty": all operations on head form one modification order. After
 *   init or an exchange to NULL, the first successful CAS, and only it, finds
 *   NULL. So every non-empty batch has exactly one post that returned true.
 * A CAS loop rather than exchange-then-link: with exchange, the consumer
 * could see a new head whose next is not written yet. */

void gw_mailbox_init(struct gw_mailbox *mb)
{
    atomic_init(&mb->head, NULL);
}

void gw_mailbox_deinit(struct gw_mailbox *mb)
{
    assert(atomic_load_explicit(&mb->head, memory_order_relaxed) == NULL);
    (void)mb; /* nothing to release; the assert is the contract check */
}

bool gw_mailbox_post(struct gw_mailbox *mb, struct gw_mail *m)
{
    struct gw_mail *old = atomic_load_explicit(&mb->head, memory_order_relaxed);

    do {
        m->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&mb->head, &old, m, memory_order_release,
                                                    memory_order_relaxed));
    return old == NULL;
}

struct gw_mail *gw_mailbox_take_all(struct gw_mailbox *mb)
{
    struct gw_mail *lifo = atomic_exchange_explicit(&mb->head, NULL, memory_order_acquire);
    struct gw_mail *fifo = NULL;

    while (lifo) {
        struct gw_mail *next = lifo->next;

        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    return fifo;
}
