/* runtime/tok_json.c — rt_tokenizer_load: a HF tokenizer.json (as
 * `tokenizers` 0.23 reads it) into the rt_tokenizer tables that
 * runtime/tokenizer.c encodes and decodes with. Everything outside the
 * supported subset is refused with HQ_ERR_UNSUPPORTED naming the component.
 * Supported: model BPE (dropout null); normalizers Sequence, Prepend,
 * Replace(String); pre-tokenizers Sequence, ByteLevel, Split (GPT-2 /
 * Llama-3 / Qwen2 regex or a literal String), Metaspace, Digits;
 * post-processors TemplateProcessing, ByteLevel, RobertaProcessing,
 * BertProcessing, Sequence; decoders ByteLevel, ByteFallback, Metaspace,
 * Replace(▁→space), Fuse, Strip, Sequence. */
#include <cjson/cJSON.h>
#include <string.h>

#include "../core/limits.h"
#include "tok_internal.h"
#include "unicode.h"

#define TK_RE_GPT2_PAT "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TK_RE_LLAMA3_PAT(N)                                                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" N "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
    "\\s+(?!\\S)|\\s+"

typedef struct {
    rt_tokenizer *t;
    const char *label;
    char *err;
} tk_ld;

static const char *tk_type(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}
static bool tk_bool(const cJSON *o, const char *k, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}
static const char *tk_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static bool tk_null(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return !v || cJSON_IsNull(v);
}
/* integral id in [0, 2^31) */
static bool tk_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0) || d != (double)(int64_t)d) return false;
    *id = (int32_t)d;
    return true;
}

/* ---- model ---- */
static hq_status tk_load_model(tk_ld *L, const cJSON *m) {
    rt_tokenizer *t = L->t;
    tk_bpe *b = &t->bpe;
    const char *ty = tk_type(m);
    if (!ty && cJSON_GetObjectItemCaseSensitive(m, "merges")) ty = "BPE"; /* HF infers untagged models */
    if (!ty || strcmp(ty, "BPE") != 0)
        return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (only BPE)", L->label,
                       ty ? ty : "?");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble == 0.0))
        return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: BPE dropout is not supported (non-deterministic)", L->label);
    b->fuse_unk = tk_bool(m, "fuse_unk", false);
    b->byte_fallback = tk_bool(m, "byte_fallback", false);
    b->ignore_merges = tk_bool(m, "ignore_merges", false);
    const char *cp = tk_str(m, "continuing_subword_prefix"), *ew = tk_str(m, "end_of_word_suffix");
    if ((cp && *cp && !(b->cont_prefix = hq_strdup(cp))) || (ew && *ew && !(b->eow_suffix = hq_strdup(ew))))
        return HQ_ERR_NOMEM;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: model.vocab is not an object", L->label);
    if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges))
        return hq_fail(L->err, HQ_ERR_FORMAT, "%s: model.merges is not an array", L->label);
    uint64_t nv = 0, bytes = 0;
    int32_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!tk_id(e, &id))
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: model.vocab['%.64s'] is not a valid id", L->label, e->string);
        if (id >= HQ_MAX_VOCAB)
            return hq_fail(L->err, HQ_ERR_LIMIT, "%s: model.vocab['%.64s'] has id %d beyond HQ_MAX_VOCAB (%d)", L->label,
                           e->string, id, HQ_MAX_VOCAB);
        if (id > max_id) max_id = id;
        nv++;
        bytes += strlen(e->string) + 1;
    }
    hq_status st = tk_map_init(&b->vocab, nv);
    if (st) return st;
    t->pool = hq_malloc(bytes ? bytes : 1);
    if (!t->pool) return HQ_ERR_NOMEM;
    char *w = t->pool;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        size_t l = strlen(e->string);
        memcpy(w, e->string, l + 1);
        tk_map_put(&b->vocab, w, (uint32_t)l, (int32_t)e->valuedouble, NULL);
        w += l + 1;
    }
    t->n_vocab = max_id + 1;
    /* merges: "a b" strings (legacy) or [a, b] pairs */
    uint64_t nm = merges && cJSON_IsArray(merges) ? (uint64_t)cJSON_GetArraySize(merges) : 0;
    if ((st = tk_pairmap_init(&b->merges, nm))) return st;
    size_t plen = b->cont_prefix ? strlen(b->cont_prefix) : 0;
    char *tmp = NULL;
    size_t tcap = 0;
    uint32_t rank = 0;
    for (const cJSON *e = nm ? merges->child : NULL; e; e = e->next, rank++) {
        const char *a, *c;
        size_t al, cl;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                hq_free(tmp);
                return hq_fail(L->err, HQ_ERR_FORMAT, "%s: merge %u '%.64s' is not two space-separated tokens", L->label,
                               rank + 1, e->valuestring);
            }
            a = e->valuestring;
            al = (size_t)(sp - a);
            c = sp + 1;
            cl = strlen(c);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring;
            al = strlen(a);
            c = e->child->next->valuestring;
            cl = strlen(c);
        } else {
            hq_free(tmp);
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: merge %u is neither \"a b\" nor [a, b]", L->label, rank + 1);
        }
        int32_t ia = tk_map_get(&b->vocab, a, al), ic = tk_map_get(&b->vocab, c, cl);
        size_t skip = plen <= cl ? plen : cl;
        if (al + cl + 1 > tcap) {
            hq_free(tmp);
            tcap = (al + cl + 1) * 2;
            if (!(tmp = hq_malloc(tcap))) return HQ_ERR_NOMEM;
        }
        memcpy(tmp, a, al);
        memcpy(tmp + al, c + skip, cl - skip);
        int32_t in = tk_map_get(&b->vocab, tmp, al + cl - skip);
        if (ia < 0 || ic < 0 || in < 0) {
            int bad = ia < 0 ? 0 : ic < 0 ? 1 : 2;
            hq_fail(L->err, HQ_ERR_FORMAT, "%s: merge %u uses token '%.*s' that is not in the vocab", L->label, rank + 1,
                    bad == 0 ? (int)al : bad == 1 ? (int)cl : (int)(al + cl - skip), bad == 0 ? a : bad == 1 ? c : tmp);
            hq_free(tmp);
            return HQ_ERR_FORMAT;
        }
        tk_pairmap_put(&b->merges, ia, ic, rank, in);
    }
    hq_free(tmp);
    for (int k = 0; k < 256; k++) {
        char nm2[8];
        snprintf(nm2, sizeof nm2, "<0x%02X>", k);
        b->byte_ids[k] = tk_map_get(&b->vocab, nm2, 6);
    }
    b->split_meta = !b->ignore_merges && !b->cont_prefix && !b->eow_suffix &&
                    tk_map_get(&b->vocab, "\xe2\x96\x81", 3) >= 0;
    for (const cJSON *e = vocab->child; e && b->split_meta; e = e->next)
        if (strlen(e->string) > 1 && strstr(e->string + 1, "\xe2\x96\x81")) b->split_meta = false;
    b->unk_id = -1;
    const char *unk = tk_str(m, "unk_token");
    if (unk) {
        b->unk_id = tk_map_get(&b->vocab, unk, strlen(unk));
        if (b->unk_id < 0)
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: unk_token '%.64s' is not in the vocab", L->label, unk);
    }
    return HQ_OK;
}

/* ---- normalizer ---- */
static hq_status tk_add_norm(tk_ld *L, tk_norm nm) {
    tk_norm *nn = hq_realloc(L->t->norm, (size_t)(L->t->n_norm + 1) * sizeof *nn);
    if (!nn) {
        hq_free(nm.a);
        hq_free(nm.b);
        return HQ_ERR_NOMEM;
    }
    L->t->norm = nn;
    nn[L->t->n_norm++] = nm;
    return HQ_OK;
}

static hq_status tk_load_norm(tk_ld *L, const cJSON *n, int depth) {
    if (!n || cJSON_IsNull(n)) return HQ_OK;
    const char *ty = tk_type(n);
    if (!ty) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: normalizer without a type", L->label);
    if (depth > 8) return hq_fail(L->err, HQ_ERR_LIMIT, "%s: normalizer Sequences nested too deeply", L->label);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(arr)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: normalizer Sequence without a list", L->label);
        for (const cJSON *e = arr->child; e; e = e->next) {
            hq_status st = tk_load_norm(L, e, depth + 1);
            if (st) return st;
        }
        return HQ_OK;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *p = tk_str(n, "prepend");
        if (!p) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: Prepend normalizer without 'prepend'", L->label);
        char *a = hq_strdup(p);
        return a ? tk_add_norm(L, (tk_norm){TK_NORM_PREPEND, a, NULL}) : HQ_ERR_NOMEM;
    }
    if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *lit = tk_str(pat, "String"), *content = tk_str(n, "content");
        if (!lit || !content)
            return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Replace normalizer with a Regex pattern is not supported",
                           L->label);
        if (!*lit) /* HF matches the empty pattern between every char */
            return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Replace normalizer with an empty pattern", L->label);
        char *a = hq_strdup(lit), *b = hq_strdup(content);
        if (!a || !b) {
            hq_free(a);
            hq_free(b);
            return HQ_ERR_NOMEM;
        }
        return tk_add_norm(L, (tk_norm){TK_NORM_REPLACE, a, b});
    }
    return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported", L->label, ty);
}

/* ---- pre-tokenizer ---- */
static hq_status tk_add_pre(tk_ld *L, tk_pre p) {
    tk_pre *np = hq_realloc(L->t->pre, (size_t)(L->t->n_pre + 1) * sizeof *np);
    if (!np) {
        hq_free(p.literal);
        return HQ_ERR_NOMEM;
    }
    L->t->pre = np;
    np[L->t->n_pre++] = p;
    return HQ_OK;
}

static hq_status tk_load_pre(tk_ld *L, const cJSON *n, int depth) {
    if (!n || cJSON_IsNull(n)) return HQ_OK;
    const char *ty = tk_type(n);
    if (!ty) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: pre_tokenizer without a type", L->label);
    if (depth > 8) return hq_fail(L->err, HQ_ERR_LIMIT, "%s: pre_tokenizer Sequences nested too deeply", L->label);
    tk_pre p;
    memset(&p, 0, sizeof p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: pre_tokenizer Sequence without a list", L->label);
        for (const cJSON *e = arr->child; e; e = e->next) {
            hq_status st = tk_load_pre(L, e, depth + 1);
            if (st) return st;
        }
        return HQ_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        p.kind = TK_PRE_BYTELEVEL;
        p.add_prefix_space = tk_bool(n, "add_prefix_space", true);
        p.use_regex = tk_bool(n, "use_regex", true);
        return tk_add_pre(L, p);
    }
    if (!strcmp(ty, "Digits")) {
        p.kind = TK_PRE_DIGITS;
        p.individual = tk_bool(n, "individual_digits", false);
        return tk_add_pre(L, p);
    }
    if (!strcmp(ty, "Metaspace")) {
        p.kind = TK_PRE_METASPACE;
        const char *r = tk_str(n, "replacement");
        if (!r) r = "\xe2\x96\x81";
        uint32_t cp0;
        if (!*r || strlen(r) > 4 || rt_utf8_validate((const uint8_t *)r, strlen(r)) != strlen(r) ||
            (size_t)rt_utf8_dec((const uint8_t *)r, strlen(r), &cp0) != strlen(r))
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: Metaspace replacement must be one character", L->label);
        memcpy(p.repl, r, strlen(r) + 1);
        const char *sc = tk_str(n, "prepend_scheme");
        if (!sc) p.scheme = tk_bool(n, "add_prefix_space", true) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
        else if (!strcmp(sc, "always")) p.scheme = TK_PREPEND_ALWAYS;
        else if (!strcmp(sc, "first")) p.scheme = TK_PREPEND_FIRST;
        else if (!strcmp(sc, "never")) p.scheme = TK_PREPEND_NEVER;
        else return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%s'", L->label, sc);
        p.split = tk_bool(n, "split", true);
        return tk_add_pre(L, p);
    }
    if (!strcmp(ty, "Split")) {
        p.kind = TK_PRE_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *re = tk_str(pat, "Regex"), *lit = tk_str(pat, "String");
        if (re) {
            if (!strcmp(re, TK_RE_GPT2_PAT)) p.re = TK_RE_GPT2;
            else if (!strcmp(re, TK_RE_LLAMA3_PAT("{1,3}"))) p.re = TK_RE_LLAMA3, p.max_digits = 3;
            else if (!strcmp(re, TK_RE_LLAMA3_PAT(""))) p.re = TK_RE_LLAMA3, p.max_digits = 1;
            else
                return hq_fail(L->err, HQ_ERR_UNSUPPORTED,
                               "%s: Split pre_tokenizer regex '%.120s' is not supported (only the GPT-2, Llama-3 and "
                               "Qwen2 patterns)",
                               L->label, re);
        } else if (lit) {
            if (!*lit) return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Split pre_tokenizer with an empty pattern", L->label);
            p.re = TK_RE_LITERAL;
            if (!(p.literal = hq_strdup(lit))) return HQ_ERR_NOMEM;
        } else {
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: Split pre_tokenizer without a pattern", L->label);
        }
        const char *bh = tk_str(n, "behavior");
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int k = 0;
        while (k < 5 && !(bh && !strcmp(bh, names[k]))) k++;
        if (k == 5) {
            hq_free(p.literal);
            return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Split behavior '%s'", L->label, bh ? bh : "?");
        }
        p.behavior = (tk_behavior)k;
        p.invert = tk_bool(n, "invert", false);
        return tk_add_pre(L, p);
    }
    return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported", L->label, ty);
}

/* ---- added tokens (HF AddedVocabulary::add_tokens + refresh_added_tokens) ---- */
static hq_status tk_load_added(tk_ld *L, const cJSON *arr) {
    rt_tokenizer *t = L->t;
    if (!arr || cJSON_IsNull(arr)) return HQ_OK;
    if (!cJSON_IsArray(arr)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: added_tokens is not a list", L->label);
    int n = cJSON_GetArraySize(arr);
    t->added = hq_calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return HQ_ERR_NOMEM;
    int32_t model_size = (int32_t)t->bpe.vocab.n, max_added = -1;
    for (const cJSON *e = arr->child; e; e = e->next) {
        const char *c = tk_str(e, "content");
        int32_t jid;
        if (!c || !tk_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &jid))
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: added token without content or id", L->label);
        tk_added a = {0};
        a.single_word = tk_bool(e, "single_word", false);
        a.lstrip = tk_bool(e, "lstrip", false);
        a.rstrip = tk_bool(e, "rstrip", false);
        a.special = tk_bool(e, "special", false);
        a.normalized = tk_bool(e, "normalized", !a.special);
        if (!*c) continue; /* HF ignores empty tokens */
        bool dup = false;
        for (int k = 0; k < t->n_added; k++) dup = dup || !strcmp(t->added[k].content, c);
        if (dup) /* re-adding changes flags in HF; refuse rather than guess */
            return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: added token '%.64s' listed twice", L->label, c);
        /* HF ignores the stored id: an existing token keeps its id, a new one
         * gets the next id after the model vocab / previous added tokens */
        int32_t id = tk_map_get(&t->bpe.vocab, c, strlen(c));
        if (id < 0) id = max_added < 0 ? model_size : (max_added >= model_size || model_size == 0) ? max_added + 1 : model_size;
        if (id > max_added) max_added = id;
        if (!(a.content = hq_strdup(c))) return HQ_ERR_NOMEM;
        a.len = (uint32_t)strlen(c);
        a.id = id;
        t->added[t->n_added++] = a;
        if (id + 1 > t->n_vocab) t->n_vocab = id + 1;
    }
    /* normalized tokens are matched by their normalized content */
    tk_plist pl = {0};
    for (int k = 0; k < t->n_added; k++) {
        tk_added *a = &t->added[k];
        if (!a->normalized || !t->n_norm) continue;
        hq_status st = tk_normalize(t->norm, t->n_norm, a->content, a->len, &pl);
        if (st) {
            tk_plist_free(&pl);
            return st;
        }
        char *nc = hq_strndup(pl.buf ? pl.buf : "", pl.len);
        if (!nc) {
            tk_plist_free(&pl);
            return HQ_ERR_NOMEM;
        }
        hq_free(a->content);
        a->content = nc;
        a->len = (uint32_t)pl.len;
    }
    tk_plist_free(&pl);
    /* matching order: special tokens first, then the others (HF chains
     * special_tokens and added_tokens); grouped by first byte */
    for (int set = 0; set < 2; set++) {
        t->set_order[set] = hq_malloc_array((size_t)t->n_added + 1, sizeof(int));
        if (!t->set_order[set]) return HQ_ERR_NOMEM;
        int cnt[257] = {0}, m = 0;
        for (int k = 0; k < t->n_added; k++)
            if (t->added[k].normalized == (set == 1) && t->added[k].len) cnt[(uint8_t)t->added[k].content[0]]++;
        t->set_first[set][0] = 0;
        for (int b = 0; b < 256; b++) t->set_first[set][b + 1] = t->set_first[set][b] + cnt[b];
        int fill[256];
        for (int b = 0; b < 256; b++) fill[b] = t->set_first[set][b];
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < t->n_added; k++) {
                tk_added *a = &t->added[k];
                if (a->normalized != (set == 1) || !a->len || a->special != (pass == 0)) continue;
                t->set_order[set][fill[(uint8_t)a->content[0]]++] = k;
                m++;
            }
        (void)m;
    }
    return HQ_OK;
}

/* ---- post-processor ---- */
static hq_status tk_push_ids(int32_t **v, int *n, const int32_t *ids, int k, bool front) {
    int32_t *nv = hq_realloc(*v, (size_t)(*n + k + 1) * sizeof *nv);
    if (!nv) return HQ_ERR_NOMEM;
    if (front) {
        memmove(nv + k, nv, (size_t)*n * sizeof *nv);
        memcpy(nv, ids, (size_t)k * sizeof *nv);
    } else {
        memcpy(nv + *n, ids, (size_t)k * sizeof *nv);
    }
    *v = nv;
    *n += k;
    return HQ_OK;
}

static hq_status tk_load_post(tk_ld *L, const cJSON *n, int depth) {
    rt_tokenizer *t = L->t;
    if (!n || cJSON_IsNull(n)) return HQ_OK;
    const char *ty = tk_type(n);
    if (!ty) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: post_processor without a type", L->label);
    if (depth > 8) return hq_fail(L->err, HQ_ERR_LIMIT, "%s: post_processor Sequences nested too deeply", L->label);
    if (!strcmp(ty, "ByteLevel")) return HQ_OK; /* offsets only */
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "processors");
        if (!cJSON_IsArray(arr)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: post_processor Sequence without a list", L->label);
        for (const cJSON *e = arr->child; e; e = e->next) {
            hq_status st = tk_load_post(L, e, depth + 1);
            if (st) return st;
        }
        return HQ_OK;
    }
    int32_t pre[64], suf[64];
    int npre = 0, nsuf = 0;
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(n, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(n, "sep");
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !tk_id(cJSON_GetArrayItem(cls, 1), &pre[0]) ||
            !tk_id(cJSON_GetArrayItem(sep, 1), &suf[0]))
            return hq_fail(L->err, HQ_ERR_FORMAT, "%s: %s without cls/sep [token, id]", L->label, ty);
        npre = nsuf = 1;
    } else if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(n, "special_tokens");
        if (!cJSON_IsArray(single)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: TemplateProcessing without 'single'", L->label);
        bool seen_a = false;
        for (const cJSON *e = single->child; e; e = e->next) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (seq) {
                const char *sid = tk_str(seq, "id");
                if (!sid || strcmp(sid, "A") != 0 || seen_a)
                    return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: TemplateProcessing single template must use $A once",
                                   L->label);
                seen_a = true;
                continue;
            }
            const char *name = tk_str(tok, "id");
            const cJSON *ent = name ? cJSON_GetObjectItemCaseSensitive(sp, name) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ent, "ids");
            if (!cJSON_IsArray(ids))
                return hq_fail(L->err, HQ_ERR_FORMAT, "%s: TemplateProcessing token '%.64s' has no ids", L->label,
                               name ? name : "?");
            for (const cJSON *x = ids->child; x; x = x->next) {
                int32_t id;
                if (!tk_id(x, &id) || npre >= 64 || nsuf >= 64)
                    return hq_fail(L->err, HQ_ERR_FORMAT, "%s: TemplateProcessing token '%.64s' has a bad id", L->label, name);
                if (seen_a) suf[nsuf++] = id;
                else pre[npre++] = id;
            }
        }
        if (!seen_a) return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: TemplateProcessing single template lacks $A", L->label);
    } else {
        return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: post_processor '%s' is not supported", L->label, ty);
    }
    for (int k = 0; k < npre; k++)
        if (pre[k] >= t->n_vocab) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: post_processor id %d beyond the vocab", L->label, pre[k]);
    for (int k = 0; k < nsuf; k++)
        if (suf[k] >= t->n_vocab) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: post_processor id %d beyond the vocab", L->label, suf[k]);
    /* processors run in sequence: a later one wraps the earlier output */
    hq_status st = tk_push_ids(&t->post_pre, &t->n_post_pre, pre, npre, true);
    return st ? st : tk_push_ids(&t->post_suf, &t->n_post_suf, suf, nsuf, false);
}

/* ---- decoder (for rt_token_to_piece) ---- */
static hq_status tk_load_dec(tk_ld *L, const cJSON *n, int depth) {
    rt_tokenizer *t = L->t;
    if (!n || cJSON_IsNull(n)) return HQ_OK;
    const char *ty = tk_type(n);
    if (!ty) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: decoder without a type", L->label);
    if (depth > 8) return hq_fail(L->err, HQ_ERR_LIMIT, "%s: decoder Sequences nested too deeply", L->label);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "decoders");
        if (!cJSON_IsArray(arr)) return hq_fail(L->err, HQ_ERR_FORMAT, "%s: decoder Sequence without a list", L->label);
        for (const cJSON *e = arr->child; e; e = e->next) {
            hq_status st = tk_load_dec(L, e, depth + 1);
            if (st) return st;
        }
        return HQ_OK;
    }
    if (!strcmp(ty, "ByteLevel")) t->dec_bytelevel = true;
    else if (!strcmp(ty, "ByteFallback")) t->dec_bytefallback = true;
    else if (!strcmp(ty, "Metaspace")) t->dec_space = true;
    else if (!strcmp(ty, "Fuse") || !strcmp(ty, "Strip")) { /* whole-sequence steps: not per piece */ }
    else if (!strcmp(ty, "Replace")) {
        const char *pat = tk_str(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String"), *c = tk_str(n, "content");
        if (!pat || !c || strcmp(pat, "\xe2\x96\x81") != 0 || strcmp(c, " ") != 0)
            return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: Replace decoder other than '\xe2\x96\x81' -> ' '", L->label);
        t->dec_space = true;
    } else {
        return hq_fail(L->err, HQ_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported", L->label, ty);
    }
    return HQ_OK;
}

static int32_t tk_find_special(const rt_tokenizer *t, const char *const *names) {
    for (int j = 0; names[j]; j++)
        for (int k = 0; k < t->n_added; k++)
            if (t->added[k].special && !strcmp(t->added[k].content, names[j])) return t->added[k].id;
    return -1;
}

hq_status rt_tokenizer_load(const char *json, uint64_t len, const char *label, rt_tokenizer **out, char *err) {
    *out = NULL;
    if (!label) label = "tokenizer.json";
    if (len > HQ_MAX_TOKENIZER_JSON) return hq_fail(err, HQ_ERR_LIMIT, "%s: %llu bytes exceeds the JSON limit", label, (unsigned long long)len);
    cJSON *root = cJSON_ParseWithLength(json, (size_t)len);
    if (!root) return hq_fail(err, HQ_ERR_FORMAT, "%s: not valid JSON", label);
    rt_tokenizer *t = hq_calloc(1, sizeof *t);
    tk_ld L = {t, label, err};
    hq_status st = HQ_OK;
    if (!t) {
        cJSON_Delete(root);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", label);
    }
    if (!(t->label = hq_strdup(label))) { st = HQ_ERR_NOMEM; goto fail; }
    if (!cJSON_IsObject(root)) { st = hq_fail(err, HQ_ERR_FORMAT, "%s: top level is not an object", label); goto fail; }
    if (!tk_null(root, "truncation") || !tk_null(root, "padding")) {
        st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: truncation/padding in tokenizer.json is not supported", label);
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) { st = hq_fail(err, HQ_ERR_FORMAT, "%s: no 'model' object", label); goto fail; }
    if ((st = tk_load_model(&L, model))) goto fail;
    if ((st = tk_load_norm(&L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0))) goto fail;
    if ((st = tk_load_pre(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0))) goto fail;
    if ((st = tk_load_added(&L, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")))) goto fail;
    if ((st = tk_load_post(&L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0))) goto fail;
    if ((st = tk_load_dec(&L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0))) goto fail;
    /* id -> text */
    t->id_str = hq_calloc((size_t)t->n_vocab + 1, sizeof *t->id_str);
    t->id_len = hq_calloc((size_t)t->n_vocab + 1, sizeof *t->id_len);
    t->id_added = hq_calloc((size_t)t->n_vocab + 1, sizeof *t->id_added);
    if (!t->id_str || !t->id_len || !t->id_added) { st = HQ_ERR_NOMEM; goto fail; }
    for (uint64_t k = 0; k < t->bpe.vocab.cap; k++) {
        const tk_kv *e = &t->bpe.vocab.e[k];
        if (e->s && (!t->id_str[e->val] || strcmp(e->s, t->id_str[e->val]) < 0)) { /* deterministic on duplicate ids */
            t->id_str[e->val] = e->s;
            t->id_len[e->val] = e->len;
        }
    }
    for (int k = 0; k < t->n_added; k++) { /* HF decodes an added token from its (normalized) content */
        const tk_added *a = &t->added[k];
        t->id_str[a->id] = a->content;
        t->id_len[a->id] = a->len;
        t->id_added[a->id] = true;
    }
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", NULL};
    t->bos = t->n_post_pre ? t->post_pre[t->n_post_pre - 1] : tk_find_special(t, bos_names);
    t->eos = t->n_post_suf ? t->post_suf[0] : tk_find_special(t, eos_names);
    cJSON_Delete(root);
    *out = t;
    return HQ_OK;
fail:
    cJSON_Delete(root);
    rt_tokenizer_free(t);
    /* the loaders return HQ_ERR_NOMEM without a message */
    return st == HQ_ERR_NOMEM ? hq_fail(err, st, "%s: out of memory", label) : st;
}

void rt_tokenizer_free(rt_tokenizer *t) {
    if (!t) return;
    hq_free(t->id_str);
    hq_free(t->id_len);
    hq_free(t->id_added);
    tk_map_free(&t->bpe.vocab);
    tk_pairmap_free(&t->bpe.merges);
    hq_free(t->bpe.cont_prefix);
    hq_free(t->bpe.eow_suffix);
    hq_free(t->pool);
    for (int k = 0; k < t->n_added; k++) hq_free(t->added[k].content);
    hq_free(t->added);
    hq_free(t->set_order[0]);
    hq_free(t->set_order[1]);
    for (int k = 0; k < t->n_norm; k++) {
        hq_free(t->norm[k].a);
        hq_free(t->norm[k].b);
    }
    hq_free(t->norm);
    for (int k = 0; k < t->n_pre; k++) hq_free(t->pre[k].literal);
    hq_free(t->pre);
    hq_free(t->post_pre);
    hq_free(t->post_suf);
    hq_free(t->label);
    hq_free(t);
}
