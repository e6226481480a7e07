/* Private to gateway/api.c and gateway/api_ctl.c: how an endpoint answers
 * and waits. Worker thread. */
#ifndef GW_API_INT_H
#define GW_API_INT_H

#include "api.h"

/* Counts an answer of status in wsgate_api_requests_total{code}. */
void gw_api_count(struct gw_api *api, unsigned int status);
/* Answers {"error":slug,"message":...} (the message JSON-escaped here):
 * r ANSWERED, counted. */
void gw_api_answer_error(struct gw_api *api, struct gw_api_req *r, unsigned int status, const char *slug,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answers 200 with text (len bytes, copied; a newline at its end): r
 * ANSWERED, counted. */
void gw_api_answer_ok(struct gw_api *api, struct gw_api_req *r, const char *text, size_t len);
/* Answers 200 with frame's JSON (a client frame's payload, as a client gets
 * it) and a newline, or, frame NULL, 503 unavailable saying why (static
 * text): r ANSWERED, counted. frame is borrowed (the caller frees it). */
void gw_api_answer_frame(struct gw_api *api, struct gw_api_req *r, struct gw_frame *frame, const char *why);
/* Puts r in api->pending under id (r WAITING) and uses up that id. */
void gw_api_wait_for(struct gw_api *api, struct gw_api_req *r, uint64_t id);

/* api_batch.c: a publish body of the batch form is complete (r ANSWERED or
 * WAITING under one id per entry). */
void gw_api_end_batch(struct gw_api *api, struct gw_api_req *r);
/* api_batch.c: the result of entry id of r's batch (taken out of the table
 * by the caller); answers r once every entry has one. */
void gw_api_batch_result(struct gw_api *api, struct gw_api_req *r, uint64_t id, bool ok, bool busy,
                         const struct gw_position *at);
/* api_batch.c: frees r's batch and takes its waiting ids out of the table. */
void gw_api_batch_release(struct gw_api_req *r);

/* api_ctl.c: GET /api/history or /api/channels (r->op) once method and key
 * passed (r ANSWERED or WAITING). */
void gw_api_begin_read(struct gw_api *api, struct lws *wsi, struct gw_api_req *r);
/* api_ctl.c: a control endpoint's body is complete (r ANSWERED or WAITING). */
void gw_api_end_control(struct gw_api *api, struct gw_api_req *r);

#endif
