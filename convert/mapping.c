/* convert/mapping.c — layout detection (spec §3.6), source -> GGUF names
 * (docs/gguf-schema.md) and shape validation against config.json (spec §2,
 * §3, §6). Works on tensor views only; no tensor data is read except to
 * decide whether an lm_head is a copy of the embedding. */
#include "convert.h" // defines: cv_plan_build, cv_plan_free, cv_*_name
#include "../core/half.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *cv_variant_name(cv_variant v) {
    static const char *const n[] = {"cheems", "doge-old", "doge-new", "doge-hf", "otce"};
    return (unsigned)v < 5 ? n[v] : "?";
}
const char *cv_variant_arch(cv_variant v) {
    return v == CV_VAR_CHEEMS ? "cheems" : v == CV_VAR_OTCE ? "otce" : "doge";
}
const char *cv_mixer_name(cv_mixer m) {
    static const char *const n[] = {"ssd", "attn", "mamba"};
    return (unsigned)m < 3 ? n[m] : "?";
}
const char *cv_ffn_name(cv_ffn f) {
    static const char *const n[] = {"mlp", "cdmoe_pk", "cdmoe_router", "otce_moe"};
    return (unsigned)f < 4 ? n[f] : "?";
}
const char *cv_cat_name(cv_cat c) {
    static const char *const n[] = {"ssd", "attention", "mlp", "experts", "other"};
    return (unsigned)c < CV_CAT_COUNT ? n[c] : "?";
}

cv_cat cv_cat_of_gguf_name(const char *name) {
    if (strncmp(name, "blk.", 4)) return CV_CAT_OTHER;
    const char *s = strchr(name + 4, '.');
    if (!s) return CV_CAT_OTHER;
    s++;
    if (!strncmp(s, "ssm_", 4) || !strncmp(s, "mamba.", 6)) return CV_CAT_SSD;
    if (!strncmp(s, "attn_norm", 9) || !strncmp(s, "attn_residual", 13)) return CV_CAT_OTHER;
    if (!strncmp(s, "attn_", 5) || !strncmp(s, "self_attn", 9) || !strncmp(s, "self_attention", 14))
        return CV_CAT_ATTN;
    if (!strncmp(s, "ffn_gate_inp", 12) || !strncmp(s, "ffn_pk_", 7) || !strncmp(s, "ffn_expert_", 11) ||
        !strncmp(s, "feed_forward.experts.", 21) || !strncmp(s, "feed_forward.router", 19))
        return CV_CAT_EXPERTS;
    if (!strncmp(s, "ffn_norm", 8) || !strncmp(s, "ffn_residual", 12)) return CV_CAT_OTHER;
    if (!strncmp(s, "ffn_", 4) || !strncmp(s, "feed_forward.", 13)) return CV_CAT_MLP;
    return CV_CAT_OTHER;
}

/* ---- build context ---- */
typedef struct {
    const fmt_tensor *ts;
    uint64_t n;
    uint64_t *order; /* indices sorted by name */
    bool *used;
    cv_plan *p;
    uint64_t cap;
    const char *label;
    char *err;
} cv_ctx;

/* qsort has no context argument: sort (name, index) pairs instead of
 * indices into a table a global would have to name */
typedef struct {
    const char *name;
    uint64_t i;
} name_idx;
static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* first position in order whose name is >= key */
static uint64_t lower_bound(const cv_ctx *c, const char *key) {
    uint64_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->ts[c->order[mid]].name, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}
static int64_t find(const cv_ctx *c, const char *name) {
    uint64_t i = lower_bound(c, name);
    return i < c->n && !strcmp(c->ts[c->order[i]].name, name) ? (int64_t)c->order[i] : -1;
}
static bool has_prefix(const cv_ctx *c, const char *prefix) {
    uint64_t i = lower_bound(c, prefix);
    return i < c->n && !strncmp(c->ts[c->order[i]].name, prefix, strlen(prefix));
}
static bool any_contains(const cv_ctx *c, const char *sub) {
    for (uint64_t i = 0; i < c->n; i++)
        if (strstr(c->ts[i].name, sub)) return true;
    return false;
}
static const char *fmt_name(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *fmt_name(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}
static const char *shape_str(char *buf, size_t cap, int nd, const int64_t *sh) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < nd && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)sh[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static bool is_float_dtype(hq_dtype t) { return t == HQ_DT_F32 || t == HQ_DT_F16 || t == HQ_DT_BF16 || t == HQ_DT_F64; }

/* Maps source tensor `src` to GGUF `dst`. exp (PyTorch order, nd dims) is
 * the shape the config implies; -1 entries accept any size. Sets *got to
 * the source when found; a missing tensor is an error only when required. */
static hq_status take(cv_ctx *c, const char *src, const char *dst, bool required, int nd, const int64_t *exp,
                      cv_cat cat, bool keep_f32, cv_xform xf, const fmt_tensor **got) {
    if (got) *got = NULL;
    int64_t i = find(c, src);
    if (i < 0) {
        if (required) return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: missing tensor '%s'", c->label, src);
        return HQ_OK;
    }
    const fmt_tensor *t = &c->ts[i];
    if (c->used[i]) return hq_fail(c->err, HQ_ERR_INTERNAL, "%s: tensor '%s' mapped twice", c->label, src);
    if (!is_float_dtype(t->dtype))
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; expected F32, F16 or BF16", c->label,
                       src, hq_dtype_name(t->dtype));
    bool ok = t->ndim == nd;
    for (int k = 0; ok && k < nd; k++)
        if (exp[k] >= 0 && t->shape[k] != exp[k]) ok = false;
    if (!ok) {
        char a[128], b[128];
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: tensor '%s' has shape %s but config says %s", c->label, src,
                       shape_str(a, sizeof a, t->ndim, t->shape), shape_str(b, sizeof b, nd, exp));
    }
    if (nd < 1 || nd > 4)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dims; GGUF allows 1 to 4", c->label, src,
                       nd);
    if (strlen(dst) > HQ_MAX_GGUF_NAME)
        return hq_fail(c->err, HQ_ERR_LIMIT, "%s: GGUF name '%s' for tensor '%s' is longer than %d bytes", c->label,
                       dst, src, HQ_MAX_GGUF_NAME);
    for (int k = 0; k < nd; k++)
        if (t->shape[k] <= 0)
            return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has an empty dimension", c->label, src);
    cv_plan *p = c->p;
    cv_tensor *nt = hq_grow(p->tensors, &c->cap, p->n_tensors, sizeof *nt, 64);
    if (!nt) return hq_fail(c->err, HQ_ERR_NOMEM, "%s: out of memory", c->label);
    p->tensors = nt;
    cv_tensor *o = &p->tensors[p->n_tensors++];
    memset(o, 0, sizeof *o);
    strcpy(o->name, dst);
    o->src = t;
    o->xform = xf;
    o->n_dims = (uint32_t)nd;
    for (int k = 0; k < 4; k++) o->ne[k] = k < nd ? (uint64_t)t->shape[nd - 1 - k] : 1;
    o->keep_f32 = keep_f32 || nd == 1;
    o->cat = cat;
    c->used[i] = true;
    if (got) *got = t;
    return HQ_OK;
}

#define TRY(x)                                                                                                       \
    do {                                                                                                             \
        hq_status st_ = (x);                                                                                         \
        if (st_ != HQ_OK) return st_;                                                                                \
    } while (0)

/* shorthand: 1-D and 2-D expectations */
static hq_status take1(cv_ctx *c, const char *src, const char *dst, bool req, int64_t n0, cv_cat cat) {
    int64_t e[1] = {n0};
    return take(c, src, dst, req, 1, e, cat, true, CV_X_COPY, NULL);
}
static hq_status take2(cv_ctx *c, const char *src, const char *dst, bool req, int64_t n0, int64_t n1, cv_cat cat,
                       bool keep_f32) {
    int64_t e[2] = {n0, n1};
    return take(c, src, dst, req, 2, e, cat, keep_f32, CV_X_COPY, NULL);
}

/* a Linear `<sp>.weight [out, in]` (+ `<sp>.bias [out]`, required iff bias) */
static hq_status take_linear(cv_ctx *c, const char *sp, const char *gp, int64_t out, int64_t in, bool bias, cv_cat cat,
                             bool keep_f32) {
    char s[HQ_MAX_NAME + 16], g[96];
    TRY(take2(c, fmt_name(s, sizeof s, "%s.weight", sp), fmt_name(g, sizeof g, "%s.weight", gp), true, out, in, cat,
              keep_f32));
    return take1(c, fmt_name(s, sizeof s, "%s.bias", sp), fmt_name(g, sizeof g, "%s.bias", gp), bias, out, cat);
}

/* Value of element (row r, col j) of a float 2-D view, as f32. */
static float elem_f32(const fmt_tensor *t, int64_t r, int64_t j) {
    int64_t e = t->offset + r * t->stride[0] + j * t->stride[1];
    const uint8_t *q = t->storage + (uint64_t)e * hq_dtype_size(t->dtype);
    switch (t->dtype) {
    case HQ_DT_F32: { float f; memcpy(&f, q, 4); return f; }
    case HQ_DT_F16: { uint16_t h; memcpy(&h, q, 2); return hq_f16_to_f32(h); }
    case HQ_DT_BF16: { uint16_t h; memcpy(&h, q, 2); return hq_bf16_to_f32(h); }
    case HQ_DT_F64: { double v; memcpy(&v, q, 8); return (float)v; }
    default: return NAN;
    }
}

/* lm_head is the embedding: same storage view, or bit-identical values */
static bool same_as_embedding(const fmt_tensor *a, const fmt_tensor *b) {
    if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return false;
    if (a->storage_id == b->storage_id && a->offset == b->offset && a->stride[0] == b->stride[0] &&
        a->stride[1] == b->stride[1] && a->dtype == b->dtype)
        return true;
    if (a->dtype == b->dtype && fmt_tensor_is_contiguous(a) && fmt_tensor_is_contiguous(b)) {
        uint64_t nb = fmt_tensor_nelem(a) * hq_dtype_size(a->dtype); /* validated by the reader */
        return !memcmp(a->storage + (uint64_t)a->offset * hq_dtype_size(a->dtype),
                       b->storage + (uint64_t)b->offset * hq_dtype_size(b->dtype), nb);
    }
    for (int64_t r = 0; r < a->shape[0]; r++)
        for (int64_t j = 0; j < a->shape[1]; j++) {
            float x = elem_f32(a, r, j), y = elem_f32(b, r, j);
            if (hq_f32_bits(x) != hq_f32_bits(y)) return false;
        }
    return true;
}

/* ---- per-layer pieces (Cheems / Doge) ---- */
static hq_status map_attn(cv_ctx *c, int64_t l, const char *ap, bool bias) {
    const cv_hparams *h = &c->p->hp;
    int64_t d = h->d, H = h->n_head, KV = h->n_kv, P = h->head_dim;
    char s[HQ_MAX_NAME + 16], g[96];
    const cv_cat A = CV_CAT_ATTN;
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sq_proj", ap), fmt_name(g, sizeof g, "blk.%lld.attn_q", (long long)l),
                    H * P, d, bias, A, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sk_proj", ap), fmt_name(g, sizeof g, "blk.%lld.attn_k", (long long)l),
                    KV * P, d, bias, A, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sv_proj", ap), fmt_name(g, sizeof g, "blk.%lld.attn_v", (long long)l),
                    KV * P, d, bias, A, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%so_proj", ap),
                    fmt_name(g, sizeof g, "blk.%lld.attn_output", (long long)l), d, H * P, bias, A, false));
    bool qn = find(c, fmt_name(s, sizeof s, "%sq_norm.weight", ap)) >= 0;
    bool kn = find(c, fmt_name(s, sizeof s, "%sk_norm.weight", ap)) >= 0;
    bool want_norm = qn || kn || c->p->variant == CV_VAR_DOGE_HF;
    TRY(take1(c, fmt_name(s, sizeof s, "%sq_norm.weight", ap),
              fmt_name(g, sizeof g, "blk.%lld.attn_q_norm.weight", (long long)l), want_norm, P, A));
    TRY(take1(c, fmt_name(s, sizeof s, "%sk_norm.weight", ap),
              fmt_name(g, sizeof g, "blk.%lld.attn_k_norm.weight", (long long)l), want_norm, P, A));
    /* A [M], dt_proj [M, KV*P]: M = H (per query head) or KV (per KV head), §3.6 item 3 */
    int64_t ai = find(c, fmt_name(s, sizeof s, "%sA", ap));
    if (ai < 0) return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: missing tensor '%s'", c->label, s);
    const fmt_tensor *ta = &c->ts[ai];
    if (ta->ndim != 1 || (ta->shape[0] != H && ta->shape[0] != KV)) {
        char a[128];
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: tensor '%s' has shape %s but config says [%lld] or [%lld]",
                       c->label, s, shape_str(a, sizeof a, ta->ndim, ta->shape), (long long)H, (long long)KV);
    }
    int64_t M = ta->shape[0];
    int64_t di = find(c, fmt_name(s, sizeof s, "%sdt_proj.weight", ap));
    if (di >= 0 && c->ts[di].ndim == 2 && c->ts[di].shape[1] != KV * P && KV != H)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has input size %lld, not KV*head_dim = %lld: pre-2025-01 DMAttn (hard "
                       "mask) is not supported",
                       c->label, s, (long long)c->ts[di].shape[1], (long long)(KV * P));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sdt_proj", ap), fmt_name(g, sizeof g, "blk.%lld.attn_dt", (long long)l),
                    M, KV * P, bias, A, true));
    return take1(c, fmt_name(s, sizeof s, "%sA", ap), fmt_name(g, sizeof g, "blk.%lld.attn_a", (long long)l), true, M,
                 A);
}

static hq_status map_ssd(cv_ctx *c, int64_t l, const char *pfx) {
    const cv_hparams *h = &c->p->hp;
    int64_t d = h->d, H = h->n_head, P = h->head_dim;
    bool bias = h->hidden_bias;
    char s[HQ_MAX_NAME + 16], g[96];
    const cv_cat S = CV_CAT_SSD;
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sssd.x_proj", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_x", (long long)l),
                    H * P, d, bias, S, false));
    /* B/C rows = ngroups*N: H*P in the model; groups sharing B/C (rows = G*P, G | H) per spec §6 item 2 */
    int64_t bi = find(c, fmt_name(s, sizeof s, "%sssd.b_proj.weight", pfx));
    int64_t gn = H * P;
    if (bi >= 0 && c->ts[bi].ndim == 2) {
        int64_t r = c->ts[bi].shape[0];
        if (r > 0 && r % P == 0 && H % (r / P) == 0) gn = r;
    }
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sssd.b_proj", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_b", (long long)l),
                    gn, d, bias, S, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sssd.c_proj", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_c", (long long)l),
                    gn, d, bias, S, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sssd.dt_proj", pfx),
                    fmt_name(g, sizeof g, "blk.%lld.ssm_dt", (long long)l), H, d, bias, S, true));
    /* dt_bias is optional; when the dt Linear already has a bias they would collide */
    if (!bias || find(c, fmt_name(s, sizeof s, "%sssd.dt_proj.bias", pfx)) < 0)
        TRY(take1(c, fmt_name(s, sizeof s, "%sssd.dt_bias", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_dt.bias", (long long)l),
                  false, H, S));
    bool has_a = find(c, fmt_name(s, sizeof s, "%sssd.A", pfx)) >= 0;
    bool has_alog = find(c, fmt_name(s, sizeof s, "%sssd.A_log", pfx)) >= 0;
    if (has_a && has_alog)
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: layer %lld has both ssd.A and ssd.A_log", c->label, (long long)l);
    int64_t e1[1] = {H};
    if (has_alog)
        TRY(take(c, fmt_name(s, sizeof s, "%sssd.A_log", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_a", (long long)l), true,
                 1, e1, S, true, CV_X_NEG_EXP, NULL));
    else
        TRY(take1(c, fmt_name(s, sizeof s, "%sssd.A", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_a", (long long)l), true, H,
                  S));
    TRY(take1(c, fmt_name(s, sizeof s, "%sssd.D", pfx), fmt_name(g, sizeof g, "blk.%lld.ssm_d", (long long)l), false, H,
              S));
    return take_linear(c, fmt_name(s, sizeof s, "%sssd.out_proj", pfx),
                       fmt_name(g, sizeof g, "blk.%lld.ssm_out", (long long)l), d, H * P, bias, S, false);
}

static hq_status need_key(cv_ctx *c, int64_t v, const char *key, const char *why) {
    if (v > 0) return HQ_OK;
    return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: config.json lacks a positive '%s' (needed for %s)", c->label, key, why);
}

static int64_t isqrt_floor(int64_t e) {
    int64_t r = (int64_t)floor(sqrt((double)e));
    while (r * r > e) r--;
    while ((r + 1) * (r + 1) <= e) r++;
    return r;
}

static hq_status map_ffn(cv_ctx *c, int64_t l, const char *fp, bool bias) {
    cv_plan *p = c->p;
    const cv_hparams *h = &p->hp;
    int64_t d = h->d, I = h->inter;
    char s[HQ_MAX_NAME + 16], g[96];
    if (find(c, fmt_name(s, sizeof s, "%squeries_proj.weight", fp)) >= 0)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                       "%s: '%s' is the CDMoE queries_proj layout (small-doge 2025-02-07..03-14), which is not "
                       "supported",
                       c->label, s);
    bool router = find(c, fmt_name(s, sizeof s, "%srouter_gate.weight", fp)) >= 0;
    bool pk = find(c, fmt_name(s, sizeof s, "%squeries.weight", fp)) >= 0 ||
              find(c, fmt_name(s, sizeof s, "%skeys", fp)) >= 0;
    cv_ffn kind = router ? CV_FFN_CDMOE_ROUTER : pk ? CV_FFN_CDMOE_PK : CV_FFN_MLP;
    if (h->is_moe == 1 && kind == CV_FFN_MLP)
        return hq_fail(c->err, HQ_ERR_MISMATCH,
                       "%s: layer %lld has no CDMoE tensors ('%srouter_gate.weight' or '%squeries.weight') but "
                       "config.json says is_moe=true",
                       c->label, (long long)l, fp, fp);
    if (h->is_moe == 0 && kind != CV_FFN_MLP)
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: layer %lld has CDMoE tensors but config.json says is_moe=false",
                       c->label, (long long)l);
    p->ffns[l] = kind;
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sgate_proj", fp), fmt_name(g, sizeof g, "blk.%lld.ffn_gate", (long long)l),
                    I, d, bias, CV_CAT_MLP, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sup_proj", fp), fmt_name(g, sizeof g, "blk.%lld.ffn_up", (long long)l), I,
                    d, bias, CV_CAT_MLP, false));
    TRY(take_linear(c, fmt_name(s, sizeof s, "%sdown_proj", fp), fmt_name(g, sizeof g, "blk.%lld.ffn_down", (long long)l),
                    d, I, bias, CV_CAT_MLP, false));
    if (kind == CV_FFN_MLP) return HQ_OK;
    const cv_cat X = CV_CAT_EXPERTS;
    int64_t E = h->n_expert;
    TRY(need_key(c, E, "num_experts", "the CDMoE expert count"));
    TRY(need_key(c, h->n_expert_used, "num_experts_per_tok", "the CDMoE top-k"));
    int64_t kk = isqrt_floor(E); /* Kk = floor(sqrt(E)), spec §6 item 7 */
    if (kind == CV_FFN_CDMOE_ROUTER) {
        /* router_gate [2*Kk, d] (+ bias [2*Kk] in SD 03-17..03-21 checkpoints, §6 item 9) */
        TRY(take2(c, fmt_name(s, sizeof s, "%srouter_gate.weight", fp),
                  fmt_name(g, sizeof g, "blk.%lld.ffn_gate_inp.weight", (long long)l), true, 2 * kk, d, X, true));
        TRY(take1(c, fmt_name(s, sizeof s, "%srouter_gate.bias", fp),
                  fmt_name(g, sizeof g, "blk.%lld.ffn_gate_inp.bias", (long long)l), false, 2 * kk, X));
        p->n_rhead = 1;
        p->retrieval_size = 0;
    } else {
        int64_t Hr = h->n_rhead, R = h->retrieval_size;
        TRY(need_key(c, Hr, "num_cdmoe_heads", "the product-key CDMoE"));
        TRY(need_key(c, R, "expert_retrieval_size", "the product-key CDMoE"));
        if (R % 2)
            return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: expert_retrieval_size %lld must be even", c->label,
                           (long long)R);
        TRY(take2(c, fmt_name(s, sizeof s, "%squeries.weight", fp),
                  fmt_name(g, sizeof g, "blk.%lld.ffn_pk_query.weight", (long long)l), true, Hr * R, d, X, true));
        int64_t ek[4] = {Hr, kk, 2, R / 2};
        TRY(take(c, fmt_name(s, sizeof s, "%skeys", fp), fmt_name(g, sizeof g, "blk.%lld.ffn_pk_keys", (long long)l),
                 true, 4, ek, X, true, CV_X_COPY, NULL));
        p->n_rhead = Hr;
        p->retrieval_size = R;
    }
    TRY(take2(c, fmt_name(s, sizeof s, "%sdown_embed.weight", fp),
              fmt_name(g, sizeof g, "blk.%lld.ffn_expert_down.weight", (long long)l), true, E, d, X, false));
    TRY(take2(c, fmt_name(s, sizeof s, "%sup_embed.weight", fp),
              fmt_name(g, sizeof g, "blk.%lld.ffn_expert_up.weight", (long long)l), true, E, d, X, false));
    p->n_pk = kk;
    p->n_expert = E;
    p->n_expert_used = h->n_expert_used;
    return HQ_OK;
}

static hq_status map_layer(cv_ctx *c, int64_t l) {
    cv_plan *p = c->p;
    const cv_hparams *h = &p->hp;
    char pfx[64], s[HQ_MAX_NAME + 16], g[96];
    snprintf(pfx, sizeof pfx, "model.layers.%lld.", (long long)l);
    static const char *const norms[3][4] = {
        {"pre_sequence_layernorm.weight", "post_sequence_residual.weight", "pre_state_layernorm.weight",
         "post_state_residual.weight"},
        {"pre_layernorm.weight", "pre_residual.weight", "post_layernorm.weight", "post_residual.weight"},
        {"input_layernorm.weight", "input_residual", "post_attention_layernorm.weight", "post_attention_residual"},
    };
    static const char *const gnorms[4] = {"attn_norm.weight", "attn_residual.weight", "ffn_norm.weight",
                                          "ffn_residual.weight"};
    int nv = p->variant == CV_VAR_CHEEMS ? 0 : p->variant == CV_VAR_DOGE_OLD ? 1 : 2;
    bool cheems = p->variant == CV_VAR_CHEEMS;
    /* mixer kind from the tensors; Cheems also from attn_layer_period/offset */
    char probe[96];
    bool ssd = cheems && has_prefix(c, fmt_name(probe, sizeof probe, "%sssd.", pfx));
    if (cheems && h->attn_period > 0 && h->attn_offset >= 0) {
        bool want_attn = l % h->attn_period == h->attn_offset;
        if (want_attn == ssd)
            return hq_fail(c->err, HQ_ERR_MISMATCH,
                           "%s: layer %lld has %s tensors but config.json (attn_layer_period %lld, offset %lld) says "
                           "it is %s",
                           c->label, (long long)l, ssd ? "SSD" : "attention", (long long)h->attn_period,
                           (long long)h->attn_offset, want_attn ? "attention" : "SSD");
    }
    p->mixers[l] = ssd ? CV_MIX_SSD : CV_MIX_ATTN;
    for (int k = 0; k < 2; k++) {
        const char *src = fmt_name(s, sizeof s, "%s%s", pfx, norms[nv][k]);
        /* new-layout residuals are bare Parameters; accept a `.weight` spelling too */
        if (nv == 2 && k == 1 && find(c, src) < 0) fmt_name(s, sizeof s, "%s%s.weight", pfx, norms[nv][k]);
        TRY(take1(c, s, fmt_name(g, sizeof g, "blk.%lld.%s", (long long)l, gnorms[k]), true, h->d, CV_CAT_OTHER));
    }
    bool attn_bias = nv == 2 ? h->attention_bias : h->hidden_bias;
    bool mlp_bias = nv == 2 ? h->mlp_bias : h->hidden_bias;
    if (ssd) TRY(map_ssd(c, l, pfx));
    else TRY(map_attn(c, l, fmt_name(probe, sizeof probe, "%s%s", pfx, cheems ? "attn." : "self_attn."), attn_bias));
    for (int k = 2; k < 4; k++) {
        const char *src = fmt_name(s, sizeof s, "%s%s", pfx, norms[nv][k]);
        if (nv == 2 && k == 3 && find(c, src) < 0) fmt_name(s, sizeof s, "%s%s.weight", pfx, norms[nv][k]);
        TRY(take1(c, s, fmt_name(g, sizeof g, "blk.%lld.%s", (long long)l, gnorms[k]), true, h->d, CV_CAT_OTHER));
    }
    return map_ffn(c, l, fmt_name(probe, sizeof probe, "%s%s", pfx, nv == 2 ? "mlp." : "feed_forward."), mlp_bias);
}

/* ---- OTCE (no public weights; spec §3.5): module paths kept under blk.N. ----
 * Every tensor's shape is checked against config.json. The layer kinds come
 * from the stage counts (CheemsOTCEModel.__init__): observation (mamba; its
 * first layer's FFN is an MLP), thinking (attention `self_attn`), conseption
 * (mamba; its last layer's FFN is an MLP), expression (attention
 * `self_attention`, MLP, then pre_dense_layernorm/dense/projection); every
 * FFN is an MLP when num_experts <= 1. */
static bool otce_keep_f32(const char *name, int nd) {
    return nd != 2 || strstr(name, "dt_proj") || strstr(name, "layernorm") || strstr(name, "router") ||
           strstr(name, "A_log") || strstr(name, "conv1d") || strstr(name, "shared_expert_gate");
}

static cv_cat otce_cat(const char *rest) {
    if (!strncmp(rest, "mamba.", 6)) return CV_CAT_SSD;
    if (!strncmp(rest, "feed_forward.experts.", 21) || !strncmp(rest, "feed_forward.router", 19) ||
        !strncmp(rest, "feed_forward.shared_", 20))
        return CV_CAT_EXPERTS;
    if (!strncmp(rest, "feed_forward.", 13)) return CV_CAT_MLP;
    if (!strncmp(rest, "self_att", 8) || !strncmp(rest, "dense", 5) || !strncmp(rest, "projection", 10))
        return CV_CAT_ATTN;
    return CV_CAT_OTHER;
}

/* one tensor `<pfx><rest>` -> `blk.N.<rest>` with the expected PyTorch shape.
 * present = config.json says the module has it; a tensor the config rules out
 * is left over and reported as unexpected. */
static hq_status otce_take(cv_ctx *c, int64_t l, const char *pfx, const char *rest, bool present, int nd,
                           const int64_t *exp) {
    if (!present) return HQ_OK;
    char s[HQ_MAX_NAME + 16], g[128];
    fmt_name(s, sizeof s, "%s%s", pfx, rest);
    fmt_name(g, sizeof g, "blk.%lld.%s", (long long)l, rest);
    return take(c, s, g, true, nd, exp, otce_cat(rest), otce_keep_f32(rest, nd), CV_X_COPY, NULL);
}
static hq_status otce_norm(cv_ctx *c, int64_t l, const char *pfx, const char *mod, int64_t n) {
    char r[96];
    int64_t e[1] = {n};
    TRY(otce_take(c, l, pfx, fmt_name(r, sizeof r, "%s.weight", mod), true, 1, e));
    return otce_take(c, l, pfx, fmt_name(r, sizeof r, "%s.bias", mod), true, 1, e);
}
static hq_status otce_linear(cv_ctx *c, int64_t l, const char *pfx, const char *mod, int64_t out, int64_t in,
                             bool bias) {
    char r[96];
    int64_t e[2] = {out, in};
    TRY(otce_take(c, l, pfx, fmt_name(r, sizeof r, "%s.weight", mod), true, 2, e));
    return otce_take(c, l, pfx, fmt_name(r, sizeof r, "%s.bias", mod), bias, 1, e);
}

static bool same_values(const fmt_tensor *a, const fmt_tensor *b) {
    if (a->ndim != b->ndim || a->dtype != b->dtype) return false;
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k]) return false;
    if (a->ndim == 2) return same_as_embedding(a, b);
    if (a->ndim != 1) return false;
    uint32_t es = hq_dtype_size(a->dtype);
    for (int64_t i = 0; i < a->shape[0]; i++)
        if (memcmp(a->storage + (uint64_t)(a->offset + i * a->stride[0]) * es,
                   b->storage + (uint64_t)(b->offset + i * b->stride[0]) * es, es))
            return false;
    return true;
}

/* The shared modules of an OTCE MoE are attributes of every expert, so a raw
 * state dict repeats them as experts.{e}.shared_* (spec §3.5). Keep one copy
 * under feed_forward.shared_* (taken from experts.0 when a saver kept only
 * the expert copies); every other copy must hold the same values. */
static hq_status otce_shared(cv_ctx *c, int64_t l, const char *pfx, const char *mod, int64_t out, int64_t in,
                             bool bias, int64_t E) {
    for (int w = 0; w < 1 + (int)bias; w++) {
        const char *suf = w ? "bias" : "weight";
        char base[HQ_MAX_NAME + 16], s[HQ_MAX_NAME + 16], g[128], r[96];
        fmt_name(base, sizeof base, "%sfeed_forward.%s.%s", pfx, mod, suf);
        int64_t bi = find(c, base);
        const char *src = base;
        if (bi < 0) {
            fmt_name(s, sizeof s, "%sfeed_forward.experts.0.%s.%s", pfx, mod, suf);
            if (find(c, s) >= 0) src = s;
        }
        int64_t e2[2] = {out, in};
        fmt_name(r, sizeof r, "feed_forward.%s.%s", mod, suf);
        fmt_name(g, sizeof g, "blk.%lld.%s", (long long)l, r);
        const fmt_tensor *kept;
        TRY(take(c, src, g, true, w ? 1 : 2, e2, CV_CAT_EXPERTS, otce_keep_f32(r, w ? 1 : 2), CV_X_COPY, &kept));
        for (int64_t e = 0; e < E; e++) {
            fmt_name(s, sizeof s, "%sfeed_forward.experts.%lld.%s.%s", pfx, (long long)e, mod, suf);
            int64_t i = find(c, s);
            if (i < 0 || c->used[i]) continue;
            if (!same_values(&c->ts[i], kept))
                return hq_fail(c->err, HQ_ERR_MISMATCH,
                               "%s: '%s' differs from '%s' (the authors' experts share one module, so the copies "
                               "must be equal)",
                               c->label, s, src);
            c->used[i] = true;
            c->p->n_ignored++;
            c->p->n_shared_dedup++;
        }
    }
    return HQ_OK;
}

static hq_status map_otce_ffn(cv_ctx *c, int64_t l, const char *pfx, bool moe) {
    const cv_hparams *h = &c->p->hp;
    int64_t d = h->d, I = h->inter, E = h->n_expert;
    bool b = h->hidden_bias;
    char r[96];
    if (!moe) {
        TRY(otce_linear(c, l, pfx, "feed_forward.gate_proj", I, d, b));
        TRY(otce_linear(c, l, pfx, "feed_forward.up_proj", I, d, b));
        return otce_linear(c, l, pfx, "feed_forward.down_proj", d, I, b);
    }
    TRY(otce_linear(c, l, pfx, "feed_forward.router", E, d, false));
    int64_t Ip = I / 2; /* private_expert_intermediate_size */
    bool expansive = !strcmp(h->expert_type, "expansive"), cohesive = !strcmp(h->expert_type, "cohesive");
    if (expansive) {
        TRY(otce_shared(c, l, pfx, "shared_gate_proj", I, d, b, E));
        TRY(otce_shared(c, l, pfx, "shared_up_proj", I, d, b, E));
        TRY(otce_shared(c, l, pfx, "shared_down_proj", d, I, b, E));
    } else if (cohesive) {
        TRY(otce_shared(c, l, pfx, "shared_up_proj", Ip, d, b, E));
    }
    int64_t Ie = expansive || cohesive ? Ip : I;
    for (int64_t e = 0; e < E; e++) {
        TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "feed_forward.experts.%lld.gate_proj", (long long)e), Ie, d,
                        b));
        if (!cohesive)
            TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "feed_forward.experts.%lld.up_proj", (long long)e), Ie,
                            d, b));
        TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "feed_forward.experts.%lld.down_proj", (long long)e), d, Ie,
                        b));
        if (expansive)
            TRY(otce_linear(c, l, pfx,
                            fmt_name(r, sizeof r, "feed_forward.experts.%lld.shared_expert_gate", (long long)e), 1, d,
                            false));
    }
    return HQ_OK;
}

static hq_status map_otce_layers(cv_ctx *c) {
    cv_plan *p = c->p;
    const cv_hparams *h = &p->hp;
    if (!h->otce)
        return hq_fail(c->err, HQ_ERR_MISMATCH,
                       "%s: OTCE tensors but config.json has no stage counts (num_observation_layers, "
                       "num_thinking_layers, num_conseption_layers, num_expression_layers)",
                       c->label);
    if (strcmp(h->hidden_act, "silu") || strcmp(h->mamba_act, "silu"))
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: OTCE hidden_act '%s' / mamba_act '%s': only silu is supported",
                       c->label, h->hidden_act, h->mamba_act);
    int64_t d = h->d, E_in = h->mamba_expand * h->d, N = h->mamba_d_state, K = h->mamba_d_conv, R = h->mamba_dt_rank;
    int64_t H = h->n_head, KV = h->n_kv, P = h->head_dim;
    TRY(need_key(c, E_in, "mamba_expand", "the Mamba inner size"));
    TRY(need_key(c, N, "mamba_d_state", "the Mamba state size"));
    TRY(need_key(c, K, "mamba_d_conv", "the Mamba conv kernel"));
    if (P * H != d)
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: OTCE needs hidden_size = heads x head_dim (%lld != %lld x %lld)",
                       c->label, (long long)d, (long long)H, (long long)P);
    int64_t o = h->n_stage[0], t = h->n_stage[1], cs = h->n_stage[2];
    bool moe_any = h->n_expert > 1;
    if (moe_any) TRY(need_key(c, h->n_expert_used, "num_experts_per_tok", "the OTCE MoE top-k"));
    if (moe_any && h->n_expert_used > h->n_expert)
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: num_experts_per_tok %lld exceeds num_experts %lld", c->label,
                       (long long)h->n_expert_used, (long long)h->n_expert);
    for (int64_t l = 0; l < p->n_layer; l++) {
        char pfx[64];
        snprintf(pfx, sizeof pfx, "model.layers.%lld.", (long long)l);
        bool mamba = l < o || (l >= o + t && l < o + t + cs);
        bool expr = l >= o + t + cs;
        bool moe = moe_any && !expr && l != 0 && l != o + t + cs - 1;
        p->mixers[l] = mamba ? CV_MIX_MAMBA : CV_MIX_ATTN;
        p->ffns[l] = moe ? CV_FFN_OTCE_MOE : CV_FFN_MLP;
        char probe[96];
        bool has_mamba = has_prefix(c, fmt_name(probe, sizeof probe, "%smamba.", pfx));
        if (has_mamba != mamba)
            return hq_fail(c->err, HQ_ERR_MISMATCH,
                           "%s: layer %lld %s Mamba tensors but the stage counts in config.json make it %s", c->label,
                           (long long)l, has_mamba ? "has" : "has no", mamba ? "a Mamba layer" : "an attention layer");
        TRY(otce_norm(c, l, pfx, "input_layernorm", d));
        if (mamba) {
            bool pb = h->mamba_proj_bias;
            int64_t e3[3] = {E_in, 1, K}, e1[1] = {E_in}, ea[2] = {E_in, N};
            TRY(otce_linear(c, l, pfx, "mamba.in_proj", 2 * E_in, d, pb));
            TRY(otce_take(c, l, pfx, "mamba.conv1d.weight", true, 3, e3));
            TRY(otce_take(c, l, pfx, "mamba.conv1d.bias", h->mamba_conv_bias, 1, e1));
            TRY(otce_linear(c, l, pfx, "mamba.x_proj", R + 2 * N, E_in, false));
            TRY(otce_linear(c, l, pfx, "mamba.dt_proj", E_in, R, pb));
            TRY(otce_take(c, l, pfx, "mamba.A_log", true, 2, ea));
            TRY(otce_take(c, l, pfx, "mamba.D", true, 1, e1));
            TRY(otce_linear(c, l, pfx, "mamba.out_proj", d, E_in, pb));
            TRY(otce_norm(c, l, pfx, "mamba.dt_layernorm", R));
            TRY(otce_norm(c, l, pfx, "mamba.B_layernorm", N));
            TRY(otce_norm(c, l, pfx, "mamba.C_layernorm", N));
        } else {
            const char *am = expr ? "self_attention" : "self_attn";
            char r[64];
            bool b = h->hidden_bias;
            TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "%s.q_proj", am), H * P, d, b));
            TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "%s.k_proj", am), KV * P, d, b));
            TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "%s.v_proj", am), KV * P, d, b));
            TRY(otce_linear(c, l, pfx, fmt_name(r, sizeof r, "%s.o_proj", am), d, H * P, b));
        }
        TRY(otce_norm(c, l, pfx, "pre_ff_layernorm", d));
        TRY(map_otce_ffn(c, l, pfx, moe));
        if (expr) {
            TRY(otce_norm(c, l, pfx, "pre_dense_layernorm", d));
            TRY(otce_linear(c, l, pfx, "dense", d, d, h->hidden_bias));
            TRY(otce_linear(c, l, pfx, "projection", d, d, h->hidden_bias));
        }
    }
    if (moe_any) {
        p->n_expert = h->n_expert;
        p->n_expert_used = h->n_expert_used;
    }
    return HQ_OK;
}

/* ---- detection ---- */
static hq_status detect(cv_ctx *c, cv_variant *v) {
    if (any_contains(c, ".queries_proj."))
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                       "%s: CDMoE queries_proj layout (small-doge 2025-02-07..03-14) is not supported", c->label);
    if (any_contains(c, ".ssd.")) *v = CV_VAR_CHEEMS;
    else if (any_contains(c, ".mamba.A_log")) *v = CV_VAR_OTCE;
    else if (find(c, "model.word_embed.weight") >= 0) *v = CV_VAR_DOGE_OLD;
    else if (find(c, "model.embed_tokens.weight") >= 0) *v = any_contains(c, ".self_attn.q_norm.weight") ? CV_VAR_DOGE_HF
                                                                                                       : CV_VAR_DOGE_NEW;
    else
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                       "%s: unknown model layout: no 'model.word_embed.weight' or 'model.embed_tokens.weight' and no "
                       "'.ssd.' / '.mamba.A_log' tensors (expected a Cheems, Doge or OTCE checkpoint)",
                       c->label);
    return HQ_OK;
}

static hq_status build(cv_ctx *c, const char *config_json) {
    cv_plan *p = c->p;
    TRY(detect(c, &p->variant));
    TRY(cv_config_parse(config_json, c->label, &p->hp, c->err));
    const cv_hparams *h = &p->hp;
    if (h->dynamic_mask_ratio != 0)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: dynamic_mask_ratio %g is not supported (only 0)", c->label,
                       h->dynamic_mask_ratio);
    if (h->is_causal)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                       "%s: is_causal=true (plain causal attention without the dynamic mask) is not supported",
                       c->label);
    if (h->n_layer > 100000) return hq_fail(c->err, HQ_ERR_LIMIT, "%s: num_hidden_layers %lld is too large", c->label,
                                            (long long)h->n_layer);
    p->n_layer = h->n_layer;
    p->mixers = hq_calloc((size_t)p->n_layer, sizeof *p->mixers);
    p->ffns = hq_calloc((size_t)p->n_layer, sizeof *p->ffns);
    if (!p->mixers || !p->ffns) return hq_fail(c->err, HQ_ERR_NOMEM, "%s: out of memory", c->label);
    int64_t V = h->vocab, d = h->d;
    bool otce = p->variant == CV_VAR_OTCE;
    const char *emb = otce ? "model.embed_tokens.word_embeddings.weight"
                      : (p->variant == CV_VAR_CHEEMS || p->variant == CV_VAR_DOGE_OLD) ? "model.word_embed.weight"
                                                                                       : "model.embed_tokens.weight";
    const char *fnorm = (p->variant == CV_VAR_DOGE_NEW || p->variant == CV_VAR_DOGE_HF) ? "model.norm.weight"
                                                                                        : "model.final_layernorm.weight";
    const fmt_tensor *temb;
    int64_t ee[2] = {V, d};
    TRY(take(c, emb, "token_embd.weight", true, 2, ee, CV_CAT_OTHER, false, CV_X_COPY, &temb));
    /* OTCE token-type embedding iff type_vocab_size; its row 0 is added to every token (spec §6 item 15) */
    if (otce && h->type_vocab > 0)
        TRY(take2(c, "model.embed_tokens.token_type_embeddings.weight", "token_types.weight", true, h->type_vocab, d,
                  CV_CAT_OTHER, false));
    TRY(take1(c, fnorm, "output_norm.weight", true, d, CV_CAT_OTHER));
    if (otce) TRY(take1(c, "model.final_layernorm.bias", "output_norm.bias", true, d, CV_CAT_OTHER));
    /* lm_head: tied when absent, or the same storage / bit-identical values (and config agrees) */
    int64_t li = find(c, "lm_head.weight");
    if (li < 0) {
        if (h->tie == 0)
            return hq_fail(c->err, HQ_ERR_MISMATCH,
                           "%s: missing tensor 'lm_head.weight' (config.json says tie_word_embeddings=false)", c->label);
    } else {
        const fmt_tensor *tl = &c->ts[li];
        bool same_view = tl->storage_id == temb->storage_id && tl->offset == temb->offset && tl->ndim == 2 &&
                         tl->shape[0] == temb->shape[0] && tl->shape[1] == temb->shape[1];
        bool alias = same_view || (h->tie == 1 && same_as_embedding(tl, temb));
        if (!alias && h->tie == 1)
            return hq_fail(c->err, HQ_ERR_MISMATCH,
                           "%s: 'lm_head.weight' differs from the embedding but config.json says "
                           "tie_word_embeddings=true",
                           c->label);
        if (alias) {
            c->used[li] = true;
            p->n_ignored++;
        } else {
            TRY(take2(c, "lm_head.weight", "output.weight", true, V, d, CV_CAT_OTHER, false));
            p->has_output = true;
        }
    }
    if (otce) TRY(map_otce_layers(c));
    else
        for (int64_t l = 0; l < p->n_layer; l++) TRY(map_layer(c, l));
    /* all MoE layers must agree on Kk */
    /* leftovers: rotary buffers are ignored (§3), anything else is an error */
    for (uint64_t k = 0; k < c->n; k++) {
        uint64_t i = c->order[k];
        if (c->used[i]) continue;
        if (!strncmp(c->ts[i].name, "model.rotary_emb.", 17)) {
            p->n_ignored++;
            continue;
        }
        return hq_fail(c->err, HQ_ERR_MISMATCH, "%s: unexpected tensor '%s' (not part of the %s layout with %lld layers)",
                       c->label, c->ts[i].name, cv_variant_name(p->variant), (long long)p->n_layer);
    }
    return HQ_OK;
}

hq_status cv_plan_build(const fmt_tensor *ts, uint64_t n, const char *config_json, const char *label, cv_plan **out,
                        char *err) {
    *out = NULL;
    cv_ctx c = {.ts = ts, .n = n, .label = label ? label : "checkpoint", .err = err};
    c.p = hq_calloc(1, sizeof *c.p);
    c.order = hq_malloc_array(n ? n : 1, sizeof *c.order);
    c.used = hq_calloc(n ? n : 1, sizeof *c.used);
    if (!c.p || !c.order || !c.used) {
        cv_plan_free(c.p);
        hq_free(c.order);
        hq_free(c.used);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", c.label);
    }
    name_idx *ni = hq_malloc_array(n ? n : 1, sizeof *ni);
    if (!ni) {
        cv_plan_free(c.p);
        hq_free(c.order);
        hq_free(c.used);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", c.label);
    }
    for (uint64_t i = 0; i < n; i++) ni[i] = (name_idx){ts[i].name, i};
    qsort(ni, n, sizeof *ni, cmp_name_idx);
    for (uint64_t i = 0; i < n; i++) c.order[i] = ni[i].i;
    hq_free(ni);
    for (uint64_t i = 1; i < n; i++)
        if (!strcmp(ts[c.order[i]].name, ts[c.order[i - 1]].name)) {
            hq_status st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' appears twice", c.label, ts[c.order[i]].name);
            cv_plan_free(c.p);
            hq_free(c.order);
            hq_free(c.used);
            return st;
        }
    hq_status st = build(&c, config_json);
    hq_free(c.order);
    hq_free(c.used);
    if (st != HQ_OK) {
        cv_plan_free(c.p);
        return st;
    }
    *out = c.p;
    return HQ_OK;
}

void cv_plan_free(cv_plan *p) {
    if (!p) return;
    hq_free(p->mixers);
    hq_free(p->ffns);
    hq_free(p->tensors);
    hq_free(p);
}

hq_dtype cv_tensor_out_dtype(const cv_tensor *t, cv_outtype ot) {
    if (t->keep_f32) return HQ_DT_F32;
    switch (ot) {
    case CV_OUT_F16: return HQ_DT_F16;
    case CV_OUT_BF16: return HQ_DT_BF16;
    default: return HQ_DT_F32;
    }
}

cv_outtype cv_plan_default_outtype(const cv_plan *p) {
    int seen = -1;
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        if (t->keep_f32) continue;
        int dt = t->src->dtype;
        if (seen < 0) seen = dt;
        else if (seen != dt) return CV_OUT_F32; /* mixed */
    }
    return seen == HQ_DT_F16 ? CV_OUT_F16 : seen == HQ_DT_BF16 ? CV_OUT_BF16 : CV_OUT_F32;
}
