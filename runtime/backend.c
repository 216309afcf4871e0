/* runtime/backend.c — the CPU op table, choosing a model's backend
 * (support check, parameter upload), its scratch arena, and the view of a
 * sequence state that backends mirror (runtime/backend_ops.h). */
#include "model_internal.h" // defines: rt_model, rt_layer, rt_state, rt_backend_ops

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------- the CPU ops ---------------- */
static hq_status cpu_embed(rt_exec *x, const rt_weight *w, const int32_t *tok, int64_t n, float *out) {
    (void)x;
    for (int64_t t = 0; t < n; t++) rt_weight_row_f32(w, tok[t], out + t * w->n_in);
    return HQ_OK;
}
static hq_status cpu_rmsnorm(rt_exec *x, const float *in, const float *w, float *y, int64_t rows, int64_t d, float eps) {
    (void)x;
    rt_rmsnorm(in, w, y, rows, d, eps);
    return HQ_OK;
}
static hq_status cpu_matmul(rt_exec *x, const rt_weight *w, const float *in, float *y, int64_t n, const float *bias,
                            void *scratch, bool same_x) {
    (void)scratch, (void)same_x; /* each CPU matmul converts its activations itself */
    return rt_matmul(w, in, y, n, bias, x->err);
}
static hq_status cpu_rope(rt_exec *x, float *v, int64_t n, int64_t heads, int64_t P, int64_t pos0, const int64_t *dpos,
                          float base) {
    (void)x, (void)dpos; /* host memory: the walk passes the position by value */
    int64_t pos[256];    /* rt_rope takes one position per token; per-token arithmetic, so pieces are exact */
    for (int64_t t0 = 0; t0 < n; t0 += 256) {
        int64_t cnt = n - t0 < 256 ? n - t0 : 256;
        for (int64_t i = 0; i < cnt; i++) pos[i] = pos0 + t0 + i;
        rt_rope(v + t0 * heads * P, cnt, heads, P, pos, base);
    }
    return HQ_OK;
}
static hq_status cpu_swiglu(rt_exec *x, float *g, const float *u, int64_t n) {
    (void)x;
    rt_swiglu(g, u, n);
    return HQ_OK;
}
static hq_status cpu_softplus_bias(rt_exec *x, float *dt, const float *bias, int64_t n, int64_t H) {
    (void)x;
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < H; h++) {
            float z = dt[t * H + h] + (bias ? bias[h] : 0.0f);
            dt[t * H + h] = rt_softplus(z);
        }
    return HQ_OK;
}
static hq_status cpu_residual(rt_exec *x, float *h, const float *r, const float *br, int64_t n, int64_t d) {
    (void)x;
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < d; i++) h[t * d + i] = r[i] * h[t * d + i] + br[t * d + i];
    return HQ_OK;
}
static hq_status cpu_copy(rt_exec *x, void *dst, const void *src, uint64_t bytes) {
    (void)x;
    memcpy(dst, src, (size_t)bytes);
    return HQ_OK;
}
static hq_status cpu_kv_append(rt_exec *x, float *kc, float *vc, float *beta, const float *k, const float *v,
                               const float *dt, const float *A, int64_t n, int64_t KV, int64_t P, int64_t M,
                               int64_t cap, int64_t pos0, const int64_t *dpos) {
    (void)x, (void)dpos;
    for (int64_t t = 0; t < n; t++) {
        int64_t j = pos0 + t;
        for (int64_t g = 0; g < KV; g++) {
            memcpy(kc + (g * cap + j) * P, k + (t * KV + g) * P, (size_t)P * sizeof(float));
            memcpy(vc + (g * cap + j) * P, v + (t * KV + g) * P, (size_t)P * sizeof(float));
        }
        /* β_j = exp(A · softplus(W_dt v_j + b_dt)); no A: plain attention */
        for (int64_t mm = 0; mm < M; mm++) beta[mm * cap + j] = A ? expf(A[mm] * rt_softplus(dt[t * M + mm])) : 0.0f;
    }
    return HQ_OK;
}
static hq_status cpu_attn(rt_exec *x, const rt_attn_params *ap, const float *q, const float *kc, const float *vc,
                          const float *beta, int64_t pos0, const int64_t *dpos, int64_t n, float *out, void *scratch) {
    (void)x, (void)dpos;
    rt_attn(ap, q, kc, vc, beta, pos0, n, out, scratch);
    return HQ_OK;
}
static hq_status cpu_ssd(rt_exec *x, const rt_ssd_dims *dm, int64_t n, int64_t chunk, const float *xs, const float *b,
                         const float *c, const float *dt, const float *A, const float *D, float *state, float *y,
                         void *scratch) {
    (void)x;
    /* decode and the reference run use the step recurrence; growing heads
     * (chunk 0) too: the chunked form exponentiates cumulative sums and
     * overflows before the recurrence does (spec §4.5) */
    if (n == 1 || rt_ops_ref() || chunk <= 0)
        rt_ssd_scan(dm, n, xs, b, c, dt, A, D, state, y);
    else
        rt_ssd_chunked(dm, n, chunk, xs, b, c, dt, A, D, state, y, scratch);
    return HQ_OK;
}
static hq_status cpu_route_router(rt_exec *x, const float *lg, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w) {
    (void)x;
    rt_route_router(lg, n, Kk, k, ids, w);
    return HQ_OK;
}
static hq_status cpu_route_pk(rt_exec *x, const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R,
                              int64_t Kk, int64_t k, int32_t *ids, float *w, void *scratch) {
    (void)x, (void)scratch;
    rt_route_pk(q, keys, n, Hr, R, Kk, k, ids, w);
    return HQ_OK;
}
static hq_status cpu_experts(rt_exec *x, const rt_weight *down, const rt_weight *up, const float *in, int64_t n,
                             const int32_t *ids, const float *w, int64_t k_total, float *out, void *scratch) {
    (void)scratch;
    return rt_experts(down, up, in, n, ids, w, k_total, out, x->err);
}
static hq_status cpu_norm_bias(rt_exec *x, const float *in, int64_t ldi, const float *w, const float *b, float *y,
                               int64_t ldo, int64_t rows, int64_t d, float eps) {
    (void)x;
    if (ldi == d && ldo == d) rt_otce_rmsnorm(in, w, b, y, rows, d, eps);
    else
        for (int64_t r = 0; r < rows; r++) rt_otce_rmsnorm(in + r * ldi, w, b, y + r * ldo, 1, d, eps);
    return HQ_OK;
}
static hq_status cpu_tanh_swiglu(rt_exec *x, float *g, const float *u, int64_t n) {
    (void)x;
    rt_tanh_swiglu(g, u, n);
    return HQ_OK;
}
static hq_status cpu_silu(rt_exec *x, float *v, int64_t n) {
    (void)x;
    for (int64_t i = 0; i < n; i++) v[i] = rt_silu(v[i]);
    return HQ_OK;
}
static hq_status cpu_axpby(rt_exec *x, float *y, const float *xs, float a, float b, int64_t n) {
    (void)x;
    for (int64_t i = 0; i < n; i++) {
        float v = b != 0.0f ? b * y[i] : 0.0f;
        /* b == 1: y + a·x, the order of the reference's out += expert·w */
        y[i] = a != 0.0f ? (b == 1.0f ? y[i] + xs[i] * a : v + xs[i] * a) : v;
    }
    return HQ_OK;
}
static hq_status cpu_gate_scale(rt_exec *x, float *s, const float *g, int64_t n, int64_t d) {
    (void)x;
    for (int64_t t = 0; t < n; t++) {
        float sg = 1.0f / (1.0f + expf(-g[t]));
        for (int64_t i = 0; i < d; i++) s[t * d + i] *= sg;
    }
    return HQ_OK;
}
static hq_status cpu_otce_route(rt_exec *x, const float *lg, int64_t n, int64_t E, int64_t k, int32_t *ids, float *w) {
    (void)x;
    rt_otce_route(lg, n, E, k, ids, w);
    return HQ_OK;
}
static hq_status cpu_conv1d(rt_exec *x, const float *in, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w,
                            const float *b, float *state, float *y) {
    (void)x;
    rt_conv1d(in, ldx, n, C, K, w, b, state, true, y);
    return HQ_OK;
}
static hq_status cpu_mamba_scan(rt_exec *x, const float *u, const float *delta, const float *A, const float *B,
                                const float *C, const float *D, const float *z, int64_t ldz, int64_t n, int64_t E,
                                int64_t N, float *state, float *y) {
    (void)x;
    rt_mamba_scan(u, delta, A, B, C, D, z, ldz, n, E, N, state, y);
    return HQ_OK;
}
static uint64_t cpu_attn_scratch(void *be, const rt_attn_params *ap, int64_t n) {
    (void)be, (void)n;
    return (uint64_t)rt_attn_scratch(ap) * (uint64_t)rt_n_threads() * 4u;
}
static uint64_t cpu_ssd_scratch(void *be, const rt_ssd_dims *dm, int64_t chunk, int64_t n) {
    (void)be;
    if (chunk <= 0 || n <= 1) return 0;
    return (uint64_t)rt_ssd_chunked_scratch(dm, chunk) * (uint64_t)rt_n_threads() * 4u;
}

const rt_backend_ops rt_backend_cpu = {
    .name = "cpu",
    .label = "cpu",
    .host_memory = true,
    .host_addressable = true,
    .attn_scratch = cpu_attn_scratch,
    .ssd_scratch = cpu_ssd_scratch,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .softplus_bias = cpu_softplus_bias,
    .residual = cpu_residual,
    .copy = cpu_copy,
    .kv_append = cpu_kv_append,
    .attn = cpu_attn,
    .ssd = cpu_ssd,
    .route_router = cpu_route_router,
    .route_pk = cpu_route_pk,
    .experts = cpu_experts,
    .norm_bias = cpu_norm_bias,
    .tanh_swiglu = cpu_tanh_swiglu,
    .silu = cpu_silu,
    .axpby = cpu_axpby,
    .gate_scale = cpu_gate_scale,
    .otce_route = cpu_otce_route,
    .conv1d = cpu_conv1d,
    .mamba_scan = cpu_mamba_scan,
};

/* ---------------- the arena ---------------- */
struct rt_arena {
    void *base;
    uint64_t cap, gen;
    const rt_backend_ops *ops; /* whose memory base is */
    void *be;
};

static void arena_drop(rt_model *m) {
    struct rt_arena *a = m->arena;
    if (!a || !a->base) return;
    if (a->ops && a->ops->free) a->ops->free(a->be, a->base);
    else hq_free(a->base);
    a->base = NULL;
    a->cap = 0;
}

hq_status rt_arena_reserve(const rt_model *m, uint64_t bytes, char *err) {
    struct rt_arena *a = m->arena;
    if (!a) return hq_fail(err, HQ_ERR_NOMEM, "forward: out of memory");
    if (a->base && (a->ops != m->be_ops || a->be != m->be)) arena_drop((rt_model *)m);
    if (a->base && a->cap >= bytes) return HQ_OK;
    arena_drop((rt_model *)m);
    const rt_backend_ops *o = m->be_ops;
    a->base = o->alloc ? o->alloc(m->be, bytes ? bytes : 1) : hq_malloc((size_t)(bytes ? bytes : 1));
    if (!a->base)
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory for %llu bytes of forward scratch", o->label,
                       (unsigned long long)bytes);
    a->cap = bytes;
    a->gen++;
    a->ops = o;
    a->be = m->be;
    return HQ_OK;
}

uint64_t rt_arena_gen(const rt_model *m) { return m->arena ? m->arena->gen : 0; }
void *rt_arena_base(const rt_model *m, uint64_t *cap) {
    *cap = m->arena ? m->arena->cap : 0;
    return m->arena ? m->arena->base : NULL;
}

/* ---------------- the model's backend ---------------- */
void rt_backend_model_init(rt_model *m) {
    if (!m->arena) m->arena = hq_calloc(1, sizeof *m->arena); /* NULL: rt_arena_reserve reports it */
    m->be_ops = &rt_backend_cpu;
    m->be = NULL;
    m->ops = rt_backend_cpu;
    m->ref = -1;
}

static void release(rt_model *m) {
    arena_drop(m);
    if (m->be_ops && m->be_ops->release) m->be_ops->release(m->be);
    rt_backend_model_init(m);
}

void rt_backend_model_free(rt_model *m) {
    release(m);
    hq_free(m->arena);
    m->arena = NULL;
}

const char *rt_model_backend_name(const rt_model *m) { return m->be_ops->name; }

/* ops the table lacks: the CPU's where its memory is host-addressable and
 * the op keeps no state; the name of the first one that cannot be filled */
#define FILL(op, stateful)                                                                 \
    do {                                                                                   \
        if (!r->op) {                                                                      \
            if (!o->host_addressable || (stateful)) return #op;                            \
            r->op = rt_backend_cpu.op;                                                     \
        }                                                                                  \
    } while (0)
/* the OTCE ops matter only to an OTCE model (others never call them) */
#define FILL_OTCE(op, stateful) do { if (otce) FILL(op, stateful); } while (0)
static const char *resolve(const rt_backend_ops *o, rt_backend_ops *r, bool otce) {
    *r = *o;
    FILL(embed, false); FILL(rmsnorm, false); FILL(matmul, false); FILL(rope, false); FILL(swiglu, false);
    FILL(softplus_bias, false); FILL(residual, false); FILL(copy, false); FILL(route_router, false);
    FILL(route_pk, false); FILL(experts, false);
    FILL(kv_append, true); FILL(attn, true); FILL(ssd, true);
    FILL_OTCE(norm_bias, false); FILL_OTCE(tanh_swiglu, false); FILL_OTCE(silu, false); FILL_OTCE(axpby, false);
    FILL_OTCE(gate_scale, false); FILL_OTCE(otce_route, false);
    FILL_OTCE(conv1d, true); FILL_OTCE(mamba_scan, true);
    return NULL;
}
#undef FILL_OTCE
#undef FILL

static const char *why_not(const rt_model *m, const rt_backend_ops *T, void *be, char *buf, size_t len) {
    const rt_weight *ws[24];
    /* upload_all and the checks below know the Cheems/Doge layers only */
    if (m->otce && T->upload)
        return snprintf(buf, len, "OTCE parameters are not uploaded to device backends yet"), buf;
    if (T->rope_ok && !T->rope_ok(be, m->P))
        return snprintf(buf, len, "head dim %lld has no RoPE kernel", (long long)m->P), buf;
    for (int64_t li = -1; li < m->L; li++) {
        int nw = 0;
        if (li < 0) {
            ws[nw++] = &m->output;
        } else {
            const rt_layer *ly = &m->layers[li];
            if (ly->mixer == RT_MIX_ATTN) {
                ws[nw++] = &ly->q, ws[nw++] = &ly->k, ws[nw++] = &ly->v, ws[nw++] = &ly->o, ws[nw++] = &ly->dt;
                rt_attn_params ap = {.H = m->H, .KV = m->KV, .P = m->P, .M = ly->M, .cap = 1, .window = m->window,
                                     .keep_window = m->keep_topk ? m->keep_window : 0, .scale = 1};
                if (T->attn_ok && !T->attn_ok(be, &ap))
                    return snprintf(buf, len, "layer %lld: attention shape has no kernel (P %lld)", (long long)li,
                                    (long long)m->P), buf;
            } else {
                ws[nw++] = &ly->sx, ws[nw++] = &ly->sb, ws[nw++] = &ly->sc, ws[nw++] = &ly->sdt, ws[nw++] = &ly->sout;
                rt_ssd_dims dm = {m->H, m->P, m->H, m->P};
                if (T->ssd_ok && !T->ssd_ok(be, &dm))
                    return snprintf(buf, len, "layer %lld: SSD state size %lld has no kernel", (long long)li,
                                    (long long)m->P), buf;
            }
            ws[nw++] = &ly->gate, ws[nw++] = &ly->up, ws[nw++] = &ly->down;
            if (ly->ffn != RT_FFN_MLP) {
                ws[nw++] = ly->ffn == RT_FFN_ROUTER ? &ly->router : &ly->pk_query;
                ws[nw++] = &ly->ex_down, ws[nw++] = &ly->ex_up;
                if (T->route_ok && !T->route_ok(be, ly->Kk, ly->topk))
                    return snprintf(buf, len, "layer %lld: routing Kk %lld top-%lld has no kernel", (long long)li,
                                    (long long)ly->Kk, (long long)ly->topk), buf;
            }
        }
        for (int i = 0; i < nw; i++)
            if (T->matmul_ok && !T->matmul_ok(be, ws[i]->type, ws[i]->n_in))
                return snprintf(buf, len, "tensor '%s' (%s, row %lld) has no CUDA kernel", ws[i]->name,
                                ggml_type_name(ws[i]->type), (long long)ws[i]->n_in), buf;
    }
    if (T->matmul_ok && !T->matmul_ok(be, m->tok_embd.type, m->tok_embd.n_in))
        return snprintf(buf, len, "tensor '%s' (%s) has no CUDA kernel", m->tok_embd.name,
                        ggml_type_name(m->tok_embd.type)), buf;
    return NULL;
}

/* every parameter the walk passes to an op, uploaded once (matrices
 * deduplicated by host pointer: a tied lm_head shares the embedding) */
static int upload_all(const rt_model *m, const rt_backend_ops *o, void *be) {
    int64_t d = m->d, HP = m->H * m->P, KVP = m->KV * m->P, I = m->I;
#define W(w) ((w).data && o->upload(be, (w).data, (w).row_bytes * (uint64_t)(w).n_out, true) != 0)
#define V(v, n) ((v) && o->upload(be, (v), (uint64_t)(n) * 4u, false) != 0)
    if (W(m->tok_embd) || W(m->output) || V(m->out_norm, d)) return -1;
    for (int64_t li = 0; li < m->L; li++) {
        const rt_layer *ly = &m->layers[li];
        if (V(ly->attn_norm, d) || V(ly->attn_res, d) || V(ly->ffn_norm, d) || V(ly->ffn_res, d)) return -1;
        if (ly->mixer == RT_MIX_ATTN) {
            if (W(ly->q) || W(ly->k) || W(ly->v) || W(ly->o) || W(ly->dt) || V(ly->bq, HP) || V(ly->bk, KVP) ||
                V(ly->bv, KVP) || V(ly->bo, d) || V(ly->q_norm, m->P) || V(ly->k_norm, m->P) || V(ly->b_dt, ly->M) ||
                V(ly->attn_a, ly->M))
                return -1;
        } else if (W(ly->sx) || W(ly->sb) || W(ly->sc) || W(ly->sdt) || W(ly->sout) || V(ly->b_sx, HP) ||
                   V(ly->b_sb, HP) || V(ly->b_sc, HP) || V(ly->b_sdt, m->H) || V(ly->b_sout, d) ||
                   V(ly->ssm_dt_bias, m->H) || V(ly->ssm_a, m->H) || V(ly->ssm_d, m->H)) {
            return -1;
        }
        if (W(ly->gate) || W(ly->up) || W(ly->down) || V(ly->b_gate, I) || V(ly->b_up, I) || V(ly->b_down, d))
            return -1;
        if (ly->ffn == RT_FFN_ROUTER && (W(ly->router) || V(ly->b_router, 2 * ly->Kk))) return -1;
        if (ly->ffn == RT_FFN_PK && (W(ly->pk_query) || V(ly->pk_keys, ly->Hr * ly->Kk * ly->R))) return -1;
        if (ly->ffn != RT_FFN_MLP && (W(ly->ex_down) || W(ly->ex_up))) return -1;
    }
#undef W
#undef V
    return 0;
}

hq_status rt_model_set_backend(rt_model *m, const rt_backend_ops *ops, void *be, char *why, size_t why_len,
                               char *err) {
    if (why && why_len) why[0] = 0;
    release(m);
    if (!ops || ops == &rt_backend_cpu) return HQ_OK;
    char buf[300];
    rt_backend_ops r;
    const char *missing = resolve(ops, &r, m->otce), *w = missing ? NULL : why_not(m, ops, be, buf, sizeof buf);
    if (missing || w) {
        if (missing) snprintf(buf, sizeof buf, "the backend has no '%s' op", missing), w = buf;
        if (why && why_len) snprintf(why, why_len, "%s", w);
        if (ops->release) ops->release(be);
        return HQ_OK;
    }
    if (ops->upload && upload_all(m, ops, be) != 0) {
        hq_fail(err, HQ_ERR_NOMEM, "%s: out of device memory uploading the weights", ops->label);
        if (ops->release) ops->release(be); /* may free ops itself */
        return HQ_ERR_NOMEM;
    }
    m->be_ops = ops;
    m->be = be;
    m->ops = r;
    return HQ_OK;
}

/* ---------------- the state as backends see it ---------------- */
int64_t rt_state_cap(const rt_state *s) { return s->cap; }
rt_state_mirror *rt_state_mirror_of(rt_state *s) { return &s->mirror; }

/* per layer: attention kc, vc, beta; SSD: its state; Mamba: ssm, conv */
int64_t rt_state_n_bufs(const rt_state *s) {
    int64_t n = 0;
    for (int64_t i = 0; i < s->m->L; i++) {
        rt_mixer_kind k = s->m->layers[i].mixer;
        n += k == RT_MIX_ATTN ? 3 : k == RT_MIX_MAMBA ? 2 : 1;
    }
    return n;
}

rt_state_buf rt_state_buf_at(const rt_state *s, int64_t k) {
    const rt_model *m = s->m;
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        if (ly->mixer == RT_MIX_ATTN) {
            if (k < 3) {
                if (k == 2) return (rt_state_buf){s->beta[i], ly->M, s->cap, 1, true};
                return (rt_state_buf){k == 0 ? s->kc[i] : s->vc[i], m->KV, s->cap, m->P, true};
            }
            k -= 3;
        } else if (ly->mixer == RT_MIX_MAMBA) {
            if (k < 2) return (rt_state_buf){k == 0 ? s->ssm[i] : s->conv[i], 1, 1, rt_state_floats(m, i, k == 1), false};
            k -= 2;
        } else {
            if (k == 0) return (rt_state_buf){s->ssm[i], 1, 1, m->H * m->P * m->P, false};
            k -= 1;
        }
    }
    return (rt_state_buf){0};
}

void rt_state_forget_mirror(rt_state *s) {
    if (s->mirror.be && s->mirror.ops && s->mirror.ops->state_forget) s->mirror.ops->state_forget(s->mirror.be, s);
    s->mirror.be = NULL;
    s->mirror.newer = false;
}
