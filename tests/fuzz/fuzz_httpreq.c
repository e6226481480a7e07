/* libFuzzer harness for the request-head judge (common/httpreq.[ch]). The
 * input is the bytes a client sent. Beyond "no crash, no overread" (the input
 * is copied to a heap buffer of exactly its size), it checks what the node
 * relies on for every input: an accepted head lies inside the input and ends
 * in a blank line, its path is canonical and inside the head, a head with a
 * Content-Length is never also chunked; a refusal has a status and a reason;
 * "need more" only happens below the head limit; and a prefix of an accepted
 * head is never refused for what it already holds unless the whole is too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_httpreq r;
    char *buf;
    int rc;

    if (size > 2 * GW_HTTPREQ_HEAD_MAX)
        return 0;
    buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    rc = gw_httpreq_parse(buf, size, &r);
    if (rc == 1) {
        if (r.head_len < 4 || r.head_len > size || r.head_len > GW_HTTPREQ_HEAD_MAX ||
            memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) != 0)
            abort();
        if (r.path < buf || r.path + r.path_len > buf + r.head_len ||
            !gw_httpreq_path_canonical(r.path, r.path_len))
            abort();
        if (r.has_length && r.chunked)
            abort();
        if (r.status != 0 || r.reason)
            abort();
        /* Judging the head alone gives the same answer. */
        struct gw_httpreq again;
        if (gw_httpreq_parse(buf, r.head_len, &again) != 1 || again.head_len != r.head_len ||
            again.length != r.length || again.method != r.method)
            abort();
        /* Every shorter prefix is "need more", never a refusal. */
        if (gw_httpreq_parse(buf, r.head_len - 1, &again) != 0)
            abort();
    } else if (rc == 0) {
        if (size >= GW_HTTPREQ_HEAD_MAX)
            abort();
    } else {
        if (rc >= 0 || !r.reason || (r.status != 400 && r.status != 414 && r.status != 431 && r.status != 505))
            abort();
    }
    free(buf);
    return 0;
}
