/* A session's rights: the token (in an auth request or the upgrade URL),
 * its refresh and what a new token no longer grants, and the check in front
 * of every request. The other half of session.c; worker thread. */
#define GW_LOG_MODULE "session"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "session_int.h"

#define SUB_LOG_MAX 65
#define URL_TOKEN "token="

static void refuse_token(struct gw_session *s, bool has_id, int64_t id, const struct gw_jwt_error *e)
{
    char msg[224];
    const char *label = gw_jwt_reason_label(e->reason);

    gw_stat_add(&s->host->stats->auth_failures[e->reason], 1);
    LOG_INFO("auth refused id=%llu reason=%s detail=\"%s\"", (unsigned long long)s->id, label, e->msg);
    snprintf(msg, sizeof msg, "token refused (%s): %s", label, e->msg);
    gw_session_send_error(s, GW_ERR_UNAUTHORIZED, has_id, id, msg);
    gw_session_close(s, 4003, "unauthorized", true);
}

static bool same_sub(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* After new rights (a first token replacing the anonymous patterns, or a
 * refresh), ends every subscription they no longer grant, each with
 * a forbidden error naming the channel: a token that lost a channel must not
 * keep receiving it. Walks backwards because unsubscribing moves the last
 * record into the freed place. */
static void drop_ungranted(struct gw_session *s)
{
    const struct gw_session_host *h = s->host;
    struct gw_hub_member *m = &s->member;
    char name[GW_CHANNEL_MAX + 1], msg[200];

    for (int i = gw_hub_member_count(m) - 1; i >= 0; i--) {
        size_t len;
        const char *ch = gw_hub_member_channel(m, i, &len);

        memcpy(name, ch, len); /* the hub may free ch below */
        name[len] = '\0';
        if (gw_access_allows(h->access, s->claims, GW_ACCESS_SUBSCRIBE, name))
            continue;
        gw_hub_unsubscribe(h->hub, m, name, len);
        snprintf(msg, sizeof msg, "unsubscribed from %s: the new token does not grant it", name);
        gw_session_send_error(s, GW_ERR_FORBIDDEN, false, 0, msg);
    }
    gw_stat_set(&h->stats->subscriptions, h->hub->nsubs);
}

/* Verifies token and, when valid, makes its claims the session's rights.
 * A refresh (a second valid token) must name the same subject: changing who
 * a connection is would let every earlier grant leak across users. */
void gw_session_authenticate(struct gw_session *s, const char *token, size_t len, bool has_id, int64_t id)
{
    const struct gw_session_host *h = s->host;
    struct gw_jwt_claims *claims;
    struct gw_jwt_error e;
    char sub[SUB_LOG_MAX];
    bool refresh = s->claims != NULL;

    if (gw_access_verify(h->access, token, len, &claims, &e) < 0) {
        refuse_token(s, has_id, id, &e);
        return;
    }
    /* POST /api/revoke: the node's copy, no Redis round trip. */
    if (gw_bus_revoked(h->node->bus, claims->sub, claims->has_iat, claims->iat)) {
        e.reason = GW_JWT_REVOKED;
        snprintf(e.msg, sizeof e.msg, "%s", claims->has_iat ? "the user's tokens issued until now are revoked"
                                                            : "the user is revoked and the token has no iat");
        gw_jwt_claims_free(claims);
        refuse_token(s, has_id, id, &e);
        return;
    }
    if (refresh && !same_sub(s->claims->sub, claims->sub)) {
        LOG_INFO("auth refused id=%llu reason=subject_changed", (unsigned long long)s->id);
        gw_jwt_claims_free(claims);
        gw_session_send_error(s, GW_ERR_UNAUTHORIZED, has_id, id,
                   "a refreshed token must carry the same sub as the first; reconnect to change user");
        gw_session_close(s, 4003, "unauthorized", true);
        return;
    }
    gw_jwt_claims_free(s->claims);
    s->claims = claims;
    s->auth_deadline_us = 0;
    s->expires_us = gw_access_expires_us(h->access, claims->exp, gw_now_us());
    LOG_INFO("auth id=%llu sub=\"%s\" exp=%lld refresh=%d channels=%zu publish=%zu", (unsigned long long)s->id,
             gw_access_log_sub(claims->sub, sub, sizeof sub), (long long)claims->exp, refresh,
             claims->n_channels, claims->n_publish);
    drop_ungranted(s); /* what the old token, or the anonymous patterns, granted */
    if (has_id)
        gw_session_send_own(s, gw_codec_ack_auth(id, claims->sub, claims->exp));
}

/* The first "token=" argument of the upgrade URL, if any. Its text reaches
 * no log: URLs are logged by proxies, which is the risk PROTOCOL.md names.
 * The header table bounds an argument's size; the verifier applies
 * --max-token-bytes. */
void gw_session_auth_from_url(struct gw_session *s)
{
    const size_t plen = sizeof URL_TOKEN - 1;
    int n;

    for (int frag = 0; (n = lws_hdr_fragment_length(s->wsi, WSI_TOKEN_HTTP_URI_ARGS, frag)) > 0; frag++) {
        char *arg = gw_xmalloc((size_t)n + 1);
        bool found = lws_hdr_copy_fragment(s->wsi, arg, n + 1, WSI_TOKEN_HTTP_URI_ARGS, frag) >= 0 &&
                     strncmp(arg, URL_TOKEN, plen) == 0;

        if (found)
            gw_session_authenticate(s, arg + plen, strlen(arg + plen), false, 0);
        free(arg);
        if (found)
            return;
    }
}

/* Checks req against the session's rights; on refusal replies and returns
 * false. Without any rights (no token yet, nothing anonymous) only auth and
 * ping pass, and the answer is "unauthorized" rather than "forbidden": the
 * client has not said who it is yet. */
bool gw_session_permitted(struct gw_session *s, const struct gw_request *req)
{
    const struct gw_access *a = s->host->access;
    enum gw_access_op op = req->type == GW_REQ_PUBLISH ? GW_ACCESS_PUBLISH
                           : req->type == GW_REQ_PRESENCE || req->type == GW_REQ_PRESENCE_STATS ? GW_ACCESS_PRESENCE
                                                                                                : GW_ACCESS_SUBSCRIBE;

    if (req->type == GW_REQ_PING || req->type == GW_REQ_AUTH)
        return true;
    if (!s->claims && !gw_access_anonymous_rights(a)) {
        gw_session_send_error(s, GW_ERR_UNAUTHORIZED, req->has_id, req->id,
                   "authenticate first: send {\"type\":\"auth\",\"token\":\"<JWT>\"}");
        return false;
    }
    if (req->type == GW_REQ_UNSUBSCRIBE || gw_access_allows(a, s->claims, op, req->channel))
        return true;
    gw_session_send_error(s, GW_ERR_FORBIDDEN, req->has_id, req->id,
               op == GW_ACCESS_PUBLISH    ? "this client may not publish to this channel"
               : op == GW_ACCESS_PRESENCE ? "this client may not read this channel's presence"
                                          : "this client may not subscribe to this channel");
    return false;
}

static bool is_user(const struct gw_session *s, const char *user, size_t len)
{
    const char *sub = s->claims ? s->claims->sub : NULL;
    return s->state == GW_SESSION_OPEN && sub && strlen(sub) == len && memcmp(sub, user, len) == 0;
}

bool gw_session_unsubscribe_user(struct gw_session *s, const char *user, size_t len, const char *channel,
                                 size_t clen, const char *reason)
{
    const struct gw_session_host *h = s->host;
    bool member = false;

    if (!is_user(s, user, len))
        return false;
    for (int i = gw_hub_member_count(&s->member) - 1; i >= 0 && !member; i--) {
        size_t n;
        const char *ch = gw_hub_member_channel(&s->member, i, &n);
        member = n == clen && memcmp(ch, channel, clen) == 0;
    }
    if (!member)
        return false;
    gw_hub_unsubscribe(h->hub, &s->member, channel, clen);
    gw_stat_set(&h->stats->subscriptions, h->hub->nsubs);
    LOG_INFO("unsubscribe id=%llu channel=%.*s reason=server_api", (unsigned long long)s->id, (int)clen, channel);
    gw_session_send_own(s, gw_codec_unsubscribed(channel, clen, reason));
    return true;
}

bool gw_session_disconnect_user(struct gw_session *s, const char *user, size_t len, int code, const char *reason)
{
    const char *sub = s->claims ? s->claims->sub : NULL;
    char logsub[SUB_LOG_MAX];

    if (!is_user(s, user, len))
        return false;
    gw_stat_add(&s->host->stats->shed[GW_SHED_API_DISCONNECT], 1);
    LOG_INFO("disconnect id=%llu sub=\"%s\" code=%d reason=server_api", (unsigned long long)s->id,
             gw_access_log_sub(sub, logsub, sizeof logsub), code);
    free(s->close_text);
    s->close_text = gw_xstrdup(reason);
    /* Nothing queued is worth sending to a user being put out: close now. */
    gw_session_close(s, code, s->close_text, false);
    return true;
}
