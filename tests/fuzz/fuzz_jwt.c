/* libFuzzer harness for the JWT verifier. An input is a token, verified as
 * sent and again re-signed with the harness's HMAC secret; or, when it starts
 * with '{', "header JSON\npayload JSON", encoded and signed here, so that
 * mutations land on claims and grants rather than on base64 text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "jwt.h"
#include "pattern.h"

#define NOW 1700000000
#define MAX_LEN 16384

/* Throwaway key pairs; only the public halves were kept. The seed corpus in
 * corpus/jwt/ was signed with them and with SECRET. */
static const char SECRET[] = "wsgate-fuzz-secret-not-for-production-use!!";
static const char RSA_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA36IENTajUwYAGx6pN8dA\n"
    "SNbEAGc2EI5KOJHq1AZUvSOOtz84BciQf+ZoBmES6f3TxIz+3D1OURqKoHUHuDgJ\n"
    "32a1E9JJecX6BANVNq48e+FAC5cngh/Fwqi8hvIPl11H+YYKm2w1Nttie0tSv3i+\n"
    "9Qr02+hzbsrZy9tyy9cz0JEELFUwX5OYIeBYuRKLWrUPALYN8iUO9TZVCclJ1TJ6\n"
    "dAbl1rop4vwm6JVrutkf3MHBKQtJmg5DYq4a+Sj3QQyWC4/OhntHOH/zWzRXDAy6\n"
    "1iKURoUUsKsVYwQkr9/RXuJVFWaAJqDMRanZ75T96XkkwbpCMpI52SgxFeA016au\n"
    "UwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char EC256_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3N9XijBQWHbC9hBCxhqSKJwNxBZJ\n"
    "IIsSYosgJ0iv/kUqUyIQ6KItLsoI/n73I4vU8XleG0Go8Z1gPSxpY4yJig==\n"
    "-----END PUBLIC KEY-----\n";
static const char EC384_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE62cBPCLqFFmp/l9SSbuQAQovy1zOqzvy\n"
    "5OjpT/Zz7GQzEx0iK67R6ypWGeCLe5pauz8a9L/NlvqRpSlq2awWgECqJwl6nP2D\n"
    "cyjKt6MNBzfWN9/rbybhsGRdvcxyQrJQ\n"
    "-----END PUBLIC KEY-----\n";

static const struct gw_jwt_policy policy = {
    .issuer = "https://issuer.test", .audience = "wsgate", .leeway = 30, .max_len = MAX_LEN};
static const char *const channels[] = {"room:1", "user:alice", "user:*", "dm:alice:bob", "x"};
static struct gw_jwt_keys *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    keys = gw_jwt_keys_new();
    if (gw_jwt_keys_set_hmac(keys, NULL, SECRET, sizeof SECRET - 1) < 0 ||
        gw_jwt_keys_add_pem(keys, "rsa", RSA_PEM, sizeof RSA_PEM - 1) < 0 ||
        gw_jwt_keys_add_pem(keys, "ec256", EC256_PEM, sizeof EC256_PEM - 1) < 0 ||
        gw_jwt_keys_add_pem(keys, "ec384", EC384_PEM, sizeof EC384_PEM - 1) < 0)
        abort();
    return 0;
}

static void verify(const char *tok, size_t len)
{
    struct gw_jwt_claims *c;
    struct gw_jwt_error err;

    if (gw_jwt_verify(keys, &policy, tok, len, NOW, &c, &err) < 0) {
        if (c || err.reason == GW_JWT_OK || !err.msg[0])
            abort();
        return;
    }
    if (err.reason != GW_JWT_OK || !c)
        abort();
    for (size_t i = 0; i < c->n_channels + c->n_publish; i++) {
        const char *p = i < c->n_channels ? c->channels[i] : c->publish[i - c->n_channels];

        if (!gw_pattern_valid(p))
            abort(); /* the verifier promised valid patterns */
        for (size_t j = 0; j < sizeof channels / sizeof channels[0]; j++)
            (void)gw_pattern_match(p, c->sub, channels[j]);
    }
    gw_jwt_claims_free(c);
}

static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < len; i += 3) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4 | in[i + 1] >> 4];
        out[o++] = abc[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
        out[o++] = abc[in[i + 2] & 63];
    }
    if (len - i == 1) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4 | in[i + 1] >> 4];
        out[o++] = abc[(in[i + 1] & 15) << 2];
    }
    return o;
}

/* Appends ".<HS256 of tok[0..len)>" to tok, which has room for it, and
 * verifies the result. */
static void sign_and_verify(char *tok, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (!HMAC(EVP_sha256(), SECRET, sizeof SECRET - 1, (const unsigned char *)tok, len, mac,
              &maclen))
        abort();
    tok[len] = '.';
    verify(tok, len + 1 + b64url_encode(mac, maclen, tok + len + 1));
}

#define SIG_ROOM (2 + 4 * EVP_MAX_MD_SIZE / 3 + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *dot1, *dot2, *nl;
    size_t signed_len, hlen, n;
    char *tok;

    if (size > MAX_LEN)
        return 0;
    if (size > 0 && in[0] == '{') {
        nl = memchr(in, '\n', size);
        hlen = nl ? (size_t)(nl - in) : size;
        tok = gw_xmalloc(size / 3 * 4 + 8 + SIG_ROOM);
        n = b64url_encode(data, hlen, tok);
        tok[n++] = '.';
        if (nl)
            n += b64url_encode(data + hlen + 1, size - hlen - 1, tok + n);
        sign_and_verify(tok, n);
        free(tok);
        return 0;
    }
    verify(in, size);
    /* Re-sign "header.payload" (everything before a second dot). */
    dot1 = memchr(in, '.', size);
    if (!dot1)
        return 0;
    dot2 = memchr(dot1 + 1, '.', size - (size_t)(dot1 + 1 - in));
    signed_len = dot2 ? (size_t)(dot2 - in) : size;
    tok = gw_xmalloc(signed_len + SIG_ROOM);
    memcpy(tok, in, signed_len);
    sign_and_verify(tok, signed_len);
    free(tok);
    return 0;
}
