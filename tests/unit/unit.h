/* Shared helpers for the Check suites in tests/unit. */
#ifndef GW_TEST_UNIT_H
#define GW_TEST_UNIT_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Asserts that frame f holds exactly the bytes of the C string want, is
 * sized exactly (len == cap) and is sealed as one WebSocket text frame. */
#define ck_assert_frame_eq(f, want)                                                     \
    do {                                                                                \
        const char *want_ = (want);                                                     \
        size_t wlen_ = strlen(want_);                                                   \
        ck_assert_msg((f)->len == wlen_ && memcmp(gw_frame_payload(f), want_, wlen_) == 0, \
                      "frame is \"%.*s\" (len %zu), want \"%s\" (len %zu)", (int)(f)->len, \
                      (const char *)gw_frame_payload(f), (f)->len, want_, wlen_);        \
        ck_assert_uint_eq((f)->len, (f)->cap);                                          \
        ck_assert_uint_ge((f)->hdr_len, 2);                                             \
        ck_assert_uint_eq(gw_frame_wire(f)[0], 0x81);                                   \
    } while (0)

/* Runs one suite in this process and returns the exit status for main(). */
static inline int gw_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
