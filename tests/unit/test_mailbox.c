/* Mailbox: empty->non-empty reporting, FIFO take_all, and a threaded
 * producers/consumer run that counts every message and wake-up. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "mailbox.h"
#include "unit.h"

struct item {
    struct gw_mail mail; /* first member, as the header asks */
    int producer;
    int seq;
};

static struct item *item_new(int producer, int seq)
{
    struct item *it = malloc(sizeof *it);

    it->producer = producer;
    it->seq = seq;
    return it;
}

START_TEST(post_reports_empty)
{
    struct gw_mailbox mb;
    struct item a = { .seq = 1 }, b = { .seq = 2 }, c = { .seq = 3 };
    struct gw_mail *m;

    gw_mailbox_init(&mb);
    ck_assert_ptr_null(gw_mailbox_take_all(&mb));
    ck_assert(gw_mailbox_post(&mb, &a.mail));
    ck_assert(!gw_mailbox_post(&mb, &b.mail));
    ck_assert(!gw_mailbox_post(&mb, &c.mail));
    m = gw_mailbox_take_all(&mb);
    ck_assert_ptr_eq(m, &a.mail);
    ck_assert_ptr_eq(m->next, &b.mail);
    ck_assert_ptr_eq(m->next->next, &c.mail);
    ck_assert_ptr_null(m->next->next->next);
    ck_assert_ptr_null(gw_mailbox_take_all(&mb));
    /* Empty again: the next post must wake the consumer again. */
    ck_assert(gw_mailbox_post(&mb, &b.mail));
    ck_assert_ptr_eq(gw_mailbox_take_all(&mb), &b.mail);
    ck_assert_ptr_null(b.mail.next);
    gw_mailbox_deinit(&mb);
}
END_TEST

#define PRODUCERS 2
#define PER_PRODUCER 100000

static struct gw_mailbox shared;
static sem_t wake;
static int wakeups[PRODUCERS];

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;

    for (int i = 0; i < PER_PRODUCER; i++) {
        if (gw_mailbox_post(&shared, &item_new(id, i)->mail)) {
            wakeups[id]++;
            sem_post(&wake);
        }
    }
    return NULL;
}

START_TEST(threaded)
{
    pthread_t t[PRODUCERS];
    int next[PRODUCERS] = { 0 };
    long received = 0, batches = 0, empty_takes = 0, total_wakeups = 0;

    gw_mailbox_init(&shared);
    ck_assert_int_eq(sem_init(&wake, 0, 0), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, producer, (void *)(intptr_t)i), 0);
    while (received < (long)PRODUCERS * PER_PRODUCER) {
        struct timespec deadline;
        struct gw_mail *m;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30; /* watchdog: a lost wake-up fails, not hangs */
        while (sem_timedwait(&wake, &deadline) != 0)
            ck_assert_msg(errno == EINTR, "lost wake-up after %ld messages", received);
        m = gw_mailbox_take_all(&shared);
        if (!m)
            empty_takes++;
        else
            batches++;
        while (m) {
            struct item *it = (struct item *)m;

            m = m->next;
            ck_assert_int_eq(it->seq, next[it->producer]); /* FIFO per producer */
            next[it->producer]++;
            received++;
            free(it);
        }
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(next[i], PER_PRODUCER);
        total_wakeups += wakeups[i];
    }
    ck_assert_ptr_null(gw_mailbox_take_all(&shared));
    /* A wake-up posted after its message was already taken is left over. */
    while (sem_trywait(&wake) == 0)
        empty_takes++;
    /* Every batch was announced by exactly one wake-up; some wake-ups may
     * find the box already drained by an earlier take. */
    ck_assert_int_eq(batches + empty_takes, total_wakeups);
    ck_assert_int_ge(batches, 1);
    ck_assert_int_le(total_wakeups, (long)PRODUCERS * PER_PRODUCER);
    sem_destroy(&wake);
    gw_mailbox_deinit(&shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");

    tcase_add_test(tc, post_reports_empty);
    tcase_add_test(tc, threaded);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
