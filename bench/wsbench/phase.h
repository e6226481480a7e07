/* phase: what every scenario is built from. Owns nothing beyond struct bench's tables;
 * all of it runs on wsbench's one thread. */
#ifndef WSBENCH_PHASE_H
#define WSBENCH_PHASE_H

#include "bench.h"
#include "report.h"

const char *phase_target_name(enum bench_target t);

/* Allocates nconns clients and nchans channels (client i on channel i % nchans); dies
 * when out of memory. phase_teardown closes every client and frees both tables. */
void phase_setup(struct bench *b, int nconns, int nchans);
void phase_teardown(struct bench *b);

/* True once every client up to b->nconns was started and none is still connecting. */
int phase_all_started(struct bench *b);
/* Connects every client not yet started; stragglers past --connect-timeout are closed
 * and marked failed. */
void phase_connect_all(struct bench *b);
/* Runs the loop for s seconds (nothing when s <= 0). */
void phase_settle(struct bench *b, double s);
/* phase_connect_all plus settle, recording server RSS growth per live client in
 * b->rss_per_conn. */
void phase_connect_measured(struct bench *b);

/* Deliveries owed to the measured clients since phase_begin. */
uint64_t phase_expected_total(const struct bench *b);
/* One measured phase: name must outlive the row it ends up in. */
void phase_begin(struct bench *b, const char *name, double rate);
void phase_publish(struct bench *b, double rate, double dur);
void phase_drain(struct bench *b);
void phase_end(struct bench *b, const char *scenario, struct row *r);
/* begin + publish + drain + end. */
void phase_run(struct bench *b, const char *scenario, const char *phase, double rate, double dur, struct row *r);
/* Prints the row and appends it to --json. */
void phase_emit(struct bench *b, const struct row *r);

/* Publish rate of the i-th --rate/--deliveries value (the last repeats): deliveries
 * are turned into messages/s with conns/channels recipients per message. */
double phase_rate_at(const struct bench *b, int i);
/* Scenario defaults: set *v to d when the option was not given (<= 0). */
void phase_dflt_i(int *v, int d);
void phase_dflt_d(double *v, double d);
void phase_default_deliveries(struct bench *b, double d0, double d1);

#endif
