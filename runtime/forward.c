/* runtime/forward.c — the forward pass (spec §4.4, §4.9, Appendix B): the
 * one walk of the model, for every backend (runtime/backend_ops.h).
 *   for each layer: x̂ = RMSNorm(h; w₁); a = Mixer(x̂); h = r₁ ⊙ h + a
 *                   x̂ = RMSNorm(h; w₂); m = FFN(x̂);   h = r₂ ⊙ h + m
 *   logits = W_lm · RMSNorm(h; w_final)
 * Every op goes through the model's table (m->ops). Prefill (n > 1) uses
 * matrix-matrix products and, on the CPU, the chunked SSD form; decode
 * (n == 1) matrix-vector products and the SSD step recurrence. Positions are
 * absolute (the state's counter).
 *
 * Scratch: the walk runs twice per call, first without calling any op
 * ("measure": it only counts what it takes and asks the backend for the op
 * scratch), so the size formula is the walk itself. The arena is reserved
 * when a state is set up (rt_state_new, for the largest call that state can
 * take) and again only when the backend changed; a call never allocates. */
#include "model_internal.h" // defines: rt_model, rt_layer, rt_state, rt_backend_ops

#include <math.h>
#include <string.h>

typedef struct {
    const rt_model *m;
    rt_state *s;
    const rt_backend_ops *B; /* &m->ops */
    rt_exec *x;
    bool measure;            /* count takes and op scratch; call no op */
    uint8_t *base;
    uint64_t used, cap, peak, opmax;
    bool overflow;
    void *opscr;             /* op scratch: the largest any op of this call needs */
    int64_t n, r0;
    float rope_base;
    float *h, *xn, *br;      /* (n, d) residual stream, normed input, branch output */
    /* position: by value, or at a backend address (a replayed step) */
    int64_t pos0;
    const int64_t *dpos;
} fwd;

#define ALIGN 256u /* the largest alignment an op needs (device vector loads) */

/* the next `bytes` of the arena; on overflow the call fails with the sizes */
static void *take(fwd *f, uint64_t bytes) {
    static uint8_t dummy[ALIGN]; /* measure: an address no op will see */
    uint64_t at = (f->used + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
    f->used = at + bytes;
    if (f->used > f->peak) f->peak = f->used;
    if (f->measure) return dummy;
    if (f->used > f->cap) {
        if (!f->overflow)
            hq_fail(f->x->err, HQ_ERR_INTERNAL, "forward: scratch arena too small: needed %llu bytes, have %llu",
                    (unsigned long long)f->used, (unsigned long long)f->cap);
        f->overflow = true;
        return f->base;
    }
    return f->base + at;
}
static float *takef(fwd *f, int64_t n) { return take(f, (uint64_t)n * 4u); }
#define TAKEN() do { if (f->overflow) return HQ_ERR_INTERNAL; } while (0)

#define TRY(e) do { hq_status st_ = (e); if (st_ != HQ_OK) return st_; } while (0)
/* an op call; none while measuring */
#define OP(op, ...) (f->measure ? HQ_OK : f->B->op(f->x, __VA_ARGS__))
/* op scratch: the largest request wins */
#define NEED(fn, ...) do { if (f->measure && f->B->fn) { uint64_t v_ = f->B->fn(f->x->be, __VA_ARGS__); \
                           if (v_ > f->opmax) f->opmax = v_; } } while (0)

/* a backend tensor for an observation hook: itself on host memory, else a copy */
static const void *hook_view(fwd *f, const void *p, uint64_t bytes, void **copy) {
    *copy = NULL;
    if (f->B->host_memory) return p;
    *copy = hq_malloc((size_t)(bytes ? bytes : 4));
    if (*copy && f->B->d2h(f->x->be, *copy, p, bytes) != 0) {
        hq_free(*copy);
        *copy = NULL;
    }
    if (!*copy) f->x->fail = "hook copy";
    return *copy;
}

static hq_status mm_x(fwd *f, const rt_weight *w, const float *x, float *y, int64_t n, const float *bias, bool same_x) {
    NEED(matmul_scratch, w, n);
    if (f->measure) return HQ_OK;
    if (f->m->hooks.on_matmul_input) {
        void *cp;
        const float *hx = hook_view(f, x, (uint64_t)(n * w->n_in) * 4u, &cp);
        if (!hx) return HQ_ERR_INTERNAL;
        f->m->hooks.on_matmul_input(f->m->hooks.ud, w->name, hx, n, w->n_in);
        hq_free(cp);
    }
    return f->B->matmul(f->x, w, x, y, n, bias, f->opscr, same_x);
}
static hq_status mm(fwd *f, const rt_weight *w, const float *x, float *y, int64_t n, const float *bias) {
    return mm_x(f, w, x, y, n, bias, false);
}

static hq_status mixer_attn(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, H = m->H, KV = m->KV, P = m->P, cap = f->s->cap;
    float *q = takef(f, n * H * P), *k = takef(f, n * KV * P), *v = takef(f, n * KV * P);
    float *dt = takef(f, n * ly->M), *o = takef(f, n * H * P);
    TAKEN();
    /* keep-window rule: transformers' cached decode (per query), or its
     * multi-token forward of this call under rt_model_set_hf_prefill */
    rt_attn_params ap = {.H = H, .KV = KV, .P = P, .M = ly->M, .cap = cap, .window = m->window,
                         .keep_window = m->keep_topk ? m->keep_window : 0, .scale = 1.0f / sqrtf((float)P),
                         .keep_rule = m->keep_hf_call ? RT_KEEP_HF_CALL : RT_KEEP_TORCH};
    NEED(attn_scratch, &ap, n);
    /* q, k, v read the same x̂: a backend may quantize it once */
    TRY(mm(f, &ly->q, xn, q, n, ly->bq));
    TRY(mm_x(f, &ly->k, xn, k, n, ly->bk, true));
    TRY(mm_x(f, &ly->v, xn, v, n, ly->bv, true));
    /* q_norm / k_norm: RMSNorm over each head's P-vector, before RoPE */
    if (ly->q_norm) TRY(OP(rmsnorm, q, ly->q_norm, q, n * H, P, m->eps));
    if (ly->k_norm) TRY(OP(rmsnorm, k, ly->k_norm, k, n * KV, P, m->eps));
    TRY(OP(rope, q, n, H, P, f->pos0, f->dpos, f->rope_base));
    TRY(OP(rope, k, n, KV, P, f->pos0, f->dpos, f->rope_base));
    /* β_j = exp(A · softplus(W_dt v_j + b_dt)), from the raw v_proj output */
    TRY(mm(f, &ly->dt, v, dt, n, ly->b_dt));
    float *kc = f->s->kc[li], *vc = f->s->vc[li], *bc = f->s->beta[li];
    TRY(OP(kv_append, kc, vc, bc, k, v, dt, ly->attn_a, n, KV, P, ly->M, cap, f->pos0, f->dpos));
    TRY(OP(attn, &ap, q, kc, vc, bc, f->pos0, f->dpos, n, o, f->opscr));
    return mm(f, &ly->o, o, out, n, ly->bo);
}

static hq_status mixer_ssd(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, H = m->H, P = m->P;
    rt_ssd_dims dm = {.H = H, .P = P, .G = H, .N = P};
    float *x = takef(f, n * H * P), *b = takef(f, n * H * P), *c = takef(f, n * H * P);
    float *dt = takef(f, n * H), *y = takef(f, n * H * P);
    TAKEN();
    /* growing heads (A > 0): only the recurrence (chunk 0), spec §4.5 */
    int64_t chunk = ly->ssm_a_pos ? 0 : m->ssd_chunk;
    NEED(ssd_scratch, &dm, chunk, n);
    TRY(mm(f, &ly->sx, xn, x, n, ly->b_sx));
    TRY(mm_x(f, &ly->sb, xn, b, n, ly->b_sb, true));
    TRY(mm_x(f, &ly->sc, xn, c, n, ly->b_sc, true));
    TRY(mm_x(f, &ly->sdt, xn, dt, n, ly->b_sdt, true));
    /* Δ = softplus(W_dt x̂ (+ dt_bias)) */
    TRY(OP(softplus_bias, dt, ly->ssm_dt_bias, n, H));
    /* RoPE on C and B at the absolute positions (dim P per head) */
    TRY(OP(rope, c, n, H, P, f->pos0, f->dpos, f->rope_base));
    TRY(OP(rope, b, n, H, P, f->pos0, f->dpos, f->rope_base));
    TRY(OP(ssd, &dm, n, chunk, x, b, c, dt, ly->ssm_a, ly->ssm_d, f->s->ssm[li], y, f->opscr));
    return mm(f, &ly->sout, y, out, n, ly->b_sout);
}

static hq_status ffn(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, I = m->I;
    float *g = takef(f, n * I), *u = takef(f, n * I);
    TAKEN();
    /* MLP: W_down(act(W_gate x̂) ⊙ W_up x̂) — also the shared part of CDMoE */
    TRY(mm(f, &ly->gate, xn, g, n, ly->b_gate));
    TRY(mm_x(f, &ly->up, xn, u, n, ly->b_up, true));
    TRY(OP(swiglu, g, u, n * I));
    TRY(mm(f, &ly->down, g, out, n, ly->b_down));
    if (ly->ffn == RT_FFN_MLP) return HQ_OK;
    int64_t kt = ly->Hr * ly->topk;
    int32_t *ids = take(f, (uint64_t)(n * kt) * 4u);
    float *w = takef(f, n * kt);
    TAKEN();
    if (ly->ffn == RT_FFN_ROUTER) {
        float *lg = takef(f, n * 2 * ly->Kk);
        TAKEN();
        TRY(mm(f, &ly->router, xn, lg, n, ly->b_router));
        if (m->router_quirk && n > 1) {
            /* HF: router_logits.view(2, N, Kk) over the flat [N, 2Kk] buffer */
            float *q2 = takef(f, n * 2 * ly->Kk);
            TAKEN();
            uint64_t kb = (uint64_t)ly->Kk * 4u;
            for (int64_t t = 0; t < n; t++) {
                TRY(OP(copy, q2 + t * 2 * ly->Kk, lg + t * ly->Kk, kb));
                TRY(OP(copy, q2 + t * 2 * ly->Kk + ly->Kk, lg + (n + t) * ly->Kk, kb));
            }
            lg = q2;
        }
        TRY(OP(route_router, lg, n, ly->Kk, ly->topk, ids, w));
    } else {
        float *q = takef(f, n * ly->Hr * ly->R);
        TAKEN();
        NEED(route_pk_scratch, n, ly->Hr, ly->Kk);
        TRY(mm(f, &ly->pk_query, xn, q, n, NULL));
        TRY(OP(route_pk, q, ly->pk_keys, n, ly->Hr, ly->R, ly->Kk, ly->topk, ids, w, f->opscr));
    }
    NEED(experts_scratch, &ly->ex_down, n, kt);
    if (m->hooks.on_experts && !f->measure) {
        void *ci, *cx;
        const int32_t *hi = hook_view(f, ids, (uint64_t)(n * kt) * 4u, &ci);
        const float *hx = hook_view(f, xn, (uint64_t)(n * m->d) * 4u, &cx);
        if (hi && hx) m->hooks.on_experts(m->hooks.ud, (int32_t)li, ly->ex_down.name, hi, kt, hx, n, m->d);
        hq_free(ci);
        hq_free(cx);
        if (!hi || !hx) return HQ_ERR_INTERNAL;
    }
    return OP(experts, &ly->ex_down, &ly->ex_up, xn, n, ids, w, kt, out, f->opscr);
}

static hq_status hidden_hook(fwd *f, int64_t li, const char *where) {
    if (!f->m->hooks.on_hidden || f->measure) return HQ_OK;
    void *cp;
    const float *hh = hook_view(f, f->h, (uint64_t)(f->n * f->m->d) * 4u, &cp);
    if (!hh) return HQ_ERR_INTERNAL;
    f->m->hooks.on_hidden(f->m->hooks.ud, (int32_t)li, where, hh, f->n, f->m->d);
    hq_free(cp);
    return HQ_OK;
}

/* ---------------- OTCE (spec §4.10; layers loaded by runtime/model_otce.c) ----------------
 *   h = h + Mixer(RMSNorm_b(h));  h = h + FFN(RMSNorm_b(h))     (no residual scales)
 *   expression layer, after both: h = projection(SiLU(dense(RMSNorm_b(h) + x_in)))
 * RMSNorm_b is OTCE's norm with bias; FFN is the tanh-SwiGLU MLP or the MoE. */

/* Mamba-1 mixer (CheemsMambaMixer.slow_forward; rt_mamba_mixer composes the same ops) */
static hq_status mixer_mamba(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_mamba_layer *L = &f->m->layers[li].mamba;
    int64_t n = f->n, E = L->E, N = L->N, R = L->R, P = R + 2 * N;
    float *xz = takef(f, n * 2 * E), *u = takef(f, n * E), *p = takef(f, n * P), *dt = takef(f, n * R);
    float *B = takef(f, n * N), *C = takef(f, n * N), *delta = takef(f, n * E), *y = takef(f, n * E);
    TAKEN();
    /* [u, z] = in_proj(x̂); u = SiLU(conv1d(u)) continuing the conv state */
    TRY(mm(f, &L->in_proj, xn, xz, n, L->in_proj_b));
    TRY(OP(conv1d, xz, 2 * E, n, E, L->K, L->conv_w, L->conv_b, f->s->conv[li], u));
    /* [dt, B, C] = x_proj(u), each through its RMSNorm with bias */
    TRY(mm(f, &L->x_proj, u, p, n, NULL));
    TRY(OP(norm_bias, p, P, L->dt_norm_w, L->dt_norm_b, dt, R, n, R, L->eps));
    TRY(OP(norm_bias, p + R, P, L->B_norm_w, L->B_norm_b, B, N, n, N, L->eps));
    TRY(OP(norm_bias, p + R + N, P, L->C_norm_w, L->C_norm_b, C, N, n, N, L->eps));
    if (L->rope) { /* RoPE (dim N) on B and C at the absolute positions */
        TRY(OP(rope, B, n, 1, N, f->pos0, f->dpos, L->rope_base));
        TRY(OP(rope, C, n, 1, N, f->pos0, f->dpos, L->rope_base));
    }
    /* C ·= max(1, ln(65+i)/ln 4096), i = index within the call: 1 below i = 4031 */
    for (int64_t t = 0; t < n; t++) {
        float sc = rt_otce_logn(t);
        if (sc != 1.0f) TRY(OP(axpby, C + t * N, NULL, 0.0f, sc, N));
    }
    /* Δ = softplus(dt_proj(dt)); the scan with D skip and SiLU(z) gate */
    TRY(mm(f, &L->dt_proj, dt, delta, n, L->dt_proj_b));
    TRY(OP(softplus_bias, delta, NULL, n, E));
    TRY(OP(mamba_scan, u, delta, L->A, B, C, L->D, xz + E, 2 * E, n, E, N, f->s->ssm[li], y));
    return mm(f, &L->out_proj, y, out, n, L->out_proj_b);
}

/* plain causal GQA (CheemsSdpaAttention): β = 0 in the DMAttn kernel */
static hq_status mixer_otce_attn(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, H = m->H, KV = m->KV, P = m->P, cap = f->s->cap;
    float *q = takef(f, n * H * P), *k = takef(f, n * KV * P), *v = takef(f, n * KV * P), *o = takef(f, n * H * P);
    TAKEN();
    rt_attn_params ap = {.H = H, .KV = KV, .P = P, .M = ly->M, .cap = cap, .window = m->window, .keep_window = 0,
                         .scale = 1.0f / sqrtf((float)P), .keep_rule = RT_KEEP_TORCH};
    NEED(attn_scratch, &ap, n);
    TRY(mm(f, &ly->q, xn, q, n, ly->bq));
    TRY(mm_x(f, &ly->k, xn, k, n, ly->bk, true));
    TRY(mm_x(f, &ly->v, xn, v, n, ly->bv, true));
    if (ly->attn_rope) {
        TRY(OP(rope, q, n, H, P, f->pos0, f->dpos, f->rope_base));
        TRY(OP(rope, k, n, KV, P, f->pos0, f->dpos, f->rope_base));
    }
    float *kc = f->s->kc[li], *vc = f->s->vc[li], *bc = f->s->beta[li];
    TRY(OP(kv_append, kc, vc, bc, k, v, NULL, NULL, n, KV, P, ly->M, cap, f->pos0, f->dpos));
    TRY(OP(attn, &ap, q, kc, vc, bc, f->pos0, f->dpos, n, o, f->opscr));
    return mm(f, &ly->o, o, out, n, ly->bo);
}

/* CheemsMLP: down(tanh(up x) ⊙ SiLU(gate x)); g, u: n·I floats each */
static hq_status otce_mlp(fwd *f, const rt_otce_mlp_w *w, const float *x, int64_t n, float *out, float *g, float *u) {
    TRY(mm(f, &w->gate, x, g, n, w->gate_b));
    TRY(mm_x(f, &w->up, x, u, n, w->up_b, true));
    TRY(OP(tanh_swiglu, g, u, n * w->gate.n_out));
    return mm(f, &w->down, g, out, n, w->down_b);
}

static int64_t imax64(int64_t a, int64_t b) { return a > b ? a : b; }

/* CheemsSharedMoeLayer: softmax(router x̂), top-k without renormalisation,
 * out = Σ p_e·expert_e over the rows routed to e (gathered, so each expert's
 * matmuls and their observation hooks see only its tokens). The row lists
 * are read on the host: OTCE runs only on host-addressable backends. */
static hq_status otce_moe(fwd *f, int64_t li, const float *xn, float *out) {
    const rt_layer *ly = &f->m->layers[li];
    const rt_otce_moe_w *w = &ly->moe;
    int64_t n = f->n, d = w->d, E = w->E, k = w->k;
    int64_t Is = w->type == RT_OTCE_PLAIN ? 0 : w->type == RT_OTCE_COHESIVE ? w->shared.up.n_out : w->shared.gate.n_out;
    int64_t Imax = imax64(w->experts[0].gate.n_out, Is), Wsh = w->type == RT_OTCE_COHESIVE ? Is : d;
    if (!f->B->host_addressable)
        return hq_fail(f->x->err, HQ_ERR_UNSUPPORTED, "forward: the OTCE MoE needs a host-addressable backend");
    float *lg = takef(f, n * E), *wt = takef(f, n * k), *sh = takef(f, n * Wsh), *xs = takef(f, n * d);
    float *us = takef(f, n * Is), *ys = takef(f, n * d), *g1 = takef(f, n), *g = takef(f, n * Imax);
    float *u = takef(f, n * Imax);
    int32_t *ids = take(f, (uint64_t)(n * k) * 4u), *rows = take(f, (uint64_t)(n * k) * 4u);
    TAKEN();
    TRY(mm(f, &w->router, xn, lg, n, NULL));
    TRY(OP(otce_route, lg, n, E, k, ids, wt));
    /* the shared part once for all tokens (the same module in every expert) */
    if (w->type == RT_OTCE_EXPANSIVE) TRY(otce_mlp(f, &w->shared, xn, n, sh, g, u));
    if (w->type == RT_OTCE_COHESIVE) TRY(mm(f, &w->shared.up, xn, sh, n, w->shared.up_b));
    TRY(OP(axpby, out, NULL, 0.0f, 0.0f, n * d));
    for (int64_t e = 0; e < E; e++) {
        const rt_otce_mlp_w *ex = &w->experts[e];
        int64_t cnt = 0;
        if (f->measure) cnt = n; /* the largest call, for the op scratch */
        else
            for (int64_t tj = 0; tj < n * k; tj++)
                if (ids[tj] == e) rows[cnt++] = (int32_t)tj;
        if (!cnt) continue;
        const float *src = w->type == RT_OTCE_EXPANSIVE ? sh : xn;
        for (int64_t r = 0; r < cnt && !f->measure; r++) {
            int64_t t = rows[r] / k;
            TRY(OP(copy, xs + r * d, src + t * d, (uint64_t)d * 4u));
            if (w->type == RT_OTCE_COHESIVE) TRY(OP(copy, us + r * Is, sh + t * Is, (uint64_t)Is * 4u));
        }
        if (w->type == RT_OTCE_EXPANSIVE) {
            /* s = σ(shared_expert_gate(s))·s, then the private MLP */
            TRY(mm(f, &ly->moe_gate[e], xs, g1, cnt, NULL));
            TRY(OP(gate_scale, xs, g1, cnt, d));
            TRY(otce_mlp(f, ex, xs, cnt, ys, g, u));
        } else if (w->type == RT_OTCE_COHESIVE) {
            /* down(tanh(shared_up x) ⊙ SiLU(gate x)) */
            TRY(mm(f, &ex->gate, xs, g, cnt, ex->gate_b));
            TRY(OP(tanh_swiglu, g, us, cnt * ex->gate.n_out));
            TRY(mm(f, &ex->down, g, ys, cnt, ex->down_b));
        } else {
            TRY(otce_mlp(f, ex, xs, cnt, ys, g, u));
        }
        for (int64_t r = 0; r < cnt && !f->measure; r++)
            TRY(OP(axpby, out + (rows[r] / k) * d, ys + r * d, wt[rows[r]], 1.0f, d));
    }
    return HQ_OK;
}

static hq_status otce_layer(fwd *f, int64_t li) {
    const rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, d = m->d;
    float *h = f->h, *xn = f->xn, *br = f->br;
    float *xin = ly->expr ? takef(f, n * d) : NULL;
    TAKEN();
    uint64_t mark = f->used;
    if (ly->expr) TRY(OP(copy, xin, h, (uint64_t)(n * d) * 4u)); /* the layer's input */
    TRY(OP(norm_bias, h, d, ly->attn_norm, ly->attn_norm_b, xn, d, n, d, m->eps));
    TRY(ly->mixer == RT_MIX_MAMBA ? mixer_mamba(f, li, xn, br) : mixer_otce_attn(f, li, xn, br));
    TRY(OP(residual, h, m->ones, br, n, d));
    TRY(hidden_hook(f, li, "mixer"));
    f->used = mark;
    TRY(OP(norm_bias, h, d, ly->ffn_norm, ly->ffn_norm_b, xn, d, n, d, m->eps));
    if (ly->ffn == RT_FFN_OTCE_MOE) {
        TRY(otce_moe(f, li, xn, br));
    } else {
        rt_otce_mlp_w w = {ly->gate, ly->up, ly->down, ly->b_gate, ly->b_up, ly->b_down};
        float *g = takef(f, n * m->I), *u = takef(f, n * m->I);
        TAKEN();
        TRY(otce_mlp(f, &w, xn, n, br, g, u));
    }
    TRY(OP(residual, h, m->ones, br, n, d));
    f->used = mark;
    if (ly->expr) {
        /* the expression output replaces the residual stream */
        TRY(OP(norm_bias, h, d, ly->pd_norm, ly->pd_norm_b, xn, d, n, d, m->eps));
        TRY(OP(residual, xn, m->ones, xin, n, d));
        TRY(mm(f, &ly->dense, xn, br, n, ly->b_dense));
        TRY(OP(silu, br, n * d));
        TRY(mm(f, &ly->proj, br, h, n, ly->b_proj));
    }
    return hidden_hook(f, li, "ffn");
}

/* The layers and the head: token ids at tok, logits rows r0.. into lg
 * (backend memory) — what a backend may capture as one graph. */
static hq_status body(rt_exec *x, const int32_t *tok, int64_t pos0, const int64_t *dpos, float *lg) {
    fwd *f = x->walk;
    const rt_model *m = f->m;
    int64_t n = f->n, d = m->d;
    uint64_t mark = f->used;
    f->pos0 = pos0;
    f->dpos = dpos;
    hq_status st = OP(embed, &m->tok_embd, tok, n, f->h); /* h⁰_t = Emb[token_t] */
    /* OTCE: + token_types row 0 (the LM never passes type ids) */
    for (int64_t t = 0; t < n && m->tok_type0 && st == HQ_OK; t++) st = OP(axpby, f->h + t * d, m->tok_type0, 1.0f, 1.0f, d);
    for (int64_t li = 0; li < m->L && st == HQ_OK && m->otce; li++) {
        f->used = mark;
        st = otce_layer(f, li);
    }
    for (int64_t li = 0; li < m->L && st == HQ_OK && !m->otce; li++) {
        const rt_layer *ly = &m->layers[li];
        f->used = mark;
        st = OP(rmsnorm, f->h, ly->attn_norm, f->xn, n, d, m->eps);
        if (st == HQ_OK) st = ly->mixer == RT_MIX_ATTN ? mixer_attn(f, li, f->xn, f->br) : mixer_ssd(f, li, f->xn, f->br);
        if (st == HQ_OK) st = OP(residual, f->h, ly->attn_res, f->br, n, d);
        if (st == HQ_OK) st = hidden_hook(f, li, "mixer");
        if (st != HQ_OK) break;
        f->used = mark;
        st = OP(rmsnorm, f->h, ly->ffn_norm, f->xn, n, d, m->eps);
        if (st == HQ_OK) st = ffn(f, li, f->xn, f->br);
        if (st == HQ_OK) st = OP(residual, f->h, ly->ffn_res, f->br, n, d);
        if (st == HQ_OK) st = hidden_hook(f, li, "ffn");
    }
    if (st == HQ_OK && lg) {
        int64_t nr = n - f->r0;
        st = m->otce ? OP(norm_bias, f->h + f->r0 * d, d, m->out_norm, m->out_norm_b, f->xn, d, nr, d, m->eps)
                     : OP(rmsnorm, f->h + f->r0 * d, m->out_norm, f->xn, nr, d, m->eps);
        if (st == HQ_OK) st = mm(f, &m->output, f->xn, lg, nr, NULL);
    }
    f->used = mark;
    return st;
}

/* the buffers of a call before the walk: the backend's copies of tokens and
 * logits (device backends) and the residual stream */
static void layout(fwd *f, rt_exec *x) {
    int64_t n = f->n, d = f->m->d;
    if (f->B->host_memory) {
        x->dtok = (int32_t *)x->tokens;
        x->dlogits = x->logits;
    } else {
        x->dtok = take(f, (uint64_t)n * 4u);
        x->dlogits = x->logits ? takef(f, (n - f->r0) * f->m->V) : NULL;
    }
    f->h = takef(f, n * d), f->xn = takef(f, n * d), f->br = takef(f, n * d);
}

static void setup(fwd *f, rt_exec *x, const rt_model *m, rt_state *s, int64_t n, int64_t r0, char *err) {
    *x = (rt_exec){.be = m->be, .err = err, .s = s, .n = n, .pos0 = s->pos, .r0 = r0, .V = m->V, .body = body, .walk = f};
    *f = (fwd){.m = m, .s = s, .B = &m->ops, .x = x, .n = n, .r0 = r0, .pos0 = s->pos};
}

/* bytes of arena the call takes (the walk with no op called); *opmax: of
 * which the op scratch, taken first */
static uint64_t measure(const rt_model *m, rt_state *s, int64_t n, int64_t r0, uint64_t *opmax) {
    fwd f;
    rt_exec x;
    char err[HQ_ERR_LEN];
    setup(&f, &x, m, s, n, r0, err);
    f.measure = true;
    x.logits = (float *)x.err; /* only counted: the logits rows are never written while measuring */
    layout(&f, &x);
    body(&x, NULL, 0, NULL, x.logits);
    *opmax = f.opmax;
    return ((f.opmax + ALIGN - 1) & ~(uint64_t)(ALIGN - 1)) + f.peak;
}

uint64_t rt_forward_arena_bytes(const rt_model *m, rt_state *s, int64_t n, int64_t r0) {
    rt_settings_saved sv;
    uint64_t op;
    rt_settings_enter(m, &sv); /* the op scratch depends on the thread count */
    uint64_t b = measure(m, s, n, r0, &op);
    rt_settings_leave(&sv);
    return b;
}

static hq_status run(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, int64_t r0, char *err) {
    /* the sequence ran last on a backend that mirrors it: a backend that
     * reads the host arrays needs those rows back first */
    if (s->mirror.newer && !m->be_ops->state_pull) {
        if (!s->mirror.be) /* the copy went with a failed device step (mirror.ops may be gone too) */
            return hq_fail(err, HQ_ERR_INTERNAL, "forward: copying the sequence state back from the device failed");
        TRY(s->mirror.ops->state_pull(s->mirror.be, s, err));
    }
    uint64_t op, need = measure(m, s, n, r0, &op);
    TRY(rt_arena_reserve(m, need, err)); /* a no-op unless the backend changed since the state was set up */
    fwd f;
    rt_exec x;
    setup(&f, &x, m, s, n, r0, err);
    x.tokens = tokens;
    x.logits = logits;
    x.graphable = n == 1 && r0 == 0 && logits && !m->has_hooks && !m->rope_dynamic;
    x.arena_gen = rt_arena_gen(m);
    f.base = rt_arena_base(m, &f.cap);
    /* dynamic NTK: base from the largest position of this call (spec §4.3) */
    f.rope_base = m->rope_dynamic ? rt_rope_base(m->rope_theta, m->rope_factor, m->ctx_len, m->P, s->pos + n - 1)
                                  : m->rope_theta;
    f.opscr = take(&f, op);
    layout(&f, &x);
    if (f.overflow) return HQ_ERR_INTERNAL;
    hq_status st = m->ops.execute ? m->ops.execute(&x) : x.body(&x, x.dtok, x.pos0, NULL, x.dlogits);
    if (st == HQ_OK) s->pos += n;
    return st;
}

static hq_status forward_impl(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits,
                              int64_t r0, char *err) {
    if (n < 1) return hq_fail(err, HQ_ERR_ARG, "forward: no tokens");
    if (r0 < 0 || r0 >= n) return hq_fail(err, HQ_ERR_ARG, "forward: first logits row %lld outside [0, %lld)",
                                          (long long)r0, (long long)n);
    if (s->m != m) return hq_fail(err, HQ_ERR_ARG, "forward: state belongs to another model");
    if (n > s->cap - s->pos)
        return hq_fail(err, HQ_ERR_LIMIT, "forward: %lld tokens at position %lld exceed the state's capacity %lld",
                       (long long)n, (long long)s->pos, (long long)s->cap);
    for (int64_t t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->V)
            return hq_fail(err, HQ_ERR_ARG, "forward: token id %d at %lld outside the vocabulary [0, %lld)", tokens[t],
                           (long long)t, (long long)m->V);
    rt_settings_saved sv;
    rt_settings_enter(m, &sv);
    hq_status st = run(m, s, tokens, n, logits, r0, err);
    rt_settings_leave(&sv);
    return st;
}

hq_status rt_forward(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, char *err) {
    return forward_impl(m, s, tokens, n, logits, 0, err);
}

hq_status rt_forward_from(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, int64_t first_row,
                          float *logits, char *err) {
    return forward_impl(m, s, tokens, n, logits, first_row, err);
}

hq_status rt_forward_last(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, char *err) {
    return forward_impl(m, s, tokens, n, logits, n - 1, err);
}
