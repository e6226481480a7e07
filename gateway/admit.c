/* Upgrade admission: the Origin check, the path, the drain and the slots. */
#define GW_LOG_MODULE "admit"

#include "admit.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "origin.h"
#include "ws6455.h"

#define FORBIDDEN_BODY "origin not allowed\n"

/* Copies header tok into buf (GW_ORIGIN_MAX + 2 bytes) and returns it, NULL
 * when absent or empty. A value that cannot be copied whole (too long, or
 * repeated headers that lws joins past the buffer) comes back as
 * GW_ORIGIN_MAX + 1 bytes, which the origin parser refuses: fail closed. */
static const char *header(struct lws *wsi, enum lws_token_indexes tok, char *buf, size_t *len)
{
    int n = lws_hdr_total_length(wsi, tok);

    if (n <= 0)
        return NULL;
    n = n <= GW_ORIGIN_MAX ? lws_hdr_copy(wsi, buf, GW_ORIGIN_MAX + 2, tok) : -1;
    if (n < 0 || n > GW_ORIGIN_MAX) {
        memset(buf, 'x', GW_ORIGIN_MAX + 1);
        n = GW_ORIGIN_MAX + 1;
    }
    *len = (size_t)n;
    return buf;
}

/* A whole response in one write: lws 4.1.6 has not parsed the request's HTTP
 * version on the upgrade path, and its own status helpers would answer
 * HTTP/1.0. Returns what HTTP_CONFIRM_UPGRADE must return. */
static int answer(struct lws *wsi, const char *status, const char *headers, const char *body)
{
    unsigned char buf[LWS_PRE + 320];
    char *text = (char *)buf + LWS_PRE;
    int n = snprintf(text, 320,
                     "HTTP/1.1 %s\r\nserver: wsgate\r\n%scontent-type: text/plain; charset=utf-8\r\n"
                     "content-length: %zu\r\ncache-control: no-store\r\nconnection: close\r\n\r\n%s",
                     status, headers, strlen(body), body);

    if (n < 0 || n >= 320)
        return -1;
    return lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP) == n ? 1 : -1;
}

/* lws 4.1.6 upgrades any Sec-WebSocket-Version and drops a request without a
 * key unanswered; RFC 6455 4.2.2 wants 426 and 400. */
static int handshake_status(struct lws *wsi)
{
    char kbuf[32], vbuf[16];
    int klen = lws_hdr_total_length(wsi, WSI_TOKEN_KEY);
    int vlen = lws_hdr_total_length(wsi, WSI_TOKEN_VERSION);

    if (klen > 0 && klen < (int)sizeof kbuf)
        klen = lws_hdr_copy(wsi, kbuf, sizeof kbuf, WSI_TOKEN_KEY);
    else if (klen > 0)
        klen = 0; /* too long to be a key: malformed */
    if (vlen > 0 && vlen < (int)sizeof vbuf)
        vlen = lws_hdr_copy(wsi, vbuf, sizeof vbuf, WSI_TOKEN_VERSION);
    else if (vlen > 0)
        vlen = 3; /* too long to be "13" */
    return gw_ws_upgrade_status(klen > 0 ? kbuf : NULL, klen > 0 ? (size_t)klen : 0,
                                vlen > 0 ? vbuf : NULL, vlen > 0 ? (size_t)vlen : 0);
}

static bool origin_allowed(const struct gw_node *node, struct lws *wsi)
{
    char obuf[GW_ORIGIN_MAX + 2], hbuf[GW_ORIGIN_MAX + 2];
    size_t olen = 0, hlen = 0;
    const char *origin = header(wsi, WSI_TOKEN_ORIGIN, obuf, &olen);
    const char *host = header(wsi, WSI_TOKEN_HOST, hbuf, &hlen);

    if (gw_origin_allowed(&node->cfg->origins, origin, olen, host, hlen))
        return true;
    LOG_DBG("upgrade refused reason=origin origin_bytes=%zu", olen);
    return false;
}

int gw_admit_confirm(const struct gw_node *node, struct lws *wsi, const char *upgrade, gw_stat *refused)
{
    int status;

    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return 0;
    /* A request that is no WebSocket handshake is answered as such, whatever its Origin. */
    status = handshake_status(wsi);
    if (status) {
        gw_stat_add(&refused[GW_REFUSE_HANDSHAKE], 1);
        LOG_DBG("upgrade refused reason=handshake status=%d", status);
        if (status == 426)
            return answer(wsi, "426 Upgrade Required", "sec-websocket-version: 13\r\n",
                          "only WebSocket version 13 is supported\n");
        return answer(wsi, "400 Bad Request", "", "bad WebSocket handshake\n");
    }
    if (origin_allowed(node, wsi))
        return 0;
    gw_stat_add(&refused[GW_REFUSE_ORIGIN], 1);
    return answer(wsi, "403 Forbidden", "", FORBIDDEN_BODY);
}

/* Takes one of the peer's slots; false when it has none left or cannot be
 * named (a peer that is already gone). */
static bool take_peer(struct gw_node *node, struct lws *wsi, struct gw_admit_slot *slot, int max)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int fd = lws_get_socket_fd(wsi);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
        gw_ipcount_key_from_sockaddr(&slot->key, (struct sockaddr *)&ss, sslen) != 0)
        return false;
    if (!gw_ipcount_take(&node->peers, &slot->key, max)) {
        if (gw_log_enabled(GW_LOG_DEBUG)) {
            char ip[64];
            gw_ipcount_key_format(&slot->key, ip, sizeof ip);
            LOG_DBG("upgrade refused reason=per_ip peer=%s limit=%d", ip, max);
        }
        return false;
    }
    slot->peer = true;
    return true;
}

int gw_admit_upgrade(struct gw_node *node, struct lws *wsi, bool draining, struct gw_admit_slot *slot,
                     gw_stat *refused)
{
    int max = node->cfg->max_connections, per_ip = node->cfg->max_connections_per_ip;
    enum gw_refuse_reason why;
    char uri[16];

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0) {
        why = GW_REFUSE_PATH;
        goto refuse;
    }
    /* Again here: lws takes WebSocket-over-HTTP/2 streams straight to FILTER,
     * past HTTP_CONFIRM_UPGRADE; an HTTP/1.1 upgrade refused there never
     * arrives, so nothing is counted twice. */
    if (!origin_allowed(node, wsi)) {
        why = GW_REFUSE_ORIGIN;
        goto refuse;
    }
    if (draining) {
        why = GW_REFUSE_DRAINING;
        goto refuse;
    }
    /* Per peer first, so one address flooding a full node is named as such. */
    if (per_ip > 0 && !take_peer(node, wsi, slot, per_ip)) {
        why = GW_REFUSE_PER_IP;
        goto refuse;
    }
    /* Take first, then check: a check followed by a later increment lets
     * every worker see room for the same last slot. */
    if (atomic_fetch_add(&node->connections, 1) >= max && max > 0) {
        atomic_fetch_sub(&node->connections, 1);
        gw_admit_release(node, slot);
        why = GW_REFUSE_LIMIT;
        goto refuse;
    }
    slot->node = true;
    return 0;

refuse:
    gw_stat_add(&refused[why], 1);
    return -1;
}

void gw_admit_release(struct gw_node *node, struct gw_admit_slot *slot)
{
    if (slot->peer) {
        slot->peer = false;
        gw_ipcount_give(&node->peers, &slot->key);
    }
    if (slot->node) {
        slot->node = false;
        atomic_fetch_sub(&node->connections, 1);
    }
}
