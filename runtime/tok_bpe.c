/* runtime/tok_bpe.c — hash maps and the BPE model of HF tokenizers
 * (tokenizers/src/models/bpe/{model,word}.rs), reproduced behaviour for
 * behaviour: per-char initial symbols (continuing_subword_prefix /
 * end_of_word_suffix, byte_fallback "<0xNN>", unk with fuse_unk), then the
 * merge loop that always applies the lowest-rank pair, leftmost on ties, with
 * a binary heap of candidate merges. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* ---- string map ---- */
static uint32_t tk_hash(const char *s, uint64_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

hq_status tk_map_init(tk_map *m, uint64_t n_expected) {
    uint64_t cap = 16;
    while (cap < n_expected * 2 + 16) cap *= 2;
    m->e = hq_calloc(cap, sizeof *m->e);
    if (!m->e) return HQ_ERR_NOMEM;
    m->cap = cap;
    m->n = 0;
    return HQ_OK;
}

void tk_map_free(tk_map *m) {
    hq_free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

int32_t tk_map_get(const tk_map *m, const char *s, uint64_t len) {
    if (!m->cap || len > UINT32_MAX) return -1;
    uint32_t h = tk_hash(s, len);
    for (uint64_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const tk_kv *e = &m->e[i];
        if (!e->s) return -1;
        if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0) return e->val;
    }
}

/* The caller sized the map (tk_map_init with the final count), so it never
 * fills up: capacity is at least twice the number of keys. */
void tk_map_put(tk_map *m, const char *s, uint32_t len, int32_t val, bool *had) {
    uint32_t h = tk_hash(s, len);
    for (uint64_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        tk_kv *e = &m->e[i];
        if (!e->s) {
            e->s = s;
            e->len = len;
            e->hash = h;
            e->val = val;
            m->n++;
            if (had) *had = false;
            return;
        }
        if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0) {
            e->val = val;
            if (had) *had = true;
            return;
        }
    }
}

/* ---- pair map ---- */
static uint64_t tk_pair_slot(uint64_t key, uint64_t cap) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key & (cap - 1);
}

hq_status tk_pairmap_init(tk_pairmap *m, uint64_t n_expected) {
    uint64_t cap = 16;
    while (cap < n_expected * 2 + 16) cap *= 2;
    m->key = hq_malloc_array(cap, sizeof *m->key);
    m->rank = hq_malloc_array(cap, sizeof *m->rank);
    m->new_id = hq_malloc_array(cap, sizeof *m->new_id);
    m->cap = cap;
    if (!m->key || !m->rank || !m->new_id) {
        tk_pairmap_free(m);
        return HQ_ERR_NOMEM;
    }
    memset(m->key, 0xff, cap * sizeof *m->key);
    return HQ_OK;
}

void tk_pairmap_free(tk_pairmap *m) {
    hq_free(m->key);
    hq_free(m->rank);
    hq_free(m->new_id);
    memset(m, 0, sizeof *m);
}

void tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint64_t i = tk_pair_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == TK_PAIR_EMPTY || m->key[i] == key) {
            m->key[i] = key; /* a later duplicate merge overwrites (HF collects into a HashMap) */
            m->rank[i] = rank;
            m->new_id[i] = new_id;
            return;
        }
    }
}

bool tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    if (!m->cap) return false;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint64_t i = tk_pair_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == TK_PAIR_EMPTY) return false;
        if (m->key[i] == key) {
            *rank = m->rank[i];
            *new_id = m->new_id[i];
            return true;
        }
    }
}

hq_status tk_ids_push(tk_ids *x, int32_t id) {
    int32_t *nv = hq_grow(x->v, &x->cap, x->n, sizeof *nv, 256);
    if (!nv) return HQ_ERR_NOMEM;
    x->v = nv;
    x->v[x->n++] = id;
    return HQ_OK;
}

/* ---- BPE ---- */
typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged away */
} tk_sym;
typedef struct {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
} tk_merge;

/* min-heap on (rank, pos) — HF's Merge ordering */
static bool tk_less(const tk_merge *a, const tk_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
static void tk_heap_push(tk_merge *h, int *n, tk_merge m) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!tk_less(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}
static tk_merge tk_heap_pop(tk_merge *h, int *n) {
    tk_merge top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && tk_less(&h[c + 1], &h[c])) c++;
        if (!tk_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static void tk_try_pair(const tk_bpe *m, const tk_sym *sy, int32_t pos, tk_merge *heap, int *nh) {
    uint32_t rank;
    int32_t nid;
    if (tk_pairmap_get(&m->merges, sy[pos].id, sy[sy[pos].next].id, &rank, &nid))
        tk_heap_push(heap, nh, (tk_merge){rank, pos, nid});
}

#define TK_STACK_SYMS 64

hq_status tk_bpe_encode(const tk_bpe *m, const char *s, uint64_t len, tk_ids *out, char *err) {
    if (len == 0) return HQ_OK;
    if (m->ignore_merges) { /* whole pre-token in the vocab: one token */
        int32_t id = tk_map_get(&m->vocab, s, len);
        if (id >= 0) return tk_ids_push(out, id);
    }
    if (len > INT32_MAX / 4) return hq_fail(err, HQ_ERR_LIMIT, "tokenizer: pre-token of %llu bytes", (unsigned long long)len);
    /* at most one symbol per byte; heap holds at most 3 entries per symbol */
    tk_sym sbuf[TK_STACK_SYMS];
    tk_merge hbuf[3 * TK_STACK_SYMS];
    tk_sym *sy = sbuf;
    tk_merge *heap = hbuf;
    char tbuf[256];
    char *tmp = NULL;
    uint64_t extra = (m->cont_prefix ? strlen(m->cont_prefix) : 0) + (m->eow_suffix ? strlen(m->eow_suffix) : 0);
    hq_status st = HQ_OK;
    if (len > TK_STACK_SYMS) {
        sy = hq_malloc_array(len, sizeof *sy);
        heap = hq_malloc_array(len, 3 * sizeof *heap);
        if (!sy || !heap) { st = HQ_ERR_NOMEM; goto done; }
    }
    if (extra) {
        tmp = extra + 4 <= sizeof tbuf ? tbuf : hq_malloc(extra + 4);
        if (!tmp) { st = HQ_ERR_NOMEM; goto done; }
    }
    int ns = 0;
    int32_t unk_id = -1; /* pending unk (fuse_unk) */
    uint32_t unk_len = 0;
#define TK_ADD(ID, LEN) (sy[ns] = (tk_sym){(ID), ns - 1, -1, (LEN)}, ns++)
    for (uint64_t i = 0; i < len;) {
        int cl = rt_utf8_len((uint8_t)s[i]);
        if ((uint64_t)cl > len - i) cl = (int)(len - i);
        const char *c = s + i;
        uint64_t clen = (uint64_t)cl;
        if (extra) {
            uint64_t k = 0;
            if (i > 0 && m->cont_prefix) { memcpy(tmp, m->cont_prefix, strlen(m->cont_prefix)); k += strlen(m->cont_prefix); }
            memcpy(tmp + k, c, (size_t)cl);
            k += (uint64_t)cl;
            if (i + (uint64_t)cl == len && m->eow_suffix) { memcpy(tmp + k, m->eow_suffix, strlen(m->eow_suffix)); k += strlen(m->eow_suffix); }
            c = tmp;
            clen = k;
        }
        int32_t id = tk_map_get(&m->vocab, c, clen);
        if (id >= 0) {
            if (unk_id >= 0) { TK_ADD(unk_id, unk_len); unk_id = -1; }
            TK_ADD(id, (uint32_t)cl);
        } else {
            bool done_fb = false;
            if (m->byte_fallback) {
                bool all = true;
                for (int k = 0; k < cl; k++) all = all && m->byte_ids[(uint8_t)s[i + (uint64_t)k]] >= 0;
                if (all) { /* note: HF does not flush a pending unk here */
                    for (int k = 0; k < cl; k++) TK_ADD(m->byte_ids[(uint8_t)s[i + (uint64_t)k]], 1);
                    done_fb = true;
                }
            }
            if (!done_fb && m->unk_id >= 0) {
                if (unk_id >= 0 && m->fuse_unk) unk_len += (uint32_t)cl;
                else {
                    if (unk_id >= 0) TK_ADD(unk_id, unk_len);
                    unk_id = m->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
            /* no unk token and no fallback: HF drops the char silently */
        }
        i += (uint64_t)cl;
    }
    if (unk_id >= 0) TK_ADD(unk_id, unk_len);
#undef TK_ADD
    if (ns > 0) sy[ns - 1].next = -1;
    for (int k = 0; k + 1 < ns; k++) sy[k].next = k + 1;
    int nh = 0;
    for (int k = 0; k + 1 < ns; k++) tk_try_pair(m, sy, k, heap, &nh);
    while (nh > 0) {
        tk_merge top = tk_heap_pop(heap, &nh);
        tk_sym *a = &sy[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        int32_t nx = a->next;
        uint32_t r;
        int32_t nid;
        /* stale entry? (HF compares the new id only) */
        if (!tk_pairmap_get(&m->merges, a->id, sy[nx].id, &r, &nid) || nid != top.new_id) continue;
        a->id = top.new_id;
        a->len += sy[nx].len;
        a->next = sy[nx].next;
        sy[nx].len = 0;
        if (a->next >= 0) sy[a->next].prev = top.pos;
        if (a->prev >= 0) tk_try_pair(m, sy, a->prev, heap, &nh);
        if (a->next >= 0) tk_try_pair(m, sy, top.pos, heap, &nh);
    }
    for (int k = 0; k < ns && st == HQ_OK; k++)
        if (sy[k].len) st = tk_ids_push(out, sy[k].id);
done:
    if (sy != sbuf) hq_free(sy);
    if (heap != hbuf) hq_free(heap);
    if (tmp && tmp != tbuf) hq_free(tmp);
    return st;
}
