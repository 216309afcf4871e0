/* formats/nameset.h — a small open-addressing hash index from names to item
 * indices, used by the readers and writers in formats/ to reject duplicate
 * names and to look names up in O(1) (a checkpoint may hold up to
 * HQ_MAX_TENSORS names, so a linear scan per insertion would be quadratic).
 * The set stores indices only; the caller supplies the name of index i. */
#ifndef HQ_NAMESET_H
#define HQ_NAMESET_H
#include <stdint.h>
#include <string.h>

#include "../core/hq.h"

typedef const char *(*fmt_nameset_get)(const void *ctx, uint64_t i, uint64_t *len);

typedef struct {
    uint64_t *slot; /* 0 = empty, else item index + 1 */
    uint64_t cap;   /* power of two */
    uint64_t n;
} fmt_nameset;

static inline uint64_t fmt_nameset_hash(const char *s, uint64_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* index of the item named (s, len), or UINT64_MAX */
static inline uint64_t fmt_nameset_find(const fmt_nameset *ns, const char *s, uint64_t len, fmt_nameset_get get,
                                        const void *ctx) {
    if (!ns->cap) return UINT64_MAX;
    uint64_t m = ns->cap - 1, h = fmt_nameset_hash(s, len) & m;
    for (;;) {
        uint64_t v = ns->slot[h];
        if (!v) return UINT64_MAX;
        uint64_t l;
        const char *o = get(ctx, v - 1, &l);
        if (l == len && memcmp(o, s, len) == 0) return v - 1;
        h = (h + 1) & m;
    }
}

static inline bool fmt_nameset_grow(fmt_nameset *ns, fmt_nameset_get get, const void *ctx) {
    uint64_t ncap = ns->cap ? ns->cap * 2 : 64;
    uint64_t *ns2 = hq_calloc((size_t)ncap, sizeof *ns2);
    if (!ns2) return false;
    for (uint64_t i = 0; i < ns->cap; i++) {
        uint64_t v = ns->slot[i];
        if (!v) continue;
        uint64_t l;
        const char *o = get(ctx, v - 1, &l);
        uint64_t h = fmt_nameset_hash(o, l) & (ncap - 1);
        while (ns2[h]) h = (h + 1) & (ncap - 1);
        ns2[h] = v;
    }
    hq_free(ns->slot);
    ns->slot = ns2;
    ns->cap = ncap;
    return true;
}

/* Inserts item idx (whose name get() returns). Returns 1 when inserted,
 * 0 when the name is already present (*dup = its index), -1 on no memory. */
static inline int fmt_nameset_insert(fmt_nameset *ns, uint64_t idx, fmt_nameset_get get, const void *ctx,
                                     uint64_t *dup) {
    if ((ns->n + 1) * 2 > ns->cap && !fmt_nameset_grow(ns, get, ctx)) return -1;
    uint64_t len;
    const char *s = get(ctx, idx, &len);
    uint64_t m = ns->cap - 1, h = fmt_nameset_hash(s, len) & m;
    for (;;) {
        uint64_t v = ns->slot[h];
        if (!v) break;
        uint64_t l;
        const char *o = get(ctx, v - 1, &l);
        if (l == len && memcmp(o, s, len) == 0) {
            if (dup) *dup = v - 1;
            return 0;
        }
        h = (h + 1) & m;
    }
    ns->slot[h] = idx + 1;
    ns->n++;
    return 1;
}

static inline void fmt_nameset_free(fmt_nameset *ns) {
    hq_free(ns->slot);
    memset(ns, 0, sizeof *ns);
}
#endif
