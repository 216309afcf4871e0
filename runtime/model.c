/* runtime/model.c — load a hyquant GGUF (docs/gguf-schema.md): read the
 * architecture metadata, bind and validate every tensor (name, shape, type),
 * refuse what we cannot run, and allocate sequence states. */
#include "model_internal.h" // defines: rt_model, rt_layer, rt_state
#include "model_load.h"     // defines: ld_ctx, rt_ld_*
#include "../core/half.h"
#include "../formats/schema.h" // defines: fmt_schema_name, FMT_T_*
#include "../core/limits.h" // defines: HQ_MAX_EMBD, HQ_MAX_LAYERS, HQ_MAX_CTX
#include "../quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool keyf(ld_ctx *c, const char *suffix, char *buf, size_t cap) {
    int w = snprintf(buf, cap, "%s.%s", c->m->arch, suffix);
    return w > 0 && (size_t)w < cap;
}
static bool get_u64(ld_ctx *c, const char *suffix, uint64_t *v) {
    char k[128];
    return keyf(c, suffix, k, sizeof k) && fmt_gguf_get_u64(c->g, k, v);
}
static bool get_f32(ld_ctx *c, const char *suffix, float *v) {
    char k[128];
    return keyf(c, suffix, k, sizeof k) && fmt_gguf_get_f32(c->g, k, v);
}
static bool get_bool(ld_ctx *c, const char *suffix, bool *v) {
    char k[128];
    return keyf(c, suffix, k, sizeof k) && fmt_gguf_get_bool(c->g, k, v);
}

static void note_missing(ld_ctx *c, const char *name) {
    size_t len = strlen(c->missing);
    if (c->n_missing < 6 && len + strlen(name) + 4 < sizeof c->missing)
        snprintf(c->missing + len, sizeof c->missing - len, "%s'%s'", len ? ", " : "", name);
    c->n_missing++;
}

static const fmt_gguf_tensor *find(ld_ctx *c, const char *name, bool required) {
    const fmt_gguf_tensor *t = fmt_gguf_find_tensor(c->g, name);
    if (!t) {
        if (required) note_missing(c, name);
        return NULL;
    }
    /* index for the used-map: tensors are stored in order, the pointer tells */
    uint64_t n = fmt_gguf_n_tensors(c->g);
    for (uint64_t i = 0; i < n; i++)
        if (fmt_gguf_tensor_at(c->g, i) == t) c->used[i] = 1;
    return t;
}

static void shape_str(const fmt_gguf_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (uint32_t i = 0; i < t->n_dims && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "", (unsigned long long)t->ne[t->n_dims - 1 - i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* checks that t has PyTorch shape dims[0..nd) (outermost first) */
static bool check_shape(ld_ctx *c, const fmt_gguf_tensor *t, int nd, const int64_t *dims) {
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        int64_t want = i < nd ? dims[nd - 1 - i] : 1;
        if ((int64_t)t->ne[i] != want) ok = false;
    }
    if (!ok && c->st == HQ_OK) {
        char got[96], want[96];
        size_t o = 0;
        shape_str(t, got, sizeof got);
        o += (size_t)snprintf(want + o, sizeof want - o, "[");
        for (int i = 0; i < nd; i++) o += (size_t)snprintf(want + o, sizeof want - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
        snprintf(want + o, sizeof want - o, "]");
        c->st = hq_fail(c->err, HQ_ERR_FORMAT, "%s: tensor '%s' has shape %s but the metadata says %s",
                        fmt_gguf_label(c->g), t->name, got, want);
    }
    return ok;
}

static void get_mat(ld_ctx *c, const char *name, int64_t n_out, int64_t n_in, bool required, rt_weight *w) {
    memset(w, 0, sizeof *w);
    if (c->st != HQ_OK) return;
    const fmt_gguf_tensor *t = find(c, name, required);
    if (!t) return;
    int64_t dims[2] = {n_out, n_in};
    if (!check_shape(c, t, 2, dims)) return;
    w->name = t->name;
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    if (!ggml_row_bytes(t->type, (uint64_t)n_in, &w->row_bytes)) {
        c->st = hq_fail(c->err, HQ_ERR_FORMAT, "%s: tensor '%s': row of %lld elements does not fit type %s",
                        fmt_gguf_label(c->g), name, (long long)n_in, ggml_type_name(t->type));
        return;
    }
    char e2[HQ_ERR_LEN];
    if (rt_weight_check(w, e2) != HQ_OK) c->st = hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: %s", fmt_gguf_label(c->g), e2);
}

bool rt_ld_own(ld_ctx *c, void *p) {
    rt_model *m = c->m;
    if (p && m->n_owned == m->cap_owned) {
        int64_t nc = m->cap_owned ? m->cap_owned * 2 : 64;
        void **q = hq_realloc(m->owned, (size_t)nc * sizeof(void *));
        if (q) {
            m->owned = q;
            m->cap_owned = nc;
        }
    }
    if (!p || m->n_owned == m->cap_owned) {
        hq_free(p);
        if (c->st == HQ_OK) c->st = hq_fail(c->err, HQ_ERR_NOMEM, "%s: out of memory", fmt_gguf_label(c->g));
        return false;
    }
    m->owned[m->n_owned++] = p;
    return true;
}

static float *own_f32(ld_ctx *c, const fmt_gguf_tensor *t, uint64_t n) {
    float *dst = hq_malloc_array((size_t)n, sizeof(float));
    if (!dst) goto oom;
    if (!rt_ld_own(c, dst)) return NULL;
    rt_weight tmp = {t->name, t->data, t->type, (int64_t)n, 1, 0};
    if (!ggml_row_bytes(t->type, n, &tmp.row_bytes) || rt_weight_check(&tmp, NULL) != HQ_OK) {
        c->st = hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, not usable for a vector",
                        fmt_gguf_label(c->g), t->name, ggml_type_name(t->type));
        return NULL;
    }
    rt_weight_row_f32(&tmp, 0, dst);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            c->st = hq_fail(c->err, HQ_ERR_FORMAT, "%s: tensor '%s' has a non-finite value at %llu",
                            fmt_gguf_label(c->g), t->name, (unsigned long long)i);
            return NULL;
        }
    return dst;
oom:
    c->st = hq_fail(c->err, HQ_ERR_NOMEM, "%s: out of memory loading '%s'", fmt_gguf_label(c->g), t->name);
    return NULL;
}

/* tensor of PyTorch shape dims as an owned fp32 array */
static float *get_arr(ld_ctx *c, const char *name, int nd, const int64_t *dims, bool required) {
    if (c->st != HQ_OK) return NULL;
    const fmt_gguf_tensor *t = find(c, name, required);
    if (!t || !check_shape(c, t, nd, dims)) return NULL;
    uint64_t n = 1;
    for (int i = 0; i < nd; i++) n *= (uint64_t)dims[i];
    return own_f32(c, t, n);
}
static float *get_vec(ld_ctx *c, const char *name, int64_t n, bool required) {
    return get_arr(c, name, 1, &n, required);
}

void rt_ld_mat(ld_ctx *c, const char *name, int64_t n_out, int64_t n_in, bool required, rt_weight *w) {
    get_mat(c, name, n_out, n_in, required, w);
}
float *rt_ld_arr(ld_ctx *c, const char *name, int nd, const int64_t *dims, bool required) {
    return get_arr(c, name, nd, dims, required);
}
bool rt_ld_has(ld_ctx *c, const char *name) { return fmt_gguf_find_tensor(c->g, name) != NULL; }
bool rt_ld_u64(ld_ctx *c, const char *suffix, uint64_t *v) { return get_u64(c, suffix, v); }
bool rt_ld_bool(ld_ctx *c, const char *suffix, bool *v) { return get_bool(c, suffix, v); }
bool rt_ld_str(ld_ctx *c, const char *suffix, fmt_gguf_str *v) {
    char k[128];
    return keyf(c, suffix, k, sizeof k) && fmt_gguf_get_str(c->g, k, v);
}

static const fmt_gguf_str *str_array(ld_ctx *c, const char *suffix, uint64_t n) {
    char k[128];
    if (!keyf(c, suffix, k, sizeof k)) return NULL;
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(c->g, k);
    if (!kv || kv->type != GGUF_VT_ARRAY || kv->v.arr.type != GGUF_VT_STRING || kv->v.arr.n != n) return NULL;
    return kv->v.arr.strs;
}
static bool str_is(const fmt_gguf_str *s, const char *lit) {
    return s->len == strlen(lit) && memcmp(s->s, lit, s->len) == 0;
}

/* the GGUF name of a schema tensor in layer l (formats/schema.h; names are short) */
#define NAME(buf, id, l) fmt_schema_name(id, l, buf, sizeof buf)

static void load_layer(ld_ctx *c, int64_t i, const fmt_gguf_str *mix, const fmt_gguf_str *ffn) {
    rt_model *m = c->m;
    rt_layer *ly = &m->layers[i];
    int64_t d = m->d, H = m->H, KV = m->KV, P = m->P, I = m->I;
    char n[96];
    if (str_is(mix, "attn")) ly->mixer = RT_MIX_ATTN;
    else if (str_is(mix, "ssd")) ly->mixer = RT_MIX_SSD;
    else {
        c->st = hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: layer %lld has mixer '%.*s' (supported: attn, ssd)",
                        fmt_gguf_label(c->g), (long long)i, (int)(mix->len > 32 ? 32 : mix->len), mix->s);
        return;
    }
    if (str_is(ffn, "mlp")) ly->ffn = RT_FFN_MLP;
    else if (str_is(ffn, "cdmoe_pk")) ly->ffn = RT_FFN_PK;
    else if (str_is(ffn, "cdmoe_router")) ly->ffn = RT_FFN_ROUTER;
    else {
        c->st = hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                        "%s: layer %lld has ffn '%.*s' (supported: mlp, cdmoe_pk, cdmoe_router)",
                        fmt_gguf_label(c->g), (long long)i, (int)(ffn->len > 32 ? 32 : ffn->len), ffn->s);
        return;
    }
    NAME(n, FMT_T_ATTN_NORM, i); ly->attn_norm = get_vec(c, n, d, true);
    NAME(n, FMT_T_ATTN_RES, i); ly->attn_res = get_vec(c, n, d, true);
    NAME(n, FMT_T_FFN_NORM, i); ly->ffn_norm = get_vec(c, n, d, true);
    NAME(n, FMT_T_FFN_RES, i); ly->ffn_res = get_vec(c, n, d, true);
    if (ly->mixer == RT_MIX_ATTN) {
        NAME(n, FMT_T_ATTN_Q, i); get_mat(c, n, H * P, d, true, &ly->q);
        NAME(n, FMT_T_ATTN_K, i); get_mat(c, n, KV * P, d, true, &ly->k);
        NAME(n, FMT_T_ATTN_V, i); get_mat(c, n, KV * P, d, true, &ly->v);
        NAME(n, FMT_T_ATTN_OUT, i); get_mat(c, n, d, H * P, true, &ly->o);
        NAME(n, FMT_T_ATTN_Q_B, i); ly->bq = get_vec(c, n, H * P, false);
        NAME(n, FMT_T_ATTN_K_B, i); ly->bk = get_vec(c, n, KV * P, false);
        NAME(n, FMT_T_ATTN_V_B, i); ly->bv = get_vec(c, n, KV * P, false);
        NAME(n, FMT_T_ATTN_OUT_B, i); ly->bo = get_vec(c, n, d, false);
        NAME(n, FMT_T_ATTN_Q_NORM, i); ly->q_norm = get_vec(c, n, P, false);
        NAME(n, FMT_T_ATTN_K_NORM, i); ly->k_norm = get_vec(c, n, P, false);
        /* M (per query head or per kv head) from the shape of attn_a */
        NAME(n, FMT_T_ATTN_A, i);
        const fmt_gguf_tensor *ta = fmt_gguf_find_tensor(c->g, n);
        ly->M = ta && ta->n_dims == 1 && (int64_t)ta->ne[0] == KV ? KV : H;
        ly->attn_a = get_vec(c, n, ly->M, true);
        NAME(n, FMT_T_ATTN_DT, i); get_mat(c, n, ly->M, KV * P, true, &ly->dt);
        NAME(n, FMT_T_ATTN_DT_B, i); ly->b_dt = get_vec(c, n, ly->M, false);
    } else {
        NAME(n, FMT_T_SSM_X, i); get_mat(c, n, H * P, d, true, &ly->sx);
        NAME(n, FMT_T_SSM_B, i); get_mat(c, n, H * P, d, true, &ly->sb);
        NAME(n, FMT_T_SSM_C, i); get_mat(c, n, H * P, d, true, &ly->sc);
        NAME(n, FMT_T_SSM_DT, i); get_mat(c, n, H, d, true, &ly->sdt);
        NAME(n, FMT_T_SSM_OUT, i); get_mat(c, n, d, H * P, true, &ly->sout);
        NAME(n, FMT_T_SSM_X_B, i); ly->b_sx = get_vec(c, n, H * P, false);
        NAME(n, FMT_T_SSM_B_B, i); ly->b_sb = get_vec(c, n, H * P, false);
        NAME(n, FMT_T_SSM_C_B, i); ly->b_sc = get_vec(c, n, H * P, false);
        NAME(n, FMT_T_SSM_DT_B, i); ly->ssm_dt_bias = get_vec(c, n, H, false);
        NAME(n, FMT_T_SSM_OUT_B, i); ly->b_sout = get_vec(c, n, d, false);
        NAME(n, FMT_T_SSM_A, i); ly->ssm_a = get_vec(c, n, H, true);
        for (int64_t h = 0; ly->ssm_a && h < H; h++)
            if (ly->ssm_a[h] > 0) ly->ssm_a_pos = true;
        NAME(n, FMT_T_SSM_D, i); ly->ssm_d = get_vec(c, n, H, false);
    }
    NAME(n, FMT_T_FFN_GATE, i); get_mat(c, n, I, d, true, &ly->gate);
    NAME(n, FMT_T_FFN_UP, i); get_mat(c, n, I, d, true, &ly->up);
    NAME(n, FMT_T_FFN_DOWN, i); get_mat(c, n, d, I, true, &ly->down);
    NAME(n, FMT_T_FFN_GATE_B, i); ly->b_gate = get_vec(c, n, I, false);
    NAME(n, FMT_T_FFN_UP_B, i); ly->b_up = get_vec(c, n, I, false);
    NAME(n, FMT_T_FFN_DOWN_B, i); ly->b_down = get_vec(c, n, d, false);
    if (ly->ffn == RT_FFN_MLP || c->st != HQ_OK) return;

    uint64_t E = 0, k = 0;
    get_u64(c, "expert_count", &E);
    get_u64(c, "expert_used_count", &k);
    NAME(n, FMT_T_EXPERT_DOWN, i);
    const fmt_gguf_tensor *te = fmt_gguf_find_tensor(c->g, n);
    if (te && te->n_dims == 2 && E == 0) E = te->ne[1];
    get_mat(c, n, (int64_t)E, d, true, &ly->ex_down);
    NAME(n, FMT_T_EXPERT_UP, i); get_mat(c, n, (int64_t)E, d, true, &ly->ex_up);
    ly->topk = (int64_t)k;
    if (ly->ffn == RT_FFN_ROUTER) {
        NAME(n, FMT_T_ROUTER, i);
        const fmt_gguf_tensor *tr = fmt_gguf_find_tensor(c->g, n);
        ly->Kk = tr && tr->n_dims == 2 ? (int64_t)tr->ne[1] / 2 : 0;
        ly->Hr = 1;
        get_mat(c, n, 2 * ly->Kk, d, true, &ly->router);
        NAME(n, FMT_T_ROUTER_B, i); ly->b_router = get_vec(c, n, 2 * ly->Kk, false);
    } else {
        NAME(n, FMT_T_PK_KEYS, i);
        const fmt_gguf_tensor *tk = fmt_gguf_find_tensor(c->g, n);
        if (tk && tk->n_dims == 4) {
            ly->Hr = (int64_t)tk->ne[3];
            ly->Kk = (int64_t)tk->ne[2];
            ly->R = 2 * (int64_t)tk->ne[0];
        }
        int64_t kd[4] = {ly->Hr, ly->Kk, 2, ly->R / 2};
        ly->pk_keys = get_arr(c, n, 4, kd, true);
        NAME(n, FMT_T_PK_QUERY, i); get_mat(c, n, ly->Hr * ly->R, d, true, &ly->pk_query);
    }
    if (c->st != HQ_OK || c->n_missing) return;
    if (ly->Kk < 1 || ly->Kk > 4096 || ly->Kk * ly->Kk > (int64_t)E || ly->topk < 1 || ly->topk > 4096 ||
        ly->topk > ly->Kk * ly->Kk || ly->Hr < 1)
        c->st = hq_fail(c->err, HQ_ERR_FORMAT,
                        "%s: layer %lld CDMoE: product keys %lld, experts %llu, top-k %lld, heads %lld are inconsistent "
                        "(need Kk² <= E, 1 <= k <= Kk², k <= 4096)",
                        fmt_gguf_label(c->g), (long long)i, (long long)ly->Kk, (unsigned long long)E, (long long)ly->topk,
                        (long long)ly->Hr);
}

static hq_status read_hparams(ld_ctx *c) {
    rt_model *m = c->m;
    const char *lab = fmt_gguf_label(c->g);
    uint64_t V, d, L, H, KV = 0, P = 0, I = 0, ctx = 2048, kw = 0, sw = 0, chunk = 0, orig = 0;
    if (!get_u64(c, "vocab_size", &V) || !get_u64(c, "embedding_length", &d) || !get_u64(c, "block_count", &L) ||
        !get_u64(c, "attention.head_count", &H))
        return hq_fail(c->err, HQ_ERR_FORMAT,
                       "%s: missing %s.vocab_size / embedding_length / block_count / attention.head_count", lab, m->arch);
    if (!get_u64(c, "attention.head_count_kv", &KV)) KV = H;
    if (!get_u64(c, "attention.key_length", &P)) P = H ? d / H : 0;
    get_u64(c, "feed_forward_length", &I);
    get_u64(c, "context_length", &ctx);
    /* core/limits.h: one bound per value, HQ_ERR_LIMIT naming it */
    static const struct { const char *key, *limit; uint64_t max; } lim[] = {
        {"vocab_size", "HQ_MAX_VOCAB", HQ_MAX_VOCAB},           {"embedding_length", "HQ_MAX_EMBD", HQ_MAX_EMBD},
        {"block_count", "HQ_MAX_LAYERS", HQ_MAX_LAYERS},         {"attention.head_count", "HQ_MAX_HEADS", HQ_MAX_HEADS},
        {"attention.head_count_kv", "HQ_MAX_HEADS", HQ_MAX_HEADS}, {"attention.key_length", "HQ_MAX_HEAD_DIM", HQ_MAX_HEAD_DIM},
        {"feed_forward_length", "HQ_MAX_FFN", HQ_MAX_FFN},       {"context_length", "HQ_MAX_CTX", HQ_MAX_CTX}};
    const uint64_t val[] = {V, d, L, H, KV, P, I, ctx};
    for (size_t i = 0; i < sizeof lim / sizeof *lim; i++)
        if (val[i] > lim[i].max)
            return hq_fail(c->err, HQ_ERR_LIMIT, "%s: %s.%s is %llu, above %s (%llu, core/limits.h)", lab, m->arch,
                           lim[i].key, (unsigned long long)val[i], lim[i].limit, (unsigned long long)lim[i].max);
    if (V < 1 || d < 1 || L < 1 || H < 1 || KV < 1 || H % KV != 0 || P < 2 || P % 2 != 0)
        return hq_fail(c->err, HQ_ERR_FORMAT,
                       "%s: hyperparameters out of range (vocab %llu, d %llu, layers %llu, heads %llu/%llu, head_dim %llu)",
                       lab, (unsigned long long)V, (unsigned long long)d, (unsigned long long)L, (unsigned long long)H,
                       (unsigned long long)KV, (unsigned long long)P);
    m->V = (int64_t)V; m->d = (int64_t)d; m->L = (int64_t)L; m->H = (int64_t)H; m->KV = (int64_t)KV;
    m->P = (int64_t)P; m->I = (int64_t)I; m->ctx_len = (int64_t)ctx;
    m->eps = 1e-6f;
    get_f32(c, "attention.layer_norm_rms_epsilon", &m->eps);
    get_u64(c, "attention.keep_window_size", &kw);
    get_u64(c, "attention.sliding_window", &sw);
    m->keep_window = (int64_t)kw;
    m->window = (int64_t)sw;
    m->keep_topk = false;
    get_bool(c, "attention.keep_window_topk", &m->keep_topk);
    float ratio = 0;
    if (get_f32(c, "attention.dynamic_mask_ratio", &ratio) && ratio != 0.0f)
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: dynamic_mask_ratio %g is not supported (only 0)", lab, ratio);
    m->rope_theta = 10000.0f;
    get_f32(c, "rope.freq_base", &m->rope_theta);
    m->rope_factor = 1.0f;
    get_f32(c, "rope.scaling.factor", &m->rope_factor);
    char k[128];
    fmt_gguf_str st;
    m->rope_dynamic = false;
    if (keyf(c, "rope.scaling.type", k, sizeof k) && fmt_gguf_get_str(c->g, k, &st)) {
        if (str_is(&st, "dynamic")) m->rope_dynamic = true;
        else if (!str_is(&st, "none"))
            return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: rope scaling type '%.*s' not supported (none, dynamic)", lab,
                           (int)(st.len > 32 ? 32 : st.len), st.s);
    }
    m->rope_orig = (int64_t)ctx;
    if (get_u64(c, "rope.scaling.original_context_length", &orig) && orig > 0) m->rope_orig = (int64_t)orig;
    /* absurd values would give PPL = nan with exit 0: refuse them here, for
     * every command that loads a model */
    if (!(isfinite(m->eps) && m->eps > 0 && m->eps < 1))
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: %s.attention.layer_norm_rms_epsilon is %g, must be in (0, 1)", lab,
                       m->arch, (double)m->eps);
    if (!(isfinite(m->rope_theta) && m->rope_theta > 1))
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: %s.rope.freq_base is %g, must be finite and > 1", lab, m->arch,
                       (double)m->rope_theta);
    if (!(isfinite(m->rope_factor) && m->rope_factor > 0))
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: %s.rope.scaling.factor is %g, must be finite and > 0", lab, m->arch,
                       (double)m->rope_factor);
    if (ctx < 1)
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: %s.context_length is 0, must be at least 1", lab, m->arch);
    m->ssd_chunk = get_u64(c, "ssd.chunk_size", &chunk) && chunk > 0 && chunk <= 4096 ? (int64_t)chunk : 64;
    if (keyf(c, "hidden_act", k, sizeof k) && fmt_gguf_get_str(c->g, k, &st) && !str_is(&st, "silu"))
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: hidden_act '%.*s' not supported (silu)", lab,
                       (int)(st.len > 32 ? 32 : st.len), st.s);
    return HQ_OK;
}

/* bos/eos ids from the metadata, refused outside the vocabulary (a BOS
 * beyond it would be dropped silently, an EOS never seen) */
static hq_status read_token_ids(rt_model *m, char *err) {
    static const char *const ids[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    uint32_t v;
    m->bos = m->eos = -1;
    for (int k = 0; k < 2; k++)
        if (fmt_gguf_get_u32(m->g, ids[k], &v)) {
            if ((int64_t)v >= m->V)
                return hq_fail(err, HQ_ERR_FORMAT, "%s: %s %u is outside the vocabulary of %lld tokens",
                               fmt_gguf_label(m->g), ids[k], v, (long long)m->V);
            *(k ? &m->eos : &m->bos) = (int32_t)v;
        }
    return HQ_OK;
}

hq_status rt_model_check_metadata(fmt_gguf *g, char *err) {
    fmt_gguf_str arch;
    if (!fmt_gguf_get_str(g, "general.architecture", &arch) || arch.len >= sizeof ((rt_model *)0)->arch ||
        !(str_is(&arch, "cheems") || str_is(&arch, "doge") || str_is(&arch, "otce")))
        return HQ_OK; /* the runtime refuses other architectures when it loads them */
    rt_model m;
    memset(&m, 0, sizeof m);
    m.g = g;
    memcpy(m.arch, arch.s, arch.len);
    ld_ctx c = {.m = &m, .g = g, .err = err, .st = HQ_OK};
    /* a file without the basic sizes is not a runnable model anyway (the
     * loader says so); quantize may still convert its tensors */
    uint64_t u;
    if (!get_u64(&c, "vocab_size", &u) || !get_u64(&c, "embedding_length", &u) || !get_u64(&c, "block_count", &u) ||
        !get_u64(&c, "attention.head_count", &u))
        return HQ_OK;
    hq_status st = read_hparams(&c);
    return st ? st : read_token_ids(&m, err);
}

static hq_status load_tokenizer(rt_model *m, char *err) {
    fmt_gguf_str js;
    const char *lab = fmt_gguf_label(m->g);
    hq_status st0 = read_token_ids(m, err);
    if (st0) return st0;
    m->add_bos = false;
    fmt_gguf_get_bool(m->g, "tokenizer.ggml.add_bos_token", &m->add_bos);
    if (!fmt_gguf_get_str(m->g, "tokenizer.huggingface.json", &js)) return HQ_OK;
    char e2[HQ_ERR_LEN];
    hq_status st = rt_tokenizer_load(js.s, js.len, fmt_gguf_label(m->g), &m->tok, e2);
    if (st != HQ_OK) return hq_fail(err, st, "%s: embedded tokenizer: %s", lab, e2);
    int32_t tv = rt_tokenizer_vocab_size(m->tok);
    if (tv > m->V) /* caught here, not mid-forward as an out-of-range embedding row */
        return hq_fail(err, HQ_ERR_MISMATCH, "%s: the embedded tokenizer has token ids up to %d but token_embd.weight "
                       "has %lld rows", lab, tv - 1, (long long)m->V);
    return HQ_OK;
}

hq_status rt_model_load(const char *gguf_path, rt_model **out, char *err) {
    *out = NULL;
    rt_model *m = hq_calloc(1, sizeof *m);
    if (!m) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", gguf_path);
    rt_backend_model_init(m); /* runtime/backend.c: the CPU table, process-default settings */
    hq_status st = fmt_gguf_open(gguf_path, &m->g, err);
    if (st != HQ_OK) {
        rt_backend_model_free(m);
        hq_free(m);
        return st;
    }
    ld_ctx c = {.m = m, .g = m->g, .err = err, .st = HQ_OK};
    const char *lab = fmt_gguf_label(m->g);
    fmt_gguf_str arch;
    if (!fmt_gguf_get_str(m->g, "general.architecture", &arch)) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: no general.architecture", lab);
        goto fail;
    }
    if (!str_is(&arch, "cheems") && !str_is(&arch, "doge") && !str_is(&arch, "otce")) {
        st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: unknown architecture '%.*s' (supported: cheems, doge, otce)", lab,
                     (int)(arch.len > 32 ? 32 : arch.len), arch.s);
        goto fail;
    }
    memcpy(m->arch, arch.s, arch.len);
    m->arch[arch.len] = 0;
    if ((st = read_hparams(&c)) != HQ_OK) goto fail;
    c.used = hq_calloc((size_t)fmt_gguf_n_tensors(m->g) + 1, 1);
    m->layers = hq_calloc((size_t)m->L, sizeof(rt_layer));
    if (!c.used || !m->layers) {
        st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", lab);
        goto fail;
    }
    const fmt_gguf_str *mix = str_array(&c, "layer_mixers", (uint64_t)m->L);
    const fmt_gguf_str *ffn = str_array(&c, "layer_ffns", (uint64_t)m->L);
    if (!mix || !ffn) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: %s.layer_mixers / %s.layer_ffns missing or not %lld strings", lab, m->arch,
                     m->arch, (long long)m->L);
        goto fail;
    }
    if (str_is(&arch, "otce")) {
        /* runtime/model_otce.c: its own layer layout (module paths under blk.N.) */
        m->otce = true;
        c.st = rt_otce_load(&c);
        goto loaded;
    }
    get_mat(&c, fmt_schema_get(FMT_T_TOKEN_EMBD)->name, m->V, m->d, true, &m->tok_embd);
    m->out_norm = get_vec(&c, fmt_schema_get(FMT_T_OUTPUT_NORM)->name, m->d, true);
    get_mat(&c, fmt_schema_get(FMT_T_OUTPUT)->name, m->V, m->d, false, &m->output);
    m->tied = m->output.data == NULL;
    if (m->tied) m->output = m->tok_embd;
    for (int64_t i = 0; i < m->L && c.st == HQ_OK; i++) {
        if ((m->I < 1) && c.st == HQ_OK) {
            c.st = hq_fail(err, HQ_ERR_FORMAT, "%s: %s.feed_forward_length missing", lab, m->arch);
            break;
        }
        load_layer(&c, i, &mix[i], &ffn[i]);
    }
loaded:
    if ((st = c.st) != HQ_OK) goto fail;
    if (c.n_missing) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: %d expected tensor%s missing: %s%s", lab, c.n_missing,
                     c.n_missing > 1 ? "s" : "", c.missing, c.n_missing > 6 ? ", ..." : "");
        goto fail;
    }
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(m->g); i++)
        if (!c.used[i]) {
            st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: unexpected tensor '%s' (not part of a %s model as described by "
                         "its metadata)", lab, fmt_gguf_tensor_at(m->g, i)->name, m->arch);
            goto fail;
        }
    if ((st = load_tokenizer(m, err)) != HQ_OK) goto fail;
    hq_free(c.used);
    *out = m;
    return HQ_OK;
fail:
    hq_free(c.used);
    rt_model_free(m);
    return st;
}

void rt_model_free(rt_model *m) {
    if (!m) return;
    rt_backend_model_free(m); /* runtime/backend.c: the backend's copy, the arena */
    for (int64_t i = 0; i < m->n_owned; i++) hq_free(m->owned[i]);
    hq_free(m->owned);
    hq_free(m->layers);
    if (m->tok) rt_tokenizer_free(m->tok);
    fmt_gguf_close(m->g);
    hq_free(m);
}

int32_t rt_model_n_vocab(const rt_model *m) { return (int32_t)m->V; }
int32_t rt_model_n_layers(const rt_model *m) { return (int32_t)m->L; }
int32_t rt_model_n_embd(const rt_model *m) { return (int32_t)m->d; }
struct rt_tokenizer *rt_model_tokenizer(const rt_model *m) { return m->tok; }
int64_t rt_model_ctx_len(const rt_model *m) { return m->ctx_len; }
const char *rt_model_path(const rt_model *m) { return fmt_gguf_label(m->g); }
int32_t rt_model_bos(const rt_model *m) { return m->bos; }
int32_t rt_model_eos(const rt_model *m) { return m->eos; }
bool rt_model_add_bos(const rt_model *m) { return m->add_bos; }
const char *rt_model_arch(const rt_model *m) { return m->arch; }
void rt_use_reference_kernels(bool on) { rt_ops_set_ref(on); }
void rt_model_set_threads(rt_model *m, int n) { m->threads = n < 0 ? 0 : n; }
void rt_model_set_reference(rt_model *m, int on) { m->ref = on < 0 ? -1 : on != 0; }
void rt_model_set_hf_prefill(rt_model *m, bool on) {
    m->router_quirk = on;
    m->keep_hf_call = on;
}

void rt_model_set_hooks(rt_model *m, const rt_hooks *h) {
    if (h) {
        m->hooks = *h;
        m->has_hooks = true;
    } else {
        memset(&m->hooks, 0, sizeof m->hooks);
        m->has_hooks = false;
    }
}

/* ---- sequence state ---- */
hq_status rt_state_new(const rt_model *m, int64_t max_tokens, rt_state **out, char *err) {
    *out = NULL;
    if (max_tokens < 1 || max_tokens > (1ll << 24))
        return hq_fail(err, HQ_ERR_ARG, "state: max_tokens %lld must be in [1, 16777216]", (long long)max_tokens);
    rt_state *s = hq_calloc(1, sizeof *s);
    if (!s) return hq_fail(err, HQ_ERR_NOMEM, "state: out of memory");
    s->m = m;
    s->cap = max_tokens;
    s->kc = hq_calloc((size_t)m->L, sizeof(float *));
    s->vc = hq_calloc((size_t)m->L, sizeof(float *));
    s->beta = hq_calloc((size_t)m->L, sizeof(float *));
    s->ssm = hq_calloc((size_t)m->L, sizeof(float *));
    s->conv = hq_calloc((size_t)m->L, sizeof(float *));
    if (!s->kc || !s->vc || !s->beta || !s->ssm || !s->conv) goto oom;
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        if (ly->mixer == RT_MIX_ATTN) {
            uint64_t kv;
            if (!hq_mul_u64((uint64_t)(m->KV * m->P), (uint64_t)max_tokens, &kv)) goto oom;
            s->kc[i] = hq_malloc_array((size_t)kv, sizeof(float));
            s->vc[i] = hq_malloc_array((size_t)kv, sizeof(float));
            s->beta[i] = hq_malloc_array((size_t)(ly->M * max_tokens), sizeof(float));
            if (!s->kc[i] || !s->vc[i] || !s->beta[i]) goto oom;
        } else {
            s->ssm[i] = hq_calloc((size_t)rt_state_floats(m, i, false), sizeof(float));
            if (!s->ssm[i]) goto oom;
            if (ly->mixer == RT_MIX_MAMBA && !(s->conv[i] = hq_calloc((size_t)rt_state_floats(m, i, true), sizeof(float))))
                goto oom;
        }
    }
    /* the forward scratch for the largest call this state can take */
    hq_status st = rt_arena_reserve(m, rt_forward_arena_bytes(m, s, max_tokens, 0), err);
    if (st != HQ_OK) {
        rt_state_free(s);
        return st;
    }
    *out = s;
    return HQ_OK;
oom:
    rt_state_free(s);
    return hq_fail(err, HQ_ERR_NOMEM, "state: out of memory for the caches of %lld tokens", (long long)max_tokens);
}

void rt_state_reset(rt_state *s) {
    rt_state_forget_mirror(s); /* the zeroed host state is the newest again */
    s->pos = 0;
    for (int64_t i = 0; i < s->m->L; i++) {
        if (s->ssm[i]) memset(s->ssm[i], 0, (size_t)rt_state_floats(s->m, i, false) * sizeof(float));
        if (s->conv[i]) memset(s->conv[i], 0, (size_t)rt_state_floats(s->m, i, true) * sizeof(float));
    }
}

/* floats of layer li's recurrent state: SSD (H, P, P); Mamba ssm (E, N), conv (E, K) */
int64_t rt_state_floats(const rt_model *m, int64_t li, bool conv) {
    const rt_layer *ly = &m->layers[li];
    if (ly->mixer == RT_MIX_MAMBA) return ly->mamba.E * (conv ? ly->mamba.K : ly->mamba.N);
    if (ly->mixer == RT_MIX_SSD && !conv) return m->H * m->P * m->P;
    return 0;
}

void rt_state_free(rt_state *s) {
    if (!s) return;
    rt_state_forget_mirror(s);
    for (int64_t i = 0; i < s->m->L; i++) {
        if (s->kc) hq_free(s->kc[i]);
        if (s->vc) hq_free(s->vc[i]);
        if (s->beta) hq_free(s->beta[i]);
        if (s->ssm) hq_free(s->ssm[i]);
        if (s->conv) hq_free(s->conv[i]);
    }
    hq_free(s->kc);
    hq_free(s->vc);
    hq_free(s->beta);
    hq_free(s->ssm);
    hq_free(s->conv);
    hq_free(s);
}

int64_t rt_state_pos(const rt_state *s) { return s->pos; }
