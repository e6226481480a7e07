/* Shared by the codec suites (test_codec.c: requests, test_codec_out.c: frames
 * and presence): one request parsed at a time into req, freed by the fixture. */
#ifndef GW_TEST_CODEC_CHECK_H
#define GW_TEST_CODEC_CHECK_H

#include <errno.h>

#include "codec.h"
#include "unit.h"

static struct gw_request req;

static int parse(const char *s)
{
    return gw_codec_parse(s, strlen(s), &req);
}

/* Parses s, expects failure with err and the given id state. */
static void expect_error(const char *s, enum gw_err err, bool has_id, int64_t id)
{
    int rc = parse(s);

    ck_assert_msg(rc == -EINVAL, "%s: rc %d", s, rc);
    ck_assert_msg(req.err == err, "%s: err %s, want %s", s, gw_err_slug(req.err),
                  gw_err_slug(err));
    ck_assert_msg(req.has_id == has_id, "%s: has_id %d", s, req.has_id);
    if (has_id)
        ck_assert_msg(req.id == id, "%s: id %lld", s, (long long)req.id);
    ck_assert_msg(req.errmsg[0] != '\0', "%s: empty errmsg", s);
    gw_request_deinit(&req);
}

static void teardown(void)
{
    gw_request_deinit(&req);
    ck_assert_int_eq(gw_frame_live_count(), 0);
}

#endif
