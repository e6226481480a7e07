/* Hash table keyed by byte strings, with a per-table random SipHash key so
 * that client-chosen keys (channel names) cannot force collisions. Chained
 * buckets, power-of-two size, grows at load 1. Not thread-safe: one owner. */
#ifndef GW_DICT_H
#define GW_DICT_H

#include <stddef.h>
#include <stdint.h>

struct gw_dict_entry {
    struct gw_dict_entry *next;
    uint64_t hash;
    void *value;
    size_t klen;
    char key[]; /* klen bytes, then a NUL */
};

struct gw_dict {
    struct gw_dict_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    uint64_t k0, k1; /* SipHash key */
};

void gw_dict_init(struct gw_dict *d);
/* Frees entries (not values). */
void gw_dict_deinit(struct gw_dict *d);

/* Returns the entry for key or NULL. The entry stays valid until it is deleted. */
struct gw_dict_entry *gw_dict_find(const struct gw_dict *d, const void *key, size_t klen);

/* Inserts key (copied) with value; returns the entry. If the key already
 * exists, returns the existing entry unchanged and sets *existed (if given). */
struct gw_dict_entry *gw_dict_add(struct gw_dict *d, const void *key, size_t klen,
                                  void *value, int *existed);

/* Removes and frees the entry for key. Returns its value, or NULL if absent. */
void *gw_dict_delete(struct gw_dict *d, const void *key, size_t klen);

/* Iteration: for (it = gw_dict_first(d); it; it = gw_dict_next(d, it)).
 * Deleting the current entry during iteration is not allowed. */
struct gw_dict_entry *gw_dict_first(const struct gw_dict *d);
struct gw_dict_entry *gw_dict_next(const struct gw_dict *d, const struct gw_dict_entry *e);

uint64_t gw_siphash(const void *data, size_t len, uint64_t k0, uint64_t k1);

#endif
