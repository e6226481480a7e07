/* Mailbox: empty->non-empty reporting, FIFO take_all, and two threaded runs
 * (a woken consumer and a spinning one) that count every message and every
 * "was empty" post. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
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

#define PRODUCERS 4
#define PER_PRODUCER 100000
#define TOTAL ((long)PRODUCERS * PER_PRODUCER)

static struct gw_mailbox shared;
static sem_t wake;
static long wakeups[PRODUCERS]; /* posts that returned true, per producer */
static pthread_barrier_t start_line;

/* Posts PER_PRODUCER messages; with use_sem, each true return wakes the
 * consumer through the semaphore, as a real producer would. All threads start
 * together and producers yield and nap now and then: on a small machine the
 * producers would otherwise finish before the consumer first runs, and the
 * run would test two or three batches instead of thousands. */
static void produce(int id, bool use_sem)
{
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < PER_PRODUCER; i++) {
        if (gw_mailbox_post(&shared, &item_new(id, i)->mail)) {
            wakeups[id]++;
            if (use_sem)
                sem_post(&wake);
        }
        if (i % 64 == 63)
            sched_yield();
        if (i % 2048 == 2047)
            nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
    }
}

static void *producer_sem(void *arg)
{
    produce((int)(intptr_t)arg, true);
    return NULL;
}

static void *producer_plain(void *arg)
{
    produce((int)(intptr_t)arg, false);
    return NULL;
}

/* The consumer is the extra party of the barrier: it calls
 * pthread_barrier_wait(&start_line) itself before its first take. */
static void start_producers(pthread_t *t, void *(*fn)(void *))
{
    gw_mailbox_init(&shared);
    memset(wakeups, 0, sizeof wakeups);
    ck_assert_int_eq(pthread_barrier_init(&start_line, NULL, PRODUCERS + 1), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, fn, (void *)(intptr_t)i), 0);
}

static long join_producers(pthread_t *t)
{
    long total = 0;

    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        total += wakeups[i];
    }
    return total;
}

/* What a consumer saw. The checks per message record the first violation
 * instead of calling ck_assert: they run on the consumer's thread, in the
 * hot loop, and the spinning consumer is not the test's thread. */
struct consumer_log {
    long received, batches, empty_takes;
    int next[PRODUCERS]; /* next sequence number expected from each producer */
    bool timed_out;
    char bad[160]; /* first violation, or "" */
};

/* Checks and frees one take_all result; m may be NULL. */
static void consume(struct consumer_log *log, struct gw_mail *m)
{
    if (!m) {
        log->empty_takes++;
        return;
    }
    log->batches++;
    while (m) {
        struct item *it = (struct item *)m;

        m = m->next;
        if (it->producer < 0 || it->producer >= PRODUCERS) {
            if (!log->bad[0])
                snprintf(log->bad, sizeof log->bad, "bad producer %d", it->producer);
        } else if (it->seq != log->next[it->producer]) {
            if (!log->bad[0])
                snprintf(log->bad, sizeof log->bad, "producer %d: got seq %d, want %d",
                         it->producer, it->seq, log->next[it->producer]);
        } else {
            log->next[it->producer]++;
        }
        log->received++;
        free(it);
    }
}

/* Every message arrived exactly once and in its producer's order: the
 * expected sequence numbers only advance on a match, so a loss, duplicate
 * or reordering leaves a violation or a short count. */
static void check_all_received(const struct consumer_log *log)
{
    ck_assert_msg(!log->timed_out, "consumer gave up after %ld of %ld messages", log->received,
                  TOTAL);
    ck_assert_msg(log->bad[0] == '\0', "%s", log->bad);
    ck_assert_int_eq(log->received, TOTAL);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(log->next[i], PER_PRODUCER);
    ck_assert_ptr_null(gw_mailbox_take_all(&shared));
}

/* The consumer sleeps until woken, as the workers do. A take happens only
 * after a wake-up, and every wake-up comes from the one true post of a batch
 * that has not been taken yet, so no take can come back empty and no
 * wake-up is left over at the end. */
START_TEST(threaded)
{
    pthread_t t[PRODUCERS];
    struct consumer_log log = { 0 };
    long total_wakeups;

    ck_assert_int_eq(sem_init(&wake, 0, 0), 0);
    start_producers(t, producer_sem);
    pthread_barrier_wait(&start_line);
    while (log.received < TOTAL) {
        struct timespec deadline;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30; /* watchdog: a lost wake-up fails, not hangs */
        while (sem_timedwait(&wake, &deadline) != 0)
            ck_assert_msg(errno == EINTR, "lost wake-up after %ld messages", log.received);
        consume(&log, gw_mailbox_take_all(&shared));
    }
    total_wakeups = join_producers(t);
    check_all_received(&log);
    ck_assert_int_eq(log.empty_takes, 0);
    ck_assert_int_eq(log.batches, total_wakeups);
    ck_assert_int_ne(sem_trywait(&wake), 0); /* no wake-up left over */
    sem_destroy(&wake);
    pthread_barrier_destroy(&start_line);
    gw_mailbox_deinit(&shared);
}
END_TEST

static void *consumer_spin(void *arg)
{
    struct consumer_log *log = arg;
    int64_t deadline;

    pthread_barrier_wait(&start_line);
    deadline = gw_now_us() + 60 * INT64_C(1000000); /* watchdog */
    while (log->received < TOTAL) {
        struct gw_mail *m = gw_mailbox_take_all(&shared);

        consume(log, m);
        if (!m) {
            if (gw_now_us() > deadline) {
                log->timed_out = true;
                break;
            }
            sched_yield();
        }
    }
    return NULL;
}

/* The consumer takes in a loop without waiting, so batches are cut at
 * arbitrary points. Invariant: the true returns so far equal the non-empty
 * batches taken so far, plus one while the box holds messages. At the end
 * the box is empty, so the two counts must be equal exactly. */
START_TEST(spinning_consumer)
{
    pthread_t t[PRODUCERS], consumer;
    struct consumer_log log = { 0 };
    long total_wakeups;

    start_producers(t, producer_plain);
    ck_assert_int_eq(pthread_create(&consumer, NULL, consumer_spin, &log), 0);
    total_wakeups = join_producers(t);
    ck_assert_int_eq(pthread_join(consumer, NULL), 0);
    pthread_barrier_destroy(&start_line); /* only once every party is joined */
    check_all_received(&log);
    ck_assert_int_eq(total_wakeups, log.batches);
    gw_mailbox_deinit(&shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");

    tcase_add_test(tc, post_reports_empty);
    tcase_add_test(tc, threaded);
    tcase_add_test(tc, spinning_consumer);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
