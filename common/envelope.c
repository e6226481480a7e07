/* Parser and header writer for the history envelope; the format and its
 * reasons are in envelope.h. */
#include "envelope.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char magic[] = "\xffwsgate";
#define MAGIC_LEN (sizeof magic - 1)

static bool epoch_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

bool gw_envelope_epoch_valid(const char *s, size_t len)
{
    if (len == 0 || len > GW_ENVELOPE_EPOCH_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!epoch_byte((unsigned char)s[i]))
            return false;
    return true;
}

int gw_envelope_parse(const void *buf, size_t len, struct gw_envelope *env)
{
    const unsigned char *p = buf, *end, *epoch;
    uint64_t offset = 0;

    /* Checked before end is computed: NULL + 0 is undefined behaviour. */
    if (len == 0 || (p[0] != 0xff && p[0] != 0xfe))
        return 0;
    end = p + len;
    if (len < MAGIC_LEN || memcmp(p, magic, MAGIC_LEN) != 0)
        return -EBADMSG;
    p += MAGIC_LEN;
    /* A version is the digits up to the first space; only "1" is known. A
     * newer gateway's envelope is told apart from garbage so it can be
     * logged as such. */
    if (p < end && *p >= '0' && *p <= '9') {
        const unsigned char *v = p;

        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p - v != 1 || *v != '1')
            return (p < end && *p == ' ') ? -EPROTONOSUPPORT : -EBADMSG;
    } else {
        return -EBADMSG;
    }
    if (p == end || *p++ != ' ')
        return -EBADMSG;
    /* Offset: canonical decimal, so that one offset has one spelling and
     * re-serialising gives back the input. */
    if (p == end || *p < '1' || *p > '9')
        return -EBADMSG;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p++ - '0');

        if (offset > (UINT64_MAX - d) / 10)
            return -EBADMSG;
        offset = offset * 10 + d;
    }
    if (p == end || *p++ != ' ')
        return -EBADMSG;
    epoch = p;
    while (p < end && *p != '\n' && (size_t)(p - epoch) <= GW_ENVELOPE_EPOCH_MAX)
        p++;
    if (p == end || *p != '\n' || !gw_envelope_epoch_valid((const char *)epoch, (size_t)(p - epoch)))
        return -EBADMSG;
    env->offset = offset;
    env->epoch_len = (size_t)(p - epoch);
    memcpy(env->epoch, epoch, env->epoch_len);
    env->epoch[env->epoch_len] = '\0';
    p++;
    env->payload = (const char *)p;
    env->payload_len = (size_t)(end - p);
    return 1;
}

int gw_envelope_header(char *out, uint64_t offset, const char *epoch, size_t epoch_len)
{
    char digits[20];
    size_t nd = 0;
    char *o = out;

    if (offset == 0 || !gw_envelope_epoch_valid(epoch, epoch_len))
        return -EINVAL;
    while (offset) {
        digits[nd++] = (char)('0' + offset % 10);
        offset /= 10;
    }
    memcpy(o, magic, MAGIC_LEN);
    o += MAGIC_LEN;
    *o++ = '1';
    *o++ = ' ';
    while (nd)
        *o++ = digits[--nd];
    *o++ = ' ';
    memcpy(o, epoch, epoch_len);
    o += epoch_len;
    *o++ = '\n';
    return (int)(o - out);
}
