/* libFuzzer harness for the history envelope parser (common/envelope.[ch]).
 * The input is copied into an exactly sized heap buffer so ASan catches any
 * read past its end. Invariants checked on every input: the result is one of
 * the documented codes; a payload not starting with 0xFF/0xFE is never
 * reserved, one that does is never plain; and a parsed envelope, written back
 * from offset, epoch and payload, gives exactly the input. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = gw_xmalloc(size ? size : 1);
    struct gw_envelope env;
    bool reserved = size > 0 && (data[0] == 0xff || data[0] == 0xfe);
    int rc;

    memcpy(buf, data, size);
    rc = gw_envelope_parse(size ? buf : NULL, size, &env);
    if (rc != 1 && rc != 0 && rc != -EBADMSG && rc != -EPROTONOSUPPORT)
        abort();
    if ((rc == 0) == reserved)
        abort();
    if (rc == 1) {
        char head[GW_ENVELOPE_HEADER_MAX];
        int n = gw_envelope_header(head, env.offset, env.epoch, env.epoch_len);

        if (n < 0 || strlen(env.epoch) != env.epoch_len)
            abort();
        if ((const unsigned char *)env.payload != buf + n || (size_t)n + env.payload_len != size)
            abort();
        if (memcmp(head, buf, (size_t)n) != 0)
            abort();
    }
    free(buf);
    return 0;
}
