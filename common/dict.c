/* Chained hash table keyed by byte strings. Each table draws its own SipHash
 * key so that a client choosing channel names cannot predict bucket indexes
 * and degrade lookups to a list walk. */
#include "dict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

#define DICT_INITIAL_BUCKETS 16

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                              \
    do {                                                                      \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);             \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);             \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

uint64_t gw_siphash(const void *data, size_t len, uint64_t k0, uint64_t k1)
{
    const unsigned char *in = data;
    const unsigned char *end = in + (len & ~(size_t)7);
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
    uint64_t b = (uint64_t)len << 56;

    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);

        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    switch (len & 7) {
    case 7: b |= (uint64_t)in[6] << 48; /* fall through */
    case 6: b |= (uint64_t)in[5] << 40; /* fall through */
    case 5: b |= (uint64_t)in[4] << 32; /* fall through */
    case 4: b |= (uint64_t)in[3] << 24; /* fall through */
    case 3: b |= (uint64_t)in[2] << 16; /* fall through */
    case 2: b |= (uint64_t)in[1] << 8; /* fall through */
    case 1: b |= (uint64_t)in[0]; break;
    default: break;
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void random_key(uint64_t key[2])
{
    unsigned char *p = (unsigned char *)key;
    size_t got = 0;

    while (got < 2 * sizeof(uint64_t)) {
        ssize_t n = getrandom(p + got, 2 * sizeof(uint64_t) - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == 2 * sizeof(uint64_t))
        return;
    /* getrandom() can be blocked by an old seccomp profile. A weak key only
     * weakens collision resistance, so degrade instead of refusing to run. */
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    key[0] = gw_siphash(&ts, sizeof ts, (uint64_t)getpid(), (uint64_t)(uintptr_t)key);
    key[1] = gw_siphash(&ts, sizeof ts, key[0], (uint64_t)(uintptr_t)&ts);
}

void gw_dict_init(struct gw_dict *d)
{
    uint64_t key[2];

    random_key(key);
    d->k0 = key[0];
    d->k1 = key[1];
    d->nbuckets = DICT_INITIAL_BUCKETS;
    d->buckets = gw_xcalloc(d->nbuckets, sizeof *d->buckets);
    d->count = 0;
}

void gw_dict_deinit(struct gw_dict *d)
{
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct gw_dict_entry *e = d->buckets[i];

        while (e) {
            struct gw_dict_entry *next = e->next;

            free(e);
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = NULL;
    d->nbuckets = 0;
    d->count = 0;
}

static struct gw_dict_entry **find_slot(const struct gw_dict *d, uint64_t hash,
                                        const void *key, size_t klen)
{
    struct gw_dict_entry **slot = &d->buckets[hash & (d->nbuckets - 1)];

    for (; *slot; slot = &(*slot)->next) {
        const struct gw_dict_entry *e = *slot;

        if (e->hash == hash && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            break;
    }
    return slot;
}

struct gw_dict_entry *gw_dict_find(const struct gw_dict *d, const void *key, size_t klen)
{
    return *find_slot(d, gw_siphash(key, klen, d->k0, d->k1), key, klen);
}

static void grow(struct gw_dict *d)
{
    size_t n = d->nbuckets * 2;
    struct gw_dict_entry **nb = gw_xcalloc(n, sizeof *nb);

    for (size_t i = 0; i < d->nbuckets; i++) {
        struct gw_dict_entry *e = d->buckets[i];

        while (e) {
            struct gw_dict_entry *next = e->next;
            size_t j = e->hash & (n - 1);

            e->next = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = nb;
    d->nbuckets = n;
}

struct gw_dict_entry *gw_dict_add(struct gw_dict *d, const void *key, size_t klen,
                                  void *value, int *existed)
{
    uint64_t hash = gw_siphash(key, klen, d->k0, d->k1);
    struct gw_dict_entry **slot = find_slot(d, hash, key, klen);
    struct gw_dict_entry *e = *slot;

    if (existed)
        *existed = e != NULL;
    if (e)
        return e;
    e = gw_xmalloc(sizeof *e + klen + 1);
    e->next = NULL;
    e->hash = hash;
    e->value = value;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    *slot = e; /* the tail of the chain: find_slot stopped at NULL */
    d->count++;
    /* Growing moves entries between buckets but never reallocates them, so
     * the pointer returned stays valid. */
    if (d->count > d->nbuckets)
        grow(d);
    return e;
}

void *gw_dict_delete(struct gw_dict *d, const void *key, size_t klen)
{
    struct gw_dict_entry **slot = find_slot(d, gw_siphash(key, klen, d->k0, d->k1), key, klen);
    struct gw_dict_entry *e = *slot;
    void *value;

    if (!e)
        return NULL;
    *slot = e->next;
    value = e->value;
    free(e);
    d->count--;
    return value;
}

static struct gw_dict_entry *first_from(const struct gw_dict *d, size_t bucket)
{
    for (; bucket < d->nbuckets; bucket++) {
        if (d->buckets[bucket])
            return d->buckets[bucket];
    }
    return NULL;
}

struct gw_dict_entry *gw_dict_first(const struct gw_dict *d)
{
    return first_from(d, 0);
}

struct gw_dict_entry *gw_dict_next(const struct gw_dict *d, const struct gw_dict_entry *e)
{
    if (e->next)
        return e->next;
    return first_from(d, (e->hash & (d->nbuckets - 1)) + 1);
}
