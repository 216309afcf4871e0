/* runtime/tokenizer.c — encodes text exactly as `tokenizers` (0.23) does:
 * Tokenizer::encode = added-token extraction, normalizer, pre-tokenizer, BPE
 * model, post-processor; and decodes one token (rt_token_to_piece). The
 * tables come from runtime/tok_json.c (rt_tokenizer_load). */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* ---- encode ---- */
typedef struct {
    uint64_t a, b;
    int32_t id; /* -1: text */
} tk_seg;
typedef struct {
    tk_seg *v;
    uint64_t n, cap;
} tk_segs;
static hq_status tk_segs_push(tk_segs *s, uint64_t a, uint64_t b, int32_t id) {
    tk_seg *nv = hq_grow(s->v, &s->cap, s->n, sizeof *nv, 16);
    if (!nv) return HQ_ERR_NOMEM;
    s->v = nv;
    s->v[s->n++] = (tk_seg){a, b, id};
    return HQ_OK;
}

static bool tk_is_word_at(const uint8_t *s, uint64_t n, uint64_t i) {
    uint32_t cp;
    if (i >= n) return false;
    rt_utf8_dec(s + i, n - i, &cp);
    return (rt_uni_flags(cp) & RT_UNI_WORD) != 0;
}
static bool tk_word_before(const uint8_t *s, uint64_t i) {
    if (i == 0) return false;
    uint64_t j = i - 1;
    while (j > 0 && (s[j] & 0xC0) == 0x80) j--;
    return tk_is_word_at(s, i, j);
}

/* HF AddedVocabulary::find_matches over s[0..n): leftmost-longest matches of
 * the set's patterns (first listed wins a tie), with single_word / lstrip /
 * rstrip. Segments cover s. */
static hq_status tk_find_added(const rt_tokenizer *t, int set, const uint8_t *s, uint64_t n, tk_segs *out) {
    out->n = 0;
    uint64_t start_offset = 0;
    hq_status st;
    if (t->set_order[set])
        for (uint64_t i = 0; i < n;) {
            int best = -1;
            uint32_t best_len = 0;
            for (int32_t k = t->set_first[set][s[i]]; k < t->set_first[set][s[i] + 1]; k++) {
                const tk_added *a = &t->added[t->set_order[set][k]];
                if (a->len > best_len && a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) {
                    best = t->set_order[set][k];
                    best_len = a->len;
                }
            }
            if (best < 0) {
                i++;
                continue;
            }
            const tk_added *a = &t->added[best];
            uint64_t start = i, stop = i + best_len;
            i = stop; /* the automaton resumes after the raw match */
            if (a->single_word && (tk_word_before(s, start) || tk_is_word_at(s, n, stop))) continue;
            if (a->lstrip) {
                uint64_t ns = start;
                while (ns > 0) { /* trailing whitespace of s[..start] */
                    uint64_t j = ns - 1;
                    while (j > 0 && (s[j] & 0xC0) == 0x80) j--;
                    uint32_t cp;
                    rt_utf8_dec(s + j, ns - j, &cp);
                    if (!(rt_uni_flags(cp) & RT_UNI_WS)) break;
                    ns = j;
                }
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip)
                while (stop < n) {
                    uint32_t cp;
                    int l = rt_utf8_dec(s + stop, n - stop, &cp);
                    if (!(rt_uni_flags(cp) & RT_UNI_WS)) break;
                    stop += (uint64_t)l;
                }
            if (start < start_offset) start = start_offset;
            if (start_offset < start && (st = tk_segs_push(out, start_offset, start, -1))) return st;
            if ((st = tk_segs_push(out, start, stop, a->id))) return st;
            start_offset = stop;
            if (i < stop) i = stop;
        }
    if (start_offset < n && (st = tk_segs_push(out, start_offset, n, -1))) return st;
    return HQ_OK;
}

/* Per-call cache of pre-token -> ids (BPE output depends on the pre-token
 * alone); used for long inputs, where words repeat. Keys live in fixed
 * blocks so the map's borrowed pointers stay valid. */
#define TK_CACHE_KEY_MAX 128
#define TK_CACHE_BLOCK (64u << 10)
typedef struct {
    tk_map map;
    uint64_t max_entries;
    char **blocks;
    int n_blocks, cap_blocks;
    uint64_t used; /* bytes used in the last block */
    uint32_t *start, *count;
    tk_ids ids;
    uint64_t n;
} tk_cache;

static void tk_cache_free(tk_cache *c) {
    tk_map_free(&c->map);
    for (int k = 0; k < c->n_blocks; k++) hq_free(c->blocks[k]);
    hq_free(c->blocks);
    hq_free(c->start);
    hq_free(c->count);
    hq_free(c->ids.v);
    memset(c, 0, sizeof *c);
}

static hq_status tk_cache_init(tk_cache *c, uint64_t text_len) {
    memset(c, 0, sizeof *c);
    if (text_len < (64u << 10)) return HQ_OK; /* short input: no cache */
    c->max_entries = text_len / 8 < (1u << 16) ? text_len / 8 : (1u << 16);
    c->start = hq_malloc_array(c->max_entries, sizeof *c->start);
    c->count = hq_malloc_array(c->max_entries, sizeof *c->count);
    if (!c->start || !c->count || tk_map_init(&c->map, c->max_entries)) {
        tk_cache_free(c);
        return HQ_ERR_NOMEM;
    }
    return HQ_OK;
}

static hq_status tk_bpe_cached(const rt_tokenizer *t, tk_cache *c, const char *s, uint64_t len, tk_ids *out, char *err) {
    if (!c->max_entries || len > TK_CACHE_KEY_MAX) return tk_bpe_encode(&t->bpe, s, len, out, err);
    int32_t e = tk_map_get(&c->map, s, len);
    hq_status st;
    if (e >= 0) {
        for (uint32_t k = 0; k < c->count[e]; k++)
            if ((st = tk_ids_push(out, c->ids.v[c->start[e] + k]))) return st;
        return HQ_OK;
    }
    uint64_t before = out->n;
    if ((st = tk_bpe_encode(&t->bpe, s, len, out, err))) return st;
    if (c->n >= c->max_entries || c->ids.n + (out->n - before) > UINT32_MAX) return HQ_OK; /* full: no more entries */
    if (!c->n_blocks || c->used + len > TK_CACHE_BLOCK) {
        if (c->n_blocks == c->cap_blocks) {
            int nc = c->cap_blocks ? c->cap_blocks * 2 : 8;
            char **nb = hq_realloc(c->blocks, (size_t)nc * sizeof *nb);
            if (!nb) return HQ_ERR_NOMEM;
            c->blocks = nb;
            c->cap_blocks = nc;
        }
        if (!(c->blocks[c->n_blocks] = hq_malloc(TK_CACHE_BLOCK))) return HQ_ERR_NOMEM;
        c->n_blocks++;
        c->used = 0;
    }
    char *key = c->blocks[c->n_blocks - 1] + c->used;
    memcpy(key, s, len);
    c->used += len;
    c->start[c->n] = (uint32_t)c->ids.n;
    c->count[c->n] = (uint32_t)(out->n - before);
    for (uint64_t k = before; k < out->n; k++)
        if ((st = tk_ids_push(&c->ids, out->v[k]))) return st;
    tk_map_put(&c->map, key, (uint32_t)len, (int32_t)c->n, NULL);
    c->n++;
    return HQ_OK;
}

/* One pre-token through the model (split before each U+2581 when exact). */
static hq_status tk_encode_piece(const rt_tokenizer *t, tk_cache *c, const char *s, uint64_t len, tk_ids *out, char *err) {
    if (!t->bpe.split_meta) return tk_bpe_cached(t, c, s, len, out, err);
    uint64_t a = 0;
    for (uint64_t i = 1; i + 3 <= len; i++) {
        if ((uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
            hq_status st = tk_bpe_cached(t, c, s + a, i - a, out, err);
            if (st) return st;
            a = i;
            i += 2;
        }
    }
    return tk_bpe_cached(t, c, s + a, len - a, out, err);
}

hq_status rt_tokenize(const rt_tokenizer *t, const char *text, uint64_t len, bool add_special, int32_t **ids,
                      uint64_t *n_ids, char *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len && !text) return hq_fail(err, HQ_ERR_ARG, "rt_tokenize: NULL text");
    uint64_t bad = rt_utf8_validate((const uint8_t *)text, len);
    if (bad != len) return hq_fail(err, HQ_ERR_FORMAT, "%s: input text is not valid UTF-8 at byte offset %llu", t->label, (unsigned long long)bad);
    tk_ids out = {0};
    tk_segs s1 = {0}, s2 = {0};
    tk_plist nrm = {0}, a = {0}, b = {0};
    tk_cache cache;
    hq_status st = tk_cache_init(&cache, len);
    if (st) return hq_fail(err, st, "%s: out of memory", t->label);
    if (add_special)
        for (int k = 0; k < t->n_post_pre && !st; k++) st = tk_ids_push(&out, t->post_pre[k]);
    if (!st) st = tk_find_added(t, 0, (const uint8_t *)text, len, &s1);
    for (uint64_t i = 0; i < s1.n && !st; i++) {
        if (s1.v[i].id >= 0) {
            st = tk_ids_push(&out, s1.v[i].id);
            continue;
        }
        const char *seg = text + s1.v[i].a;
        uint64_t sl = s1.v[i].b - s1.v[i].a;
        const char *ns = seg;
        uint64_t nl = sl;
        if (t->n_norm) {
            if ((st = tk_normalize(t->norm, t->n_norm, seg, sl, &nrm))) break;
            ns = nrm.buf ? nrm.buf : "";
            nl = nrm.len;
        }
        if ((st = tk_find_added(t, 1, (const uint8_t *)ns, nl, &s2))) break;
        for (uint64_t j = 0; j < s2.n && !st; j++) {
            if (s2.v[j].id >= 0) {
                st = tk_ids_push(&out, s2.v[j].id);
                continue;
            }
            tk_plist_clear(&a);
            if ((st = tk_plist_add(&a, ns + s2.v[j].a, s2.v[j].b - s2.v[j].a, s1.v[i].a == 0 && s2.v[j].a == 0)) ||
                (st = tk_pretokenize(t->pre, t->n_pre, &a, &b)))
                break;
            for (uint64_t k = 0; k < b.n && !st; k++) st = tk_encode_piece(t, &cache, b.buf + b.p[k].off, b.p[k].len, &out, err);
        }
    }
    if (add_special)
        for (int k = 0; k < t->n_post_suf && !st; k++) st = tk_ids_push(&out, t->post_suf[k]);
    tk_cache_free(&cache);
    hq_free(s1.v);
    hq_free(s2.v);
    tk_plist_free(&nrm);
    tk_plist_free(&a);
    tk_plist_free(&b);
    if (st) {
        hq_free(out.v);
        if (st == HQ_ERR_NOMEM) hq_fail(err, st, "%s: out of memory while tokenizing", t->label);
        else if (st == HQ_ERR_UNSUPPORTED) hq_fail(err, st, "%s: unsupported tokenizer component", t->label);
        return st;
    }
    if (!out.v) { /* empty result: still hand back a buffer the caller frees */
        out.v = hq_malloc(sizeof *out.v);
        if (!out.v) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", t->label);
    }
    *ids = out.v;
    *n_ids = out.n;
    return HQ_OK;
}

/* ---- decode one token ---- */
int rt_token_to_piece(const rt_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_vocab || !t->id_str[id] || cap < 0) return -1;
    const char *s = t->id_str[id];
    uint32_t n = t->id_len[id];
    int w = 0;
#define TK_OUT(c)                      \
    do {                               \
        if (w >= cap) return -1;       \
        buf[w++] = (char)(c);          \
    } while (0)
    if (t->dec_bytefallback && n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') {
        unsigned v;
        char hex[3] = {s[3], s[4], 0};
        if (sscanf(hex, "%2X", &v) == 1) {
            TK_OUT(v);
            return w;
        }
    }
    if (t->dec_bytelevel) { /* every char must be a byte-level char, else raw */
        bool all = true;
        for (uint32_t i = 0; i < n && all;) {
            uint32_t cp;
            i += (uint32_t)rt_utf8_dec((const uint8_t *)s + i, n - i, &cp);
            all = tk_cp_to_byte(cp) >= 0;
        }
        if (all) {
            for (uint32_t i = 0; i < n;) {
                uint32_t cp;
                i += (uint32_t)rt_utf8_dec((const uint8_t *)s + i, n - i, &cp);
                TK_OUT(tk_cp_to_byte(cp));
            }
            return w;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (t->dec_space && i + 3 <= n && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
            TK_OUT(' ');
            i += 2;
            continue;
        }
        TK_OUT(s[i]);
    }
#undef TK_OUT
    return w;
}

int32_t rt_tokenizer_vocab_size(const rt_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t rt_tokenizer_bos(const rt_tokenizer *t) { return t ? t->bos : -1; }
int32_t rt_tokenizer_eos(const rt_tokenizer *t) { return t ? t->eos : -1; }
