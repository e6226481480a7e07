/* libFuzzer harness for the server API's request bodies and the nodes'
 * control messages (common/ctl.[ch]). The input is copied to a heap buffer of
 * exactly its size (an overread is caught) and fed to both parsers. Beyond
 * "no crash", it checks what the node relies on: an accepted disconnect has
 * a user of 1..GW_CTL_USER_MAX bytes without NUL, a known close code and a
 * reason that fits a close frame; an accepted revocation a keep within its
 * bounds; a refusal says why; and a control message
 * that parses is written back to text that parses to the same thing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_disconnect(const struct gw_ctl_disconnect *d)
{
    bool code_ok = d->code == GW_CLOSE_DISCONNECT || d->code == GW_CLOSE_DISCONNECT_STOP ||
                   (d->code >= GW_CLOSE_APP_RECONNECT_MIN && d->code <= GW_CLOSE_APP_MAX);

    if (d->user_len < 1 || d->user_len > GW_CTL_USER_MAX || strlen(d->user) != d->user_len || !code_ok ||
        strlen(d->reason) > GW_CTL_REASON_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_ctl_disconnect d;
    struct gw_ctl_msg m, back;
    enum gw_err err;
    char msg[256], *buf, *text;
    size_t len;

    if (size > 65536)
        return 0;
    buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (gw_ctl_parse_disconnect_body(buf, size, &d, &err, msg, sizeof msg) == 0)
        check_disconnect(&d);
    else if (err == GW_ERR_NONE || !msg[0])
        abort();
    for (int lift = 0; lift < 2; lift++) {
        struct gw_ctl_revoke r;
        if (gw_ctl_parse_revoke_body(buf, size, lift, 600, 3600, &r, &err, msg, sizeof msg) == 0) {
            if (r.user_len < 1 || r.user_len > GW_CTL_USER_MAX || strlen(r.user) != r.user_len || r.keep < 1 ||
                r.keep > 3600)
                abort();
        } else if (err == GW_ERR_NONE || !msg[0]) {
            abort();
        }
    }
    {
        struct gw_ctl_unsubscribe u;
        if (gw_ctl_parse_unsubscribe_body(buf, size, &u, &err, msg, sizeof msg) == 0) {
            if (u.user_len < 1 || strlen(u.user) != u.user_len || !gw_channel_valid(u.channel, u.channel_len) ||
                strlen(u.reason) > GW_CTL_REASON_MAX)
                abort();
        } else if (err == GW_ERR_NONE || !msg[0]) {
            abort();
        }
    }
    {
        struct gw_ctl_history h;
        if (gw_ctl_parse_history_query(buf, size, &h, &err, msg, sizeof msg) == 0) {
            if (!gw_channel_valid(h.channel, h.channel_len) || h.limit < 1 || h.limit > GW_HISTORY_LIMIT_MAX)
                abort();
        } else if (err == GW_ERR_NONE || !msg[0]) {
            abort();
        }
    }
    {
        struct gw_ctl_channels q;
        if (gw_ctl_parse_channels_query(buf, size, &q, &err, msg, sizeof msg) == 0) {
            if (q.limit < 1 || q.limit > GW_CHANNELS_LIMIT_MAX || q.prefix_len > GW_CHANNEL_MAX ||
                strlen(q.prefix) != q.prefix_len || strlen(q.cursor) != q.cursor_len ||
                (q.cursor_len && !gw_channel_valid(q.cursor, q.cursor_len)) ||
                (!q.wildcard && !gw_channel_valid(q.prefix, q.prefix_len)) ||
                (!q.wildcard && !gw_ctl_channels_match(&q, q.prefix, q.prefix_len)))
                abort();
        } else if (err == GW_ERR_NONE || !msg[0]) {
            abort();
        }
    }
    {
        struct gw_ctl_batch b;
        if (gw_ctl_parse_batch(buf, size, &b, &err, msg, sizeof msg) == 0) {
            if (b.n < 1 || b.n > GW_CTL_BATCH_MAX || !gw_ctl_is_batch(buf, size))
                abort();
            for (size_t i = 0; i < b.n; i++)
                if (strlen(b.items[i]) != b.lens[i])
                    abort();
            gw_ctl_batch_deinit(&b);
        } else if (err == GW_ERR_NONE || !msg[0]) {
            abort();
        }
    }
    if (gw_ctl_parse(buf, size, &m) == 0) {
        if ((m.op == GW_CTL_REVOKE || m.op == GW_CTL_UNREVOKE) && (m.at < 0 || m.until <= m.at))
            abort();
        if (m.op == GW_CTL_DISCONNECT)
            check_disconnect(&m.dis);
        text = gw_ctl_format(&m, &len);
        if (gw_ctl_parse(text, len, &back) != 0 || back.op != m.op || strcmp(back.from, m.from) != 0 ||
            (m.op == GW_CTL_DONE && back.closed != m.closed) ||
            (m.op == GW_CTL_UNSUBSCRIBE &&
             (strcmp(back.unsub.user, m.unsub.user) != 0 || strcmp(back.unsub.channel, m.unsub.channel) != 0 ||
              strcmp(back.unsub.reason, m.unsub.reason) != 0)) ||
            ((m.op == GW_CTL_REVOKE || m.op == GW_CTL_UNREVOKE) &&
             (back.at != m.at || back.until != m.until || back.dis.user_len != m.dis.user_len ||
              memcmp(back.dis.user, m.dis.user, m.dis.user_len) != 0)) ||
            (m.op == GW_CTL_DISCONNECT && (back.dis.code != m.dis.code || back.dis.user_len != m.dis.user_len ||
                                           memcmp(back.dis.user, m.dis.user, m.dis.user_len) != 0 ||
                                           strcmp(back.dis.reason, m.dis.reason) != 0)))
            abort();
        free(text);
    }
    free(buf);
    return 0;
}
