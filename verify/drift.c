/* verify/drift.c — the side-by-side runner behind `hyquant verify` (see
 * verify.h). Per chunk: the base model runs first (recording its hidden
 * states after every sub-block and its expert ids through rt_hooks), then the
 * quantized model runs on the same tokens with hooks that compare against the
 * recording; then every scored position feeds stats.c. */
#include "verify.h" // defines: vf_run, vf_result_free
#include "../runtime/logits_file.h"
#include "../runtime/ppl.h"
#include "../runtime/runtime.h"
#include "../core/limits.h"
#include "../cuda/backend.h"
#include "../quant/quant.h"
#include "../formats/schema.h" // defines: fmt_schema_get, FMT_T_TOKEN_EMBD

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- hidden-state / routing recording and comparison ---- */
typedef struct {
    int64_t L, d, ctx;
    float *hb;            /* L × 2 × ctx × d: base residual stream after mixer / ffn */
    int32_t **ids;        /* per layer: ctx × kt expert ids of the base */
    int64_t *kt;
    int32_t *scr;         /* 2 × max kt, sorting scratch */
    int64_t scr_n;
    double *sum_err, *sum_cos, *max_err; /* L × 2 */
    uint64_t *n_tok;                     /* L × 2 */
    uint64_t *r_tok, *r_changed;         /* L */
    double *r_jacc;                      /* L */
    bool failed;
    char err[HQ_ERR_LEN];
} drift_ctx;

static int64_t slot_of(int32_t layer, const char *where) { return (int64_t)layer * 2 + (where[0] == 'f' ? 1 : 0); }

static void rec_hidden(void *ud, int32_t layer, const char *where, const float *h, int64_t n, int64_t d) {
    drift_ctx *x = ud;
    if (layer < 0 || layer >= x->L || d != x->d || n > x->ctx) return;
    memcpy(x->hb + slot_of(layer, where) * x->ctx * x->d, h, (size_t)(n * d) * sizeof(float));
}

static void cmp_hidden(void *ud, int32_t layer, const char *where, const float *h, int64_t n, int64_t d) {
    drift_ctx *x = ud;
    if (layer < 0 || layer >= x->L || d != x->d || n > x->ctx) return;
    int64_t s = slot_of(layer, where);
    const float *b = x->hb + s * x->ctx * x->d;
    for (int64_t t = 0; t < n; t++) {
        const float *q = h + t * d, *bb = b + t * d;
        double dd = 0, nb = 0, nq = 0, dot = 0;
        for (int64_t i = 0; i < d; i++) {
            double e = (double)q[i] - (double)bb[i];
            dd += e * e;
            nb += (double)bb[i] * bb[i];
            nq += (double)q[i] * q[i];
            dot += (double)q[i] * bb[i];
        }
        /* e_t = ‖h_q − h_b‖/‖h_b‖, cos_t = h_q·h_b/(‖h_q‖‖h_b‖) */
        double e = nb > 0 ? sqrt(dd / nb) : (dd > 0 ? 1.0 : 0.0);
        double c = nb > 0 && nq > 0 ? dot / sqrt(nb * nq) : (nb == nq ? 1.0 : 0.0);
        x->sum_err[s] += e;
        x->sum_cos[s] += c;
        if (e > x->max_err[s]) x->max_err[s] = e;
        x->n_tok[s]++;
    }
}

static void rec_experts(void *ud, int32_t layer, const char *wname, const int32_t *ids, int64_t kt, const float *xin,
                        int64_t n, int64_t n_in) {
    (void)wname, (void)xin, (void)n_in;
    drift_ctx *x = ud;
    if (layer < 0 || layer >= x->L || n > x->ctx || kt < 1 || x->failed) return;
    if (!x->ids[layer] || x->kt[layer] != kt) {
        hq_free(x->ids[layer]);
        x->ids[layer] = hq_malloc_array((size_t)(x->ctx * kt), sizeof(int32_t));
        x->kt[layer] = kt;
        if (!x->ids[layer]) {
            x->failed = true;
            hq_fail(x->err, HQ_ERR_NOMEM, "out of memory for the expert ids of layer %d", layer);
            return;
        }
    }
    if (2 * kt > x->scr_n) {
        hq_free(x->scr);
        x->scr = hq_malloc_array((size_t)(2 * kt), sizeof(int32_t));
        x->scr_n = x->scr ? 2 * kt : 0;
        if (!x->scr) {
            x->failed = true;
            hq_fail(x->err, HQ_ERR_NOMEM, "out of memory for routing scratch");
            return;
        }
    }
    memcpy(x->ids[layer], ids, (size_t)(n * kt) * sizeof(int32_t));
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* sorts and removes duplicates; returns the set size */
static int64_t as_set(int32_t *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, cmp_i32);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
    return m;
}

static void cmp_experts(void *ud, int32_t layer, const char *wname, const int32_t *ids, int64_t kt, const float *xin,
                        int64_t n, int64_t n_in) {
    (void)wname, (void)xin, (void)n_in;
    drift_ctx *x = ud;
    if (layer < 0 || layer >= x->L || n > x->ctx || !x->ids[layer] || x->kt[layer] != kt || !x->scr) return;
    for (int64_t t = 0; t < n; t++) {
        int32_t *a = x->scr, *b = x->scr + kt;
        memcpy(a, x->ids[layer] + t * kt, (size_t)kt * sizeof(int32_t));
        memcpy(b, ids + t * kt, (size_t)kt * sizeof(int32_t));
        int64_t na = as_set(a, kt), nb = as_set(b, kt), inter = 0;
        for (int64_t i = 0, j = 0; i < na && j < nb;) {
            if (a[i] == b[j]) inter++, i++, j++;
            else if (a[i] < b[j]) i++;
            else j++;
        }
        int64_t uni = na + nb - inter;
        x->r_tok[layer]++;
        if (inter != na || inter != nb) x->r_changed[layer]++;
        x->r_jacc[layer] += uni > 0 ? (double)inter / (double)uni : 1.0;
    }
}

static void drift_free(drift_ctx *x) {
    if (x->ids)
        for (int64_t l = 0; l < x->L; l++) hq_free(x->ids[l]);
    hq_free(x->ids);
    hq_free(x->kt);
    hq_free(x->scr);
    hq_free(x->hb);
    hq_free(x->sum_err);
    hq_free(x->sum_cos);
    hq_free(x->max_err);
    hq_free(x->n_tok);
    hq_free(x->r_tok);
    hq_free(x->r_changed);
    hq_free(x->r_jacc);
}

static hq_status drift_init(drift_ctx *x, int64_t L, int64_t d, int64_t ctx, char *err) {
    memset(x, 0, sizeof *x);
    x->L = L;
    x->d = d;
    x->ctx = ctx;
    uint64_t nh;
    if (!hq_mul_u64((uint64_t)L * 2, (uint64_t)ctx, &nh) || !hq_mul_u64(nh, (uint64_t)d, &nh) ||
        nh > SIZE_MAX / sizeof(float))
        return hq_fail(err, HQ_ERR_LIMIT, "hidden-state buffer of %lld layers × %lld tokens × %lld overflows",
                       (long long)L, (long long)ctx, (long long)d);
    x->hb = hq_malloc_array((size_t)nh, sizeof(float));
    x->ids = hq_calloc((size_t)L, sizeof *x->ids);
    x->kt = hq_calloc((size_t)L, sizeof *x->kt);
    x->sum_err = hq_calloc((size_t)L * 2, sizeof(double));
    x->sum_cos = hq_calloc((size_t)L * 2, sizeof(double));
    x->max_err = hq_calloc((size_t)L * 2, sizeof(double));
    x->n_tok = hq_calloc((size_t)L * 2, sizeof(uint64_t));
    x->r_tok = hq_calloc((size_t)L, sizeof(uint64_t));
    x->r_changed = hq_calloc((size_t)L, sizeof(uint64_t));
    x->r_jacc = hq_calloc((size_t)L, sizeof(double));
    if (!x->hb || !x->ids || !x->kt || !x->sum_err || !x->sum_cos || !x->max_err || !x->n_tok || !x->r_tok ||
        !x->r_changed || !x->r_jacc) {
        char b[32];
        drift_free(x);
        return hq_fail(err, HQ_ERR_NOMEM, "out of memory for the base hidden states (%s; use fewer --ctx tokens)",
                       hq_fmt_bytes(nh * sizeof(float), b));
    }
    return HQ_OK;
}

/* h⁰ = Emb[token]: error of the embedding rows of one chunk's tokens,
 * decoded from both files (q_row_to_f32), accumulated per position */
typedef struct {
    const q_type_traits *tb, *tq;
    const uint8_t *db, *dq;
    uint64_t rb, rq;
    int64_t d, rows;
    float *xb, *xq;
    double sum_err, sum_cos;
    uint64_t n;
} embd_ctx;

static hq_status embd_init(embd_ctx *e, const fmt_gguf *gb, const fmt_gguf *gq, char *err) {
    memset(e, 0, sizeof *e);
    const fmt_gguf_tensor *b = fmt_gguf_find_tensor(gb, fmt_schema_get(FMT_T_TOKEN_EMBD)->name), *q = fmt_gguf_find_tensor(gq, fmt_schema_get(FMT_T_TOKEN_EMBD)->name);
    e->tb = b ? q_traits(b->type) : NULL;
    e->tq = q ? q_traits(q->type) : NULL;
    if (!e->tb || !e->tq || !q_row_can_to_f32(b->type) || !q_row_can_to_f32(q->type) || b->ne[0] % (uint64_t)e->tb->blck ||
        q->ne[0] % (uint64_t)e->tq->blck)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "token_embd.weight: cannot decode its rows");
    e->d = (int64_t)b->ne[0];
    e->rows = (int64_t)b->ne[1];
    e->rb = b->ne[0] / (uint64_t)e->tb->blck * e->tb->type_size;
    e->rq = q->ne[0] / (uint64_t)e->tq->blck * e->tq->type_size;
    if (e->rb * b->ne[1] > b->nbytes || e->rq * q->ne[1] > q->nbytes)
        return hq_fail(err, HQ_ERR_FORMAT, "token_embd.weight: data shorter than its shape");
    e->db = b->data;
    e->dq = q->data;
    e->xb = hq_malloc_array((size_t)e->d * 2, sizeof(float));
    if (!e->xb) return hq_fail(err, HQ_ERR_NOMEM, "out of memory for two embedding rows");
    e->xq = e->xb + e->d;
    return HQ_OK;
}

static void embd_add(embd_ctx *e, const int32_t *tok, int64_t n) {
    for (int64_t t = 0; t < n; t++) {
        if (tok[t] < 0 || tok[t] >= e->rows) continue;
        q_row_to_f32(e->tb->type, e->db + (uint64_t)tok[t] * e->rb, e->xb, e->d); /* quant.h */
        q_row_to_f32(e->tq->type, e->dq + (uint64_t)tok[t] * e->rq, e->xq, e->d);
        double dd = 0, nb = 0, nq = 0, dot = 0;
        for (int64_t i = 0; i < e->d; i++) {
            double df = (double)e->xq[i] - e->xb[i];
            dd += df * df, nb += (double)e->xb[i] * e->xb[i], nq += (double)e->xq[i] * e->xq[i];
            dot += (double)e->xq[i] * e->xb[i];
        }
        e->sum_err += nb > 0 ? sqrt(dd / nb) : (dd > 0 ? 1.0 : 0.0);
        e->sum_cos += nb > 0 && nq > 0 ? dot / sqrt(nb * nq) : (nb == nq ? 1.0 : 0.0);
        e->n++;
    }
}

/* ---- model checks ---- */
static void kv_str(const fmt_gguf *g, const char *key, char *out, size_t cap) {
    fmt_gguf_str s;
    if (fmt_gguf_get_str(g, key, &s)) snprintf(out, cap, "%.*s", (int)(s.len < cap ? s.len : cap - 1), s.s);
    else snprintf(out, cap, "?");
}

static hq_status check_pair(const fmt_gguf *gb, const fmt_gguf *gq, vf_result *r, char *err) {
    char ab[32], aq[32];
    kv_str(gb, "general.architecture", ab, sizeof ab);
    kv_str(gq, "general.architecture", aq, sizeof aq);
    if (strcmp(ab, aq) != 0)
        return hq_fail(err, HQ_ERR_MISMATCH, "%s is a '%s' model but %s is '%s'", fmt_gguf_label(gb), ab,
                       fmt_gguf_label(gq), aq);
    snprintf(r->arch, sizeof r->arch, "%s", ab);
    const fmt_gguf_tensor *eb = fmt_gguf_find_tensor(gb, fmt_schema_get(FMT_T_TOKEN_EMBD)->name);
    const fmt_gguf_tensor *eq = fmt_gguf_find_tensor(gq, fmt_schema_get(FMT_T_TOKEN_EMBD)->name);
    if (!eb || !eq)
        return hq_fail(err, HQ_ERR_FORMAT, "%s has no token_embd.weight", fmt_gguf_label(eb ? gq : gb));
    if (eb->ne[1] != eq->ne[1])
        return hq_fail(err, HQ_ERR_MISMATCH, "vocabularies differ: %s has %llu tokens, %s has %llu",
                       fmt_gguf_label(gb), (unsigned long long)eb->ne[1], fmt_gguf_label(gq),
                       (unsigned long long)eq->ne[1]);
    fmt_gguf_str tb, tq;
    bool hb = fmt_gguf_get_str(gb, "tokenizer.huggingface.json", &tb);
    bool hq = fmt_gguf_get_str(gq, "tokenizer.huggingface.json", &tq);
    if (!hb || !hq)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s has no embedded tokenizer (tokenizer.huggingface.json)",
                       fmt_gguf_label(hb ? gq : gb));
    if (tb.len != tq.len || memcmp(tb.s, tq.s, tb.len) != 0)
        return hq_fail(err, HQ_ERR_MISMATCH, "tokenizers differ: the tokenizer.json embedded in %s is not the one in %s",
                       fmt_gguf_label(gq), fmt_gguf_label(gb));
    uint32_t ft;
    if (fmt_gguf_get_u32(gb, "general.file_type", &ft)) snprintf(r->ftype_b, sizeof r->ftype_b, "%u", ft);
    if (fmt_gguf_get_u32(gq, "general.file_type", &ft)) snprintf(r->ftype_q, sizeof r->ftype_q, "%u", ft);
    return HQ_OK;
}

static int mixer_kind(const char *s) { return !strcmp(s, "ssd") || !strcmp(s, "mamba") ? VF_KIND_SSD : !strcmp(s, "attn") ? VF_KIND_ATTN : VF_KIND_OTHER; }
static int ffn_kind(const char *s) { return !strcmp(s, "mlp") ? VF_KIND_MLP : !strncmp(s, "cdmoe", 5) || !strcmp(s, "otce_moe") ? VF_KIND_EXPERTS : VF_KIND_OTHER; }

static void layer_names(const fmt_gguf *g, const char *arch, const char *what, int64_t l, char *out, size_t cap) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, what);
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(g, key);
    if (kv && kv->type == GGUF_VT_ARRAY && kv->v.arr.type == GGUF_VT_STRING && kv->v.arr.strs &&
        (uint64_t)l < kv->v.arr.n) {
        const fmt_gguf_str *s = &kv->v.arr.strs[l];
        snprintf(out, cap, "%.*s", (int)(s->len < cap ? s->len : cap - 1), s->s);
    } else {
        snprintf(out, cap, "?");
    }
}

/* ---- the run ---- */
typedef struct {
    fmt_gguf *gb, *gq;
    rt_model *mb, *mq;
    rt_state *sb, *sq;
    rt_logits_file lf;
    bool lf_open;
    rt_ppl_chunks ch;
    char *text;
    float *lgb, *lgq, *lpb, *lpq, *lpx;
    double *kld, *dp;
    drift_ctx dx;
    bool dx_init;
    embd_ctx em;
} run_state;

static void run_free(run_state *s) {
    if (s->dx_init) drift_free(&s->dx);
    hq_free(s->em.xb);
    hq_free(s->kld);
    hq_free(s->dp);
    hq_free(s->lgb);
    hq_free(s->lgq);
    hq_free(s->lpb);
    hq_free(s->lpq);
    hq_free(s->lpx);
    hq_free(s->text);
    rt_ppl_free(&s->ch);
    if (s->lf_open) rt_logits_close(&s->lf);
    rt_state_free(s->sb);
    rt_state_free(s->sq);
    rt_model_free(s->mb);
    rt_model_free(s->mq);
    fmt_gguf_close(s->gb);
    fmt_gguf_close(s->gq);
}

/* tokens from the saved base file, after checking it belongs to this run */
static hq_status tokens_from_file(const vf_opts *o, run_state *s, vf_result *r, char *err) {
    hq_status st = rt_logits_open(o->base_logits, &s->lf, err);
    if (st != HQ_OK) return st;
    s->lf_open = true;
    const rt_logits_header *h = &s->lf.h;
    const char *p = o->base_logits;
    if ((int64_t)h->n_vocab != r->n_vocab)
        return hq_fail(err, HQ_ERR_MISMATCH, "%s was saved from a model with %u tokens in its vocabulary, %s has %lld", p,
                       h->n_vocab, o->base, (long long)r->n_vocab);
    fmt_gguf_str tj;
    if (h->tokenizer_hash && fmt_gguf_get_str(s->gb, "tokenizer.huggingface.json", &tj) &&
        rt_fnv1a64(tj.s, tj.len) != h->tokenizer_hash)
        return hq_fail(err, HQ_ERR_MISMATCH, "%s was saved from a model with another tokenizer than %s", p, o->base);
    if (o->ctx > 0 && (int64_t)h->n_ctx != o->ctx)
        return hq_fail(err, HQ_ERR_MISMATCH, "%s was saved with --ctx %u, not --ctx %lld", p, h->n_ctx,
                       (long long)o->ctx);
    bool model_bos = rt_model_add_bos(s->mb) && rt_model_bos(s->mb) >= 0;
    if (((h->flags & 1u) != 0) != model_bos)
        return hq_fail(err, HQ_ERR_MISMATCH, "%s was saved %s BOS at chunk starts but %s %s one", p,
                       h->flags & 1u ? "with" : "without", o->base, model_bos ? "adds" : "does not add");
    if (o->text) {
        uint64_t len = 0;
        st = hq_read_file(o->text, HQ_MAX_TEXT, &s->text, &len, err);
        if (st != HQ_OK) return st;
        if (len == 0) return hq_fail(err, HQ_ERR_ARG, "%s: text file is empty", o->text);
        if (rt_fnv1a64(s->text, len) != h->text_hash)
            return hq_fail(err, HQ_ERR_MISMATCH, "%s was saved from another text than %s", p, o->text);
    }
    int64_t nc = h->n_chunks;
    if (o->chunks > 0 && o->chunks < nc) nc = o->chunks;
    uint64_t nt = (uint64_t)nc * h->n_ctx;
    s->ch.tokens = hq_malloc_array((size_t)nt, sizeof(int32_t));
    if (!s->ch.tokens) return hq_fail(err, HQ_ERR_NOMEM, "out of memory for %llu tokens", (unsigned long long)nt);
    memcpy(s->ch.tokens, s->lf.tokens, (size_t)nt * sizeof(int32_t));
    s->ch.ctx = h->n_ctx;
    s->ch.n_chunks = nc;
    s->ch.first = h->first;
    s->ch.n_scored = h->n_scored;
    s->ch.n_text_tokens = h->n_text_tokens;
    s->ch.use_bos = (h->flags & 1u) != 0;
    s->ch.bos = h->bos_id;
    return HQ_OK;
}

static hq_status tokens_from_text(const vf_opts *o, run_state *s, char *err) {
    if (!o->text) return hq_fail(err, HQ_ERR_ARG, "--text FILE is required (or --base-logits F)");
    uint64_t len = 0;
    hq_status st = hq_read_file(o->text, HQ_MAX_TEXT, &s->text, &len, err);
    if (st != HQ_OK) return st;
    return rt_ppl_prepare(s->mb, s->text, len, o->text, o->ctx > 0 ? o->ctx : 512, o->chunks, &s->ch, err);
}

static void finish_layers(vf_result *r, const drift_ctx *x, const embd_ctx *e) {
    r->err_embd = e->n ? e->sum_err / (double)e->n : 0;
    r->cos_embd = e->n ? e->sum_cos / (double)e->n : 1;
    r->kinds[VF_KIND_OTHER].n_layers = 1;
    r->kinds[VF_KIND_OTHER].sum_add = r->kinds[VF_KIND_OTHER].max_err = r->err_embd;
    double prev = r->err_embd;
    for (int64_t l = 0; l < r->n_layers; l++) {
        vf_layer *ly = &r->layers[l];
        uint64_t nm = x->n_tok[2 * l], nf = x->n_tok[2 * l + 1];
        ly->err_mixer = nm ? x->sum_err[2 * l] / (double)nm : 0;
        ly->cos_mixer = nm ? x->sum_cos[2 * l] / (double)nm : 1;
        ly->max_err_mixer = x->max_err[2 * l];
        ly->err_ffn = nf ? x->sum_err[2 * l + 1] / (double)nf : 0;
        ly->cos_ffn = nf ? x->sum_cos[2 * l + 1] / (double)nf : 1;
        ly->max_err_ffn = x->max_err[2 * l + 1];
        /* drift a sub-block adds = increase of the error across it */
        ly->add_mixer = ly->err_mixer - prev;
        ly->add_ffn = ly->err_ffn - ly->err_mixer;
        prev = ly->err_ffn;
        vf_kind_stats *km = &r->kinds[ly->mixer_kind], *kf = &r->kinds[ly->ffn_kind];
        km->n_layers++;
        km->sum_add += ly->add_mixer;
        if (ly->err_mixer > km->max_err) km->max_err = ly->err_mixer;
        kf->n_layers++;
        kf->sum_add += ly->add_ffn;
        if (ly->err_ffn > kf->max_err) kf->max_err = ly->err_ffn;
        if (x->r_tok[l]) {
            ly->has_routing = true;
            ly->route_tokens = x->r_tok[l];
            ly->route_changed = x->r_changed[l];
            ly->route_jaccard = x->r_jacc[l] / (double)x->r_tok[l];
            r->has_routing = true;
            r->route_tokens += x->r_tok[l];
            r->route_changed += x->r_changed[l];
            r->route_jaccard += x->r_jacc[l];
        }
    }
    if (r->route_tokens) r->route_jaccard /= (double)r->route_tokens;
}

hq_status vf_run(const vf_opts *o, vf_result *r, char *err) {
    memset(r, 0, sizeof *r);
    double t0 = hq_now();
    run_state s = {0};
    hq_status st;
#define TRY(x)                    \
    do {                          \
        if ((st = (x)) != HQ_OK) { \
            run_free(&s);         \
            vf_result_free(r);    \
            return st;            \
        }                         \
    } while (0)
    if (o->threads > 0) rt_set_threads(o->threads);
    r->threads = o->threads;
    TRY(fmt_gguf_open(o->base, &s.gb, err));
    TRY(fmt_gguf_open(o->quant, &s.gq, err));
    TRY(check_pair(s.gb, s.gq, r, err));
    TRY(vf_weight_errors(s.gb, s.gq, r, err));
    TRY(rt_model_load(o->base, &s.mb, err));
    TRY(rt_model_load(o->quant, &s.mq, err));
    rt_model_set_hf_prefill(s.mb, o->hf_prefill);
    rt_model_set_hf_prefill(s.mq, o->hf_prefill);
    r->hf_prefill = o->hf_prefill;
    snprintf(r->backend, sizeof r->backend, "cpu");
    if (o->backend && strcmp(o->backend, "cpu") != 0) {
        /* both models on the same backend, so the comparison is like for like */
        char note[256] = "";
        TRY(cu_backend_select(s.mb, o->backend, note, sizeof note, err));
        TRY(cu_backend_select(s.mq, o->backend, r->backend_note, sizeof r->backend_note, err));
        if (!r->backend_note[0]) snprintf(r->backend_note, sizeof r->backend_note, "%s", note);
        if (strcmp(cu_backend_name(s.mb), cu_backend_name(s.mq)) != 0)
            TRY(hq_fail(err, HQ_ERR_UNSUPPORTED, "--backend %s: %s runs on %s but %s on %s (%s)", o->backend, o->base,
                        cu_backend_name(s.mb), o->quant, cu_backend_name(s.mq), r->backend_note));
        snprintf(r->backend, sizeof r->backend, "%s", cu_backend_name(s.mq));
    }
    r->n_vocab = rt_model_n_vocab(s.mb);
    r->n_layers = rt_model_n_layers(s.mb);
    r->n_embd = rt_model_n_embd(s.mb);
    if (rt_model_n_vocab(s.mq) != r->n_vocab || rt_model_n_layers(s.mq) != r->n_layers ||
        rt_model_n_embd(s.mq) != r->n_embd)
        TRY(hq_fail(err, HQ_ERR_MISMATCH, "%s has %d layers × %d, vocabulary %d; %s has %d × %d, vocabulary %d",
                    o->base, rt_model_n_layers(s.mb), rt_model_n_embd(s.mb), rt_model_n_vocab(s.mb), o->quant,
                    rt_model_n_layers(s.mq), rt_model_n_embd(s.mq), rt_model_n_vocab(s.mq)));
    r->layers = hq_calloc((size_t)(r->n_layers > 0 ? r->n_layers : 1), sizeof *r->layers);
    if (!r->layers) TRY(hq_fail(err, HQ_ERR_NOMEM, "out of memory for %lld layer records", (long long)r->n_layers));
    for (int64_t l = 0; l < r->n_layers; l++) {
        vf_layer *ly = &r->layers[l];
        layer_names(s.gb, r->arch, "layer_mixers", l, ly->mixer, sizeof ly->mixer);
        layer_names(s.gb, r->arch, "layer_ffns", l, ly->ffn, sizeof ly->ffn);
        ly->mixer_kind = mixer_kind(ly->mixer);
        ly->ffn_kind = ffn_kind(ly->ffn);
    }
    r->base_from_file = o->base_logits != NULL;
    TRY(o->base_logits ? tokens_from_file(o, &s, r, err) : tokens_from_text(o, &s, err));
    const int64_t V = r->n_vocab, ctx = s.ch.ctx, first = s.ch.first, ns = s.ch.n_scored, nc = s.ch.n_chunks;
    r->ctx = ctx;
    r->n_chunks = nc;
    r->first = first;
    r->n_scored = ns;
    r->n_text_tokens = s.ch.n_text_tokens;
    r->use_bos = s.ch.use_bos;
    r->drift_chunks = o->base_logits ? 1 : nc;
    TRY(rt_state_new(s.mb, ctx, &s.sb, err));
    TRY(rt_state_new(s.mq, ctx, &s.sq, err));
    uint64_t n_tok = (uint64_t)nc * (uint64_t)ns;
    s.lgb = hq_malloc_array((size_t)(ns + 1), (size_t)V * sizeof(float));
    s.lgq = hq_malloc_array((size_t)(ns + 1), (size_t)V * sizeof(float));
    s.lpb = hq_malloc_array((size_t)V, sizeof(float));
    s.lpq = hq_malloc_array((size_t)V, sizeof(float));
    s.lpx = hq_malloc_array((size_t)V, sizeof(float));
    s.kld = hq_malloc_array((size_t)(n_tok ? n_tok : 1), sizeof(double));
    s.dp = hq_malloc_array((size_t)(n_tok ? n_tok : 1), sizeof(double));
    if (!s.lgb || !s.lgq || !s.lpb || !s.lpq || !s.lpx || !s.kld || !s.dp)
        TRY(hq_fail(err, HQ_ERR_NOMEM, "out of memory for the logits of %lld positions × %lld", (long long)(ns + 1),
                    (long long)V));
    TRY(drift_init(&s.dx, r->n_layers, r->n_embd, ctx, err));
    s.dx_init = true;
    TRY(embd_init(&s.em, s.gb, s.gq, err));
    const rt_hooks rec = {.ud = &s.dx, .on_hidden = rec_hidden, .on_experts = rec_experts};
    const rt_hooks cmp = {.ud = &s.dx, .on_hidden = cmp_hidden, .on_experts = cmp_experts};
    bool tty = isatty(2);
    double tr = hq_now(), t_last = tr;
    uint64_t k = 0;
    for (int64_t c = 0; c < nc; c++) {
        const int32_t *tk = s.ch.tokens + c * ctx;
        bool run_base = c < r->drift_chunks;
        if (run_base) {
            embd_add(&s.em, tk, ctx);
            rt_model_set_hooks(s.mb, &rec);
            rt_state_reset(s.sb);
            st = rt_forward_from(s.mb, s.sb, tk, ctx, first, s.lgb, err);
            rt_model_set_hooks(s.mb, NULL);
            if (st == HQ_OK && s.dx.failed) st = hq_fail(err, HQ_ERR_NOMEM, "%s", s.dx.err);
            TRY(st);
            rt_model_set_hooks(s.mq, &cmp);
        }
        rt_state_reset(s.sq);
        st = rt_forward_from(s.mq, s.sq, tk, ctx, first, s.lgq, err);
        rt_model_set_hooks(s.mq, NULL);
        TRY(st);
        for (int64_t j = 0; j < ns; j++, k++) {
            int32_t tok = tk[first + j + 1];
            const float *lb = s.lgb + j * V, *lq = s.lgq + j * V;
            double nll_b;
            int64_t top_b;
            if (o->base_logits) {
                rt_logits_row(&s.lf, (uint64_t)c * (uint64_t)ns + (uint64_t)j, s.lpb);
                nll_b = -(double)s.lpb[tok];
                top_b = vf_argmax(s.lpb, V);
                if (run_base) {
                    /* spot check: the file must hold this base model's log-probs
                     * (to its 16-bit precision) above the storage floor */
                    vf_log_softmax(lb, V, s.lpx);
                    float mx = s.lpx[vf_argmax(s.lpx, V)];
                    for (int64_t i = 0; i < V; i++)
                        if (s.lpx[i] > mx - 15.0f) {
                            double dd = fabs((double)s.lpx[i] - (double)s.lpb[i]);
                            if (dd > r->spot_check_max) r->spot_check_max = dd;
                        }
                }
            } else {
                top_b = vf_log_softmax(lb, V, s.lpb);
                nll_b = rt_nll_of(lb, V, tok);
            }
            int64_t top_q = vf_log_softmax(lq, V, s.lpq);
            double nll_q = rt_nll_of(lq, V, tok);
            vf_token(s.lpq, s.lpb, V, nll_q, nll_b, top_q, top_b, &r->acc, &s.kld[k], &s.dp[k]);
        }
        if (o->base_logits && c == 0 && r->spot_check_max > 2e-3)
            TRY(hq_fail(err, HQ_ERR_MISMATCH,
                        "%s was not saved from %s: its log-probs differ by up to %.3g on chunk 1 (another model?)",
                        o->base_logits, o->base, r->spot_check_max));
        /* a terminal redraws the line every chunk; a log gets one at most every 2 s */
        if (o->progress && (tty || c + 1 == nc || hq_now() - t_last >= 2.0)) {
            t_last = hq_now();
            double el = hq_now() - tr;
            const vf_acc *a = &r->acc;
            fprintf(stderr, "%s[%lld/%lld] PPL base %.4f quant %.4f  KLD %.6f  top-1 %.2f%%  (%.0f tok/s)%s", tty ? "\r" : "",
                    (long long)(c + 1), (long long)nc, exp(a->sum_nll_base / (double)a->count),
                    exp(a->sum_nll / (double)a->count), a->sum_kld / (double)a->count,
                    100.0 * (double)a->n_same_top / (double)a->count,
                    (double)((c + 1 + (c + 1 < r->drift_chunks ? c + 1 : r->drift_chunks)) * ctx) / (el > 0 ? el : 1e-9),
                    tty ? "" : "\n");
        }
    }
    if (o->progress && tty) fputc('\n', stderr);
    /* the saved file's exact Σ NLL (the perplexity command's own value) when
     * every chunk of it was used; the 16-bit rows only approximate it */
    if (o->base_logits && nc == (int64_t)s.lf.h.n_chunks) r->acc.sum_nll_base = s.lf.h.nll_sum;
    vf_summarize(&r->acc, s.kld, s.dp, &r->sum);
    finish_layers(r, &s.dx, &s.em);
    r->seconds = hq_now() - t0;
    run_free(&s);
    return HQ_OK;
#undef TRY
}

void vf_result_free(vf_result *r) {
    if (!r) return;
    hq_free(r->layers);
    hq_free(r->weights);
    memset(r, 0, sizeof *r);
}
