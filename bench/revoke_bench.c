/* Cost of a revocation check (common/revoke.h) next to the cost of verifying
 * the token it follows (common/jwt.h, HS256), in one process on one core:
 * CPU time per call, median of 5 rounds. Bounded: a fixed number of calls per
 * round. Usage: revoke_bench [calls-per-round] (default 200000). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt.h"
#include "jwtkeys.h"
#include "revoke.h"

#define ROUNDS 5
#define SECRET "revoke-bench-secret-0123456789abcdef"

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t b64url(char *out, const unsigned char *in, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[n++] = a[v >> 18 & 63];
        out[n++] = a[v >> 12 & 63];
        if (i + 1 < len)
            out[n++] = a[v >> 6 & 63];
        if (i + 2 < len)
            out[n++] = a[v & 63];
    }
    out[n] = '\0';
    return n;
}

/* An HS256 token like the benchmarks' (sub, iat, exp, channels), minted here
 * with OpenSSL's HMAC, independently of the verifier. */
static size_t mint(char *tok, int64_t now)
{
    char payload[256];
    unsigned char mac[32];
    unsigned int maclen = 0;
    size_t n;
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    int plen = snprintf(payload, sizeof payload,
                        "{\"sub\":\"bench\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 ",\"channels\":[\"*\"]}", now,
                        now + 3600);

    n = b64url(tok, (const unsigned char *)hdr, strlen(hdr));
    tok[n++] = '.';
    n += b64url(tok + n, (const unsigned char *)payload, (size_t)plen);
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, n, mac, &maclen);
    tok[n++] = '.';
    n += b64url(tok + n, mac, maclen);
    return n;
}

/* Resident set size in bytes (Linux /proc/self/statm). */
static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * 4096;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof *v, cmp);
    return v[ROUNDS / 2];
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 200000;
    int64_t now = (int64_t)time(NULL);
    struct gw_jwt_keys *keys = gw_jwt_keys_new();
    struct gw_jwt_policy pol = { 0 };
    struct gw_revoke rv;
    char tok[512], user[32];
    size_t toklen = mint(tok, now - 10);
    double t[ROUNDS];
    volatile unsigned sink = 0;

    if (calls < 1000 || calls > 10000000 || gw_jwt_keys_set_hmac(keys, NULL, SECRET, strlen(SECRET)) != 0)
        return 2;
    struct gw_jwt_claims *first = NULL;
    if (gw_jwt_verify(keys, &pol, tok, toklen, now, &first, NULL) != 0 || !first->has_iat) {
        fprintf(stderr, "the minted token does not verify\n");
        return 1;
    }
    gw_jwt_claims_free(first);
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = cpu_ns();
        for (long i = 0; i < calls / 10; i++) {
            struct gw_jwt_claims *c = NULL;
            sink += (unsigned)gw_jwt_verify(keys, &pol, tok, toklen, now, &c, NULL);
            gw_jwt_claims_free(c);
        }
        t[r] = (cpu_ns() - t0) / (double)(calls / 10);
    }
    printf("jwt verify HS256 (%zu-byte token)      %8.1f ns per call\n", toklen, median(t));

    static const long sizes[] = { 0, 1000, 100000 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        long rss0 = rss_bytes();
        gw_revoke_init(&rv);
        for (long i = 0; i < sizes[k]; i++) {
            int n = snprintf(user, sizeof user, "user-%ld", i);
            gw_revoke_set(&rv, user, (size_t)n, now, now + 600, false);
        }
        if (sizes[k] >= 100000)
            printf("memory: %ld revoked users (10-byte names) grew RSS by %.1f MiB\n", sizes[k],
                   (double)(rss_bytes() - rss0) / 1048576.0);
        for (int hit = 0; hit < (sizes[k] ? 2 : 1); hit++) {
            const char *who = hit ? "user-7" : "bench";
            for (int r = 0; r < ROUNDS; r++) {
                double t0 = cpu_ns();
                for (long i = 0; i < calls; i++)
                    sink += gw_revoke_refuses(&rv, who, strlen(who), true, now - 10, now);
                t[r] = (cpu_ns() - t0) / (double)calls;
            }
            printf("revocation check, %6ld revoked, %s %8.1f ns per call\n", sizes[k],
                   hit ? "user revoked    " : "user not revoked", median(t));
        }
        gw_revoke_deinit(&rv);
    }
    gw_jwt_keys_free(keys);
    return sink == 0xFFFFFFFF;
}
