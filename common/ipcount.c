/* Per-address connection counts behind one mutex. */
#include "ipcount.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int gw_ipcount_key_from_sockaddr(struct gw_ipcount_key *key, const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        memcpy(key->b, v4_mapped, sizeof v4_mapped);
        memcpy(key->b + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(key->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -EAFNOSUPPORT;
}

void gw_ipcount_key_format(const struct gw_ipcount_key *key, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    bool v4 = memcmp(key->b, v4_mapped, sizeof v4_mapped) == 0;

    if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? key->b + 12 : key->b, buf, sizeof buf))
        strcpy(buf, "?");
    snprintf(out, outlen, "%s", buf);
}

void gw_ipcount_init(struct gw_ipcount *t)
{
    pthread_mutex_init(&t->lock, NULL);
    gw_dict_init(&t->counts);
}

void gw_ipcount_deinit(struct gw_ipcount *t)
{
    gw_dict_deinit(&t->counts);
    pthread_mutex_destroy(&t->lock);
}

bool gw_ipcount_take(struct gw_ipcount *t, const struct gw_ipcount_key *key, int max)
{
    struct gw_dict_entry *e;
    bool taken = false;

    if (max <= 0)
        return false;
    pthread_mutex_lock(&t->lock);
    int existed = 0;
    /* One hash under the lock every worker takes: add, or find what is there. */
    e = gw_dict_add(&t->counts, key->b, sizeof key->b, (void *)(uintptr_t)1, &existed);
    if (!existed) {
        taken = true;
    } else if ((uintptr_t)e->value < (uintptr_t)max) {
        e->value = (void *)((uintptr_t)e->value + 1);
        taken = true;
    }
    pthread_mutex_unlock(&t->lock);
    return taken;
}

void gw_ipcount_give(struct gw_ipcount *t, const struct gw_ipcount_key *key)
{
    struct gw_dict_entry *e;

    pthread_mutex_lock(&t->lock);
    e = gw_dict_find(&t->counts, key->b, sizeof key->b);
    if (e && (uintptr_t)e->value > 1)
        e->value = (void *)((uintptr_t)e->value - 1);
    else if (e)
        gw_dict_delete(&t->counts, key->b, sizeof key->b);
    pthread_mutex_unlock(&t->lock);
}

int gw_ipcount_get(struct gw_ipcount *t, const struct gw_ipcount_key *key)
{
    struct gw_dict_entry *e;
    int n;

    pthread_mutex_lock(&t->lock);
    e = gw_dict_find(&t->counts, key->b, sizeof key->b);
    n = e ? (int)(uintptr_t)e->value : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t gw_ipcount_entries(struct gw_ipcount *t)
{
    size_t n;

    pthread_mutex_lock(&t->lock);
    n = t->counts.count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
