/* Node-side repair: order, duplicates, gaps read back, holds and their bound,
 * link loss, epoch changes, offsets handed out twice (conflicts, rewinds);
 * driven with a fake bus that records what is passed on and answers reads
 * from a fake stream. */
#include <stdio.h>
#include <string.h>

#include "repair.h"
#include "unit.h"

#define MAXREC 256

static struct {
    char log[MAXREC][48]; /* "m:E:5" passed on, "u:payload" without a position, "g:E:3-4" gap, "r:E:9" retire */
    int n;
    int reads; /* reads asked */
    uint64_t read_since;
    uint32_t read_gen;
    int fail_reads; /* read op refuses */
} rec;

static struct gw_bus_stats stats;
static struct gw_repair r;
static struct gw_repair_chan c;

static void op_deliver(void *ctx, const char *name, size_t len, const struct gw_position *at, const char *payload,
                       size_t plen)
{
    ck_assert_int_lt(rec.n, MAXREC);
    if (at)
        snprintf(rec.log[rec.n++], 48, "m:%s:%llu", at->epoch, (unsigned long long)at->offset);
    else
        snprintf(rec.log[rec.n++], 48, "u:%.*s", (int)plen, payload); /* without a position */
}

static void op_gap(void *ctx, const char *name, size_t len, const char *epoch, uint64_t from, uint64_t to)
{
    ck_assert_int_lt(rec.n, MAXREC);
    snprintf(rec.log[rec.n++], 48, "g:%s:%llu-%llu", epoch, (unsigned long long)from, (unsigned long long)to);
}

static int op_read(void *ctx, const char *name, size_t len, uint64_t since, uint32_t gen)
{
    if (rec.fail_reads)
        return -1;
    rec.reads++;
    rec.read_since = since;
    rec.read_gen = gen;
    return 0;
}

static void op_retire(void *ctx, const char *name, size_t len, const char *epoch, uint64_t below)
{
    ck_assert_int_lt(rec.n, MAXREC);
    snprintf(rec.log[rec.n++], 48, "r:%s:%llu", epoch, (unsigned long long)below);
}

static const struct gw_repair_ops ops = { op_deliver, op_gap, op_read, op_retire };

static void setup(void)
{
    memset(&rec, 0, sizeof rec);
    memset(&stats, 0, sizeof stats);
    gw_repair_init(&r, &ops, NULL, 100, 1000, &stats);
    gw_repair_chan_init(&c);
}

static void teardown(void)
{
    gw_repair_chan_deinit(&c);
}

static struct gw_position pos(const char *epoch, uint64_t offset)
{
    struct gw_position p = { offset, "", strlen(epoch) };
    memcpy(p.epoch, epoch, p.epoch_len + 1);
    return p;
}

/* Every message of the fake stream has this payload unless a test says otherwise. */
#define PAYLOAD "0123456789"

static void live_with(const char *epoch, uint64_t offset, const char *payload)
{
    struct gw_position p = pos(epoch, offset);
    gw_repair_message(&r, &c, "c", 1, &p, payload, strlen(payload));
}

static void live(const char *epoch, uint64_t offset)
{
    live_with(epoch, offset, PAYLOAD);
}

/* Answers the pending read with entries first..last of epoch (current is
 * the stream's last offset). */
static void answer(const char *epoch, uint64_t first, uint64_t last, uint64_t current, bool reachable)
{
    struct gw_history_entry e[64];
    size_t n = 0;
    for (uint64_t o = first; first && o <= last; o++)
        e[n++] = (struct gw_history_entry){ o, PAYLOAD, strlen(PAYLOAD) };
    struct gw_history_page page = { epoch, strlen(epoch), current, reachable, e, n };
    gw_repair_read_done(&r, &c, "c", 1, rec.read_gen, &page);
}

static void expect(const char *const *want, int n)
{
    ck_assert_int_eq(rec.n, n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(rec.log[i], want[i]);
}

START_TEST(in_order_and_duplicates_dropped)
{
    live("E", 7); /* the first message starts continuity: no read back */
    live("E", 8);
    live("E", 8);
    live("E", 6);
    live("E", 9);
    const char *want[] = { "m:E:7", "m:E:8", "m:E:9" };
    expect(want, 3);
    ck_assert_int_eq(rec.reads, 0);
    ck_assert_uint_eq(stats.history_duplicates, 2);
}
END_TEST

START_TEST(gap_is_read_back_before_what_was_held)
{
    live("E", 1);
    live("E", 4); /* 2 and 3 missing */
    live("E", 5);
    ck_assert_int_eq(rec.reads, 1);
    ck_assert_uint_eq(rec.read_since, 1);
    answer("E", 2, 5, 5, true); /* the stream also has 4 and 5: not passed twice */
    const char *want[] = { "m:E:1", "m:E:2", "m:E:3", "m:E:4", "m:E:5" };
    expect(want, 5);
    ck_assert_uint_eq(stats.history_gaps, 1);
    ck_assert_uint_eq(stats.history_messages_repaired, 2);
    live("E", 6);
    ck_assert_str_eq(rec.log[5], "m:E:6");
}
END_TEST

START_TEST(trimmed_range_is_reported_as_a_gap)
{
    live("E", 1);
    live("E", 10);
    answer("E", 6, 10, 10, false); /* 2..5 trimmed away */
    const char *want[] = { "m:E:1", "g:E:2-5", "m:E:6", "m:E:7", "m:E:8", "m:E:9", "m:E:10" };
    expect(want, 7);
    ck_assert_uint_eq(stats.history_messages_lost, 4);
}
END_TEST

START_TEST(failed_read_reports_and_carries_on)
{
    live("E", 1);
    rec.fail_reads = 1;
    live("E", 4);
    const char *want[] = { "m:E:1", "g:E:2-3", "m:E:4" };
    expect(want, 3);
    ck_assert(!c.reading);
}
END_TEST

START_TEST(link_loss_reads_back_what_was_missed)
{
    live("E", 1);
    live("E", 2);
    gw_repair_link_lost(&c);
    live("E", 9); /* arrives after resubscribing, before the link is live: held */
    ck_assert_int_eq(rec.n, 2);
    gw_repair_link_live(&r, &c, "c", 1);
    ck_assert_int_eq(rec.reads, 1);
    ck_assert_uint_eq(rec.read_since, 2);
    answer("E", 3, 9, 9, true);
    ck_assert_int_eq(rec.n, 9);
    ck_assert_str_eq(rec.log[8], "m:E:9");
    ck_assert_uint_eq(stats.history_duplicates, 0); /* the read stopped before the held 9 */
}
END_TEST

START_TEST(stale_answer_after_link_loss_is_ignored)
{
    live("E", 1);
    live("E", 3);
    uint32_t old = rec.read_gen;
    gw_repair_link_lost(&c);
    struct gw_history_entry e = { 2, "x", 1 };
    struct gw_history_page page = { "E", 1, 3, true, &e, 1 };
    gw_repair_read_done(&r, &c, "c", 1, old, &page);
    ck_assert_int_eq(rec.n, 1);
    gw_repair_link_live(&r, &c, "c", 1);
    answer("E", 2, 3, 3, true);
    const char *want[] = { "m:E:1", "m:E:2", "m:E:3" };
    expect(want, 3);
}
END_TEST

START_TEST(hold_bound_gives_up_with_a_gap)
{
    live("E", 1);
    for (uint64_t o = 5; o <= 16; o++) /* 12 x 10 bytes > 100 */
        live("E", o);
    ck_assert(!c.reading);
    ck_assert_str_eq(rec.log[1], "g:E:2-4");
    ck_assert_str_eq(rec.log[2], "m:E:5");
    ck_assert_str_eq(rec.log[rec.n - 1], "m:E:16");
    answer("E", 2, 16, 16, true); /* too late: ignored */
    ck_assert_str_eq(rec.log[rec.n - 1], "m:E:16");
}
END_TEST

START_TEST(new_epoch_is_passed_on_and_read_from_its_start)
{
    live("E", 1);
    live("F", 3); /* history reset: F's 1 and 2 are read back */
    ck_assert_uint_eq(rec.read_since, 0);
    answer("F", 1, 3, 3, true);
    const char *want[] = { "m:E:1", "m:F:1", "m:F:2", "m:F:3" };
    expect(want, 4);
}
END_TEST

START_TEST(epoch_gone_during_repair_releases_held)
{
    live("E", 1);
    live("E", 3);
    answer("", 0, 0, 0, true); /* the metadata expired meanwhile */
    /* The old epoch cannot be read any more: report, then go on. */
    const char *want[] = { "m:E:1", "g:E:2-2", "m:E:3" };
    expect(want, 3);
    ck_assert(!c.reading);
}
END_TEST

START_TEST(paged_read_asks_for_the_next_page)
{
    live("E", 1);
    live("E", 300);
    answer("E", 2, 50, 300, true);
    ck_assert_int_eq(rec.reads, 2);
    ck_assert_uint_eq(rec.read_since, 50);
    answer("E", 51, 60, 300, true);
    ck_assert_uint_eq(rec.read_since, 60);
    ck_assert(c.reading);
}
END_TEST

START_TEST(oversized_gap_reads_back_the_newest_part)
{
    live("E", 1);
    live("E", 1500); /* 1498 missing, max 1000 */
    answer("E", 2, 60, 1500, true);
    ck_assert_str_eq(rec.log[1], "g:E:2-499");
    ck_assert_int_eq(rec.n, 2); /* the page's entries are all older than that */
    ck_assert_uint_eq(rec.read_since, 499);
    answer("E", 500, 560, 1500, true);
    ck_assert_str_eq(rec.log[2], "m:E:500");
    ck_assert_uint_eq(stats.history_messages_lost, 498);
}
END_TEST

START_TEST(other_content_at_a_delivered_offset_is_a_conflict)
{
    for (uint64_t o = 1; o <= 5; o++)
        live("E", o);
    live_with("E", 3, "other"); /* offset 3 handed out again */
    const char *want[] = { "m:E:1", "m:E:2", "m:E:3", "m:E:4", "m:E:5", "r:E:0", "g:E:3-3", "u:other" };
    expect(want, 8);
    ck_assert_uint_eq(stats.history_conflicts, 1);
    ck_assert_uint_eq(stats.history_duplicates, 0);
    /* From 3 on, the node's copies are not Redis's any more: even the old
     * content there is another publish now. The epoch is retired once. */
    live("E", 4);
    ck_assert_str_eq(rec.log[8], "g:E:4-4");
    ck_assert_str_eq(rec.log[9], "u:" PAYLOAD);
    ck_assert_uint_eq(stats.history_conflicts, 2);
    live("E", 2); /* below the reuse: a true duplicate */
    ck_assert_uint_eq(stats.history_duplicates, 1);
    live("E", 6);
    ck_assert_str_eq(rec.log[rec.n - 1], "m:E:6");
    ck_assert(c.conflict_logged);
}
END_TEST

START_TEST(rewind_seen_by_a_read_makes_reused_offsets_conflicts)
{
    for (uint64_t o = 1; o <= 5; o++)
        live("E", o);
    gw_repair_link_lost(&c);
    gw_repair_link_live(&r, &c, "c", 1);
    ck_assert_uint_eq(rec.read_since, 5);
    answer("E", 0, 0, 2, true); /* Redis came back at offset 2 of the same epoch */
    ck_assert_uint_eq(stats.history_rewinds, 1);
    ck_assert_int_eq(rec.n, 6);
    ck_assert_str_eq(rec.log[5], "r:E:5"); /* retire E while Redis is below 5 */
    ck_assert(!c.reading);
    live("E", 3); /* same bytes, but a new publish: Redis gave 3 out again */
    /* The guarded retire may have been refused (publishes since took Redis
     * back up to 5): the conflict asks again, without the guard. */
    const char *want[] = { "r:E:0", "g:E:3-3", "u:" PAYLOAD };
    ck_assert_str_eq(rec.log[6], want[0]);
    ck_assert_str_eq(rec.log[7], want[1]);
    ck_assert_str_eq(rec.log[8], want[2]);
    live("E", 4);
    ck_assert_str_eq(rec.log[9], "g:E:4-4"); /* asked once */
    ck_assert_uint_eq(stats.history_conflicts, 2);
    ck_assert_uint_eq(stats.history_duplicates, 0);
}
END_TEST

START_TEST(offsets_older_than_the_recent_ones_count_as_duplicates)
{
    for (uint64_t o = 1; o <= GW_REPAIR_RECENT + 4; o++)
        live("E", o);
    live_with("E", 2, "other"); /* cannot be compared any more */
    ck_assert_uint_eq(stats.history_duplicates, 1);
    ck_assert_uint_eq(stats.history_conflicts, 0);
    live_with("E", 6, "other"); /* still kept */
    ck_assert_uint_eq(stats.history_conflicts, 1);
}
END_TEST

START_TEST(a_new_epoch_forgets_the_old_hashes)
{
    live("E", 1);
    live("E", 2);
    live("E", 3);
    gw_repair_link_lost(&c);
    gw_repair_link_live(&r, &c, "c", 1);
    answer("E", 0, 0, 1, true); /* a rewind in E */
    live_with("F", 1, "f1"); /* the epoch rule's answer: a new epoch */
    live_with("F", 1, "f1");
    live_with("F", 2, "f2");
    const char *want[] = { "m:E:1", "m:E:2", "m:E:3", "r:E:3", "m:F:1", "m:F:2" };
    expect(want, 6);
    ck_assert_uint_eq(stats.history_duplicates, 1);
    ck_assert_uint_eq(stats.history_conflicts, 0);
    live_with("F", 2, "other"); /* F can be retired in its turn */
    ck_assert_str_eq(rec.log[6], "r:F:0");
}
END_TEST

START_TEST(retire_is_asked_again_on_a_new_link)
{
    live("E", 1);
    live("E", 2);
    live_with("E", 2, "other");
    live_with("E", 1, "other");
    ck_assert_uint_eq(stats.history_conflicts, 2);
    int retires = 0;
    for (int i = 0; i < rec.n; i++)
        retires += rec.log[i][0] == 'r';
    ck_assert_int_eq(retires, 1);
    gw_repair_link_lost(&c); /* the retire may have been lost with the link */
    gw_repair_link_live(&r, &c, "c", 1);
    answer("E", 0, 0, 1, true); /* still back at 1 */
    ck_assert_str_eq(rec.log[rec.n - 1], "r:E:2");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("repair");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, in_order_and_duplicates_dropped);
    tcase_add_test(tc, gap_is_read_back_before_what_was_held);
    tcase_add_test(tc, trimmed_range_is_reported_as_a_gap);
    tcase_add_test(tc, failed_read_reports_and_carries_on);
    tcase_add_test(tc, link_loss_reads_back_what_was_missed);
    tcase_add_test(tc, stale_answer_after_link_loss_is_ignored);
    tcase_add_test(tc, hold_bound_gives_up_with_a_gap);
    tcase_add_test(tc, new_epoch_is_passed_on_and_read_from_its_start);
    tcase_add_test(tc, epoch_gone_during_repair_releases_held);
    tcase_add_test(tc, paged_read_asks_for_the_next_page);
    tcase_add_test(tc, oversized_gap_reads_back_the_newest_part);
    tcase_add_test(tc, other_content_at_a_delivered_offset_is_a_conflict);
    tcase_add_test(tc, rewind_seen_by_a_read_makes_reused_offsets_conflicts);
    tcase_add_test(tc, offsets_older_than_the_recent_ones_count_as_duplicates);
    tcase_add_test(tc, a_new_epoch_forgets_the_old_hashes);
    tcase_add_test(tc, retire_is_asked_again_on_a_new_link);
    suite_add_tcase(s, tc);
    return gw_run_suite(s);
}
