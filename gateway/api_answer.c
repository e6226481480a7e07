/* How the server API's endpoints answer and wait (api_int.h): the one
 * error shape, the counter of answers, the table of requests waiting for the
 * bus. Calls nothing of api.c or api_ctl.c. Worker thread. */
#define GW_LOG_MODULE "api"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api_int.h"
#include "frame.h"
#include "json.h"
#include "metrics.h"

void gw_api_count(struct gw_api *api, unsigned int status)
{
    int i = gw_api_code_index(status);
    if (i >= 0)
        gw_stat_add(&api->node->worker_stats[api->worker]->api_requests[i], 1);
}

void gw_api_answer_error(struct gw_api *api, struct gw_api_req *r, unsigned int status, const char *slug,
                         const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    size_t mlen, n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mlen = strlen(msg);
    gw_api_count(api, status);
    free(r->answer);
    r->answer = gw_xmalloc(32 + strlen(slug) + gw_json_escape_len(msg, mlen));
    n = (size_t)sprintf(r->answer, "{\"error\":\"%s\",\"message\":", slug);
    n += gw_json_escape(r->answer + n, msg, mlen);
    memcpy(r->answer + n, "}\n", 3);
    r->answer_len = n + 2;
    r->status = status;
    r->hdr_name = r->hdr_value = NULL;
    r->phase = GW_API_ANSWERED;
}

void gw_api_answer_ok(struct gw_api *api, struct gw_api_req *r, const char *text, size_t len)
{
    gw_api_count(api, 200);
    free(r->answer);
    r->answer = gw_xstrndup(text, len);
    r->answer_len = len;
    r->status = 200;
    r->hdr_name = r->hdr_value = NULL;
    r->phase = GW_API_ANSWERED;
}

void gw_api_answer_frame(struct gw_api *api, struct gw_api_req *r, struct gw_frame *frame, const char *why)
{
    if (!frame) {
        gw_api_answer_error(api, r, 503, "unavailable", "%s", why);
        return;
    }
    gw_api_count(api, 200);
    free(r->answer);
    r->answer = gw_xmalloc(frame->len + 1);
    memcpy(r->answer, gw_frame_payload(frame), frame->len);
    r->answer[frame->len] = '\n';
    r->answer_len = frame->len + 1;
    r->status = 200;
    r->hdr_name = r->hdr_value = NULL;
    r->phase = GW_API_ANSWERED;
}

void gw_api_wait_for(struct gw_api *api, struct gw_api_req *r, uint64_t id)
{
    r->id = id;
    api->next_seq++;
    gw_dict_add(&api->pending, &r->id, sizeof(r->id), r, NULL);
    r->api = api;
    r->phase = GW_API_WAITING;
}
