/* Startup loading of the token keys and the per-request rights check. The
 * error texts name the flag and the file, because a node that refuses to
 * start must say what to fix. */
#define GW_LOG_MODULE "access"

#include "access.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "channel.h"
#include "pattern.h"
#include "text.h"

static int key_error(char *err, size_t errlen, const char *flag, const char *path, int rc)
{
    const char *why;

    switch (rc) {
    case -EINVAL:
        why = strcmp(flag, "--jwt-hmac-secret-file") == 0
                  ? "the secret must be at least 32 bytes (one trailing newline is not counted)"
                  : "not a PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo) file, or its kid (base name) "
                    "is empty or longer than 128 bytes";
        break;
    case -ENOTSUP:
        why = "unsupported key: use RSA of 2048 bits or more, or EC P-256 / P-384";
        break;
    case -EEXIST:
        why = "another key file has the same kid (base name without extension)";
        break;
    case -EFBIG:
        why = "file larger than 64 KiB";
        break;
    default:
        why = strerror(-rc);
        break;
    }
    return gw_text_err(err, errlen, "%s %.200s: %s", flag, path, why);
}

static int check_anonymous(const struct gw_strlist *l, const char *flag, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strstr(l->v[i], "{sub}"))
            return gw_text_err(err, errlen,
                               "%s: \"%.80s\" uses {sub}, but anonymous clients have no subject",
                               flag, l->v[i]);
    }
    return 0;
}

int gw_access_init(struct gw_access *a, const struct gw_config *cfg, char *err, size_t errlen)
{
    int rc;

    memset(a, 0, sizeof *a);
    a->keys = gw_jwt_keys_new();
    a->policy.issuer = cfg->jwt_issuer;
    a->policy.audience = cfg->jwt_audience;
    a->policy.leeway = cfg->jwt_leeway_s;
    a->policy.max_len = cfg->max_token_bytes;
    a->anon_subscribe = &cfg->anonymous_subscribe;
    a->anon_publish = &cfg->anonymous_publish;
    a->anon_presence = &cfg->anonymous_presence;
    a->channel_prefix = cfg->channel_prefix;

    if (cfg->jwt_hmac_secret_file &&
        (rc = gw_jwt_keys_set_hmac_file(a->keys, cfg->jwt_hmac_secret_file)) < 0) {
        key_error(err, errlen, "--jwt-hmac-secret-file", cfg->jwt_hmac_secret_file, rc);
        goto fail;
    }
    for (size_t i = 0; i < cfg->jwt_public_key_files.n; i++) {
        const char *path = cfg->jwt_public_key_files.v[i];

        if ((rc = gw_jwt_keys_add_pem_file(a->keys, path)) < 0) {
            key_error(err, errlen, "--jwt-public-key-files", path, rc);
            goto fail;
        }
    }
    if (check_anonymous(a->anon_subscribe, "--anonymous-subscribe", err, errlen) < 0 ||
        check_anonymous(a->anon_publish, "--anonymous-publish", err, errlen) < 0)
        goto fail;
    if (gw_jwt_keys_count(a->keys) == 0 && !gw_access_anonymous_rights(a)) {
        gw_text_err(err, errlen,
                    "no access configured, so nobody could subscribe or publish: set "
                    "--jwt-hmac-secret-file or --jwt-public-key-files to accept tokens, and/or "
                    "--anonymous-subscribe / --anonymous-publish to grant clients without one "
                    "(development: --anonymous-subscribe 'demo*' --anonymous-publish 'demo*')");
        goto fail;
    }
    LOG_INFO("access keys=%zu anonymous_subscribe=%zu anonymous_publish=%zu auth_timeout_s=%d",
             gw_jwt_keys_count(a->keys), a->anon_subscribe->n, a->anon_publish->n, cfg->auth_timeout_s);
    return 0;

fail:
    gw_access_deinit(a);
    return -EINVAL;
}

void gw_access_deinit(struct gw_access *a)
{
    gw_jwt_keys_free(a->keys);
    memset(a, 0, sizeof *a);
}

bool gw_access_anonymous_rights(const struct gw_access *a)
{
    return a->anon_subscribe->n > 0 || a->anon_publish->n > 0;
}

static bool any_match(char *const *patterns, size_t n, const char *sub, const char *channel)
{
    for (size_t i = 0; i < n; i++) {
        if (gw_pattern_match(patterns[i], sub, channel))
            return true;
    }
    return false;
}

bool gw_access_allows(const struct gw_access *a, const struct gw_jwt_claims *claims,
                      enum gw_access_op op, const char *channel)
{
    if (op == GW_ACCESS_PRESENCE) {
        if (!gw_access_allows(a, claims, GW_ACCESS_SUBSCRIBE, channel))
            return false;
        if (!claims)
            return a->anon_presence->n == 0 || any_match(a->anon_presence->v, a->anon_presence->n, NULL, channel);
        return !claims->has_presence || any_match(claims->presence, claims->n_presence, claims->sub, channel);
    }
    const struct gw_strlist *anon = op == GW_ACCESS_SUBSCRIBE ? a->anon_subscribe : a->anon_publish;

    /* With a prefix such as "" or "_", a pattern like "*" would otherwise
     * grant the node's heartbeat channel. */
    if (gw_channel_reserved(a->channel_prefix, strlen(a->channel_prefix), channel, strlen(channel)))
        return false;
    /* Replacing, not adding: an issuer that hands out a token expects it to
     * describe everything its holder may do, and can list the public
     * channels in it when it wants them. */
    if (!claims)
        return any_match(anon->v, anon->n, NULL, channel);
    if (op == GW_ACCESS_SUBSCRIBE)
        return any_match(claims->channels, claims->n_channels, claims->sub, channel);
    return any_match(claims->publish, claims->n_publish, claims->sub, channel);
}

/* The wall clock in seconds. Not time(): glibc serves it from the kernel's
 * coarse clock, which lags CLOCK_REALTIME by up to a tick, so at a second
 * boundary a token issued "now" by an issuer reading the precise clock has
 * an iat one second in our future (refused as not_yet_valid with
 * --jwt-leeway 0; seen in the CI run of test_auth). */
static int64_t wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int gw_access_verify(const struct gw_access *a, const char *token, size_t len,
                     struct gw_jwt_claims **out, struct gw_jwt_error *err)
{
    return gw_jwt_verify(a->keys, &a->policy, token, len, wall_s(), out, err);
}

int64_t gw_access_expires_us(const struct gw_access *a, int64_t exp, int64_t now_us)
{
    int64_t left_s = exp + a->policy.leeway - wall_s();

    if (left_s <= 0)
        return now_us;
    /* jwt.c lets exp reach 2^53 s; from about 9.22e12 s on, the product
     * below overflows int64 (UBSan aborted the node, Release closed 4005 at
     * once). Such a token outlives the process: it never expires here. */
    if (left_s > (INT64_MAX - now_us) / 1000000)
        return INT64_MAX;
    return now_us + left_s * 1000000;
}

const char *gw_access_log_sub(const char *sub, char *buf, size_t n)
{
    size_t i = 0;

    if (!sub) {
        buf[0] = '-';
        buf[1] = '\0';
        return buf;
    }
    for (; sub[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)sub[i];
        buf[i] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    buf[i] = '\0';
    return buf;
}
