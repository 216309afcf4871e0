/* runtime/forward.c — the forward pass (spec §4.4, §4.9, Appendix B), the
 * single dispatch point of the ops (CPU backend now).
 *   for each layer: x̂ = RMSNorm(h; w₁); a = Mixer(x̂); h = r₁ ⊙ h + a
 *                   x̂ = RMSNorm(h; w₂); m = FFN(x̂);   h = r₂ ⊙ h + m
 *   logits = W_lm · RMSNorm(h; w_final)
 * Prefill (n > 1) uses matrix-matrix products and the chunked SSD form;
 * decode (n == 1) matrix-vector products and the SSD step recurrence.
 * Positions are absolute (the state's counter). */
#include "model_internal.h" // defines: rt_model, rt_layer, rt_state
#include "../cuda/backend.h" // defines: cu_forward

#include <math.h>
#include <string.h>

/* one scratch allocation per call, carved into named buffers */
typedef struct {
    float *base;
    int64_t used, cap;
} arena;
static float *take(arena *a, int64_t n) {
    float *p = a->base + a->used;
    a->used += (n + 15) & ~(int64_t)15;
    return p;
}

typedef struct {
    rt_model *m;
    rt_state *s;
    int64_t n, pos0;
    const int64_t *pos;
    float rope_base;
    char *err;
} fwd;

static void hook_in(fwd *f, const rt_weight *w, const float *x, int64_t n) {
    if (f->m->hooks.on_matmul_input) f->m->hooks.on_matmul_input(f->m->hooks.ud, w->name, x, n, w->n_in);
}

static hq_status mm(fwd *f, const rt_weight *w, const float *x, float *y, int64_t n, const float *bias) {
    hook_in(f, w, x, n);
    return rt_matmul(w, x, y, n, bias, f->err);
}

#define TRY(e) do { hq_status st_ = (e); if (st_ != HQ_OK) return st_; } while (0)

static hq_status mixer_attn(fwd *f, int64_t li, const float *xn, float *out, arena *ar) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, H = m->H, KV = m->KV, P = m->P, cap = f->s->cap;
    float *q = take(ar, n * H * P), *k = take(ar, n * KV * P), *v = take(ar, n * KV * P);
    float *dt = take(ar, n * ly->M), *o = take(ar, n * H * P);
    /* keep-window rule: transformers' cached decode (per query), or its
     * multi-token forward of this call under rt_model_set_hf_prefill */
    rt_attn_params ap = {.H = H, .KV = KV, .P = P, .M = ly->M, .cap = cap, .window = m->window,
                         .keep_window = m->keep_topk ? m->keep_window : 0, .scale = 1.0f / sqrtf((float)P),
                         .keep_rule = m->keep_hf_call ? RT_KEEP_HF_CALL : RT_KEEP_TORCH};
    float *scr = take(ar, rt_attn_scratch(&ap) * rt_n_threads());
    TRY(mm(f, &ly->q, xn, q, n, ly->bq));
    TRY(mm(f, &ly->k, xn, k, n, ly->bk));
    TRY(mm(f, &ly->v, xn, v, n, ly->bv));
    /* q_norm / k_norm: RMSNorm over each head's P-vector, before RoPE */
    if (ly->q_norm) rt_rmsnorm(q, ly->q_norm, q, n * H, P, m->eps);
    if (ly->k_norm) rt_rmsnorm(k, ly->k_norm, k, n * KV, P, m->eps);
    rt_rope(q, n, H, P, f->pos, f->rope_base);
    rt_rope(k, n, KV, P, f->pos, f->rope_base);
    /* β_j = exp(A · softplus(W_dt v_j + b_dt)), from the raw v_proj output */
    TRY(mm(f, &ly->dt, v, dt, n, ly->b_dt));
    float *kc = f->s->kc[li], *vc = f->s->vc[li], *bc = f->s->beta[li];
    for (int64_t t = 0; t < n; t++) {
        int64_t j = f->pos0 + t;
        for (int64_t g = 0; g < KV; g++) {
            memcpy(kc + (g * cap + j) * P, k + (t * KV + g) * P, (size_t)P * sizeof(float));
            memcpy(vc + (g * cap + j) * P, v + (t * KV + g) * P, (size_t)P * sizeof(float));
        }
        for (int64_t mm_ = 0; mm_ < ly->M; mm_++)
            bc[mm_ * cap + j] = expf(ly->attn_a[mm_] * rt_softplus(dt[t * ly->M + mm_]));
    }
    rt_attn(&ap, q, kc, vc, bc, f->pos0, n, o, scr);
    return mm(f, &ly->o, o, out, n, ly->bo);
}

static hq_status mixer_ssd(fwd *f, int64_t li, const float *xn, float *out, arena *ar) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, H = m->H, P = m->P;
    rt_ssd_dims dm = {.H = H, .P = P, .G = H, .N = P};
    float *x = take(ar, n * H * P), *b = take(ar, n * H * P), *c = take(ar, n * H * P);
    float *dt = take(ar, n * H), *y = take(ar, n * H * P);
    TRY(mm(f, &ly->sx, xn, x, n, ly->b_sx));
    TRY(mm(f, &ly->sb, xn, b, n, ly->b_sb));
    TRY(mm(f, &ly->sc, xn, c, n, ly->b_sc));
    TRY(mm(f, &ly->sdt, xn, dt, n, ly->b_sdt));
    /* Δ = softplus(W_dt x̂ (+ dt_bias)) */
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < H; h++) {
            float z = dt[t * H + h] + (ly->ssm_dt_bias ? ly->ssm_dt_bias[h] : 0.0f);
            dt[t * H + h] = rt_softplus(z);
        }
    /* RoPE on C and B at the absolute positions (dim P per head) */
    rt_rope(c, n, H, P, f->pos, f->rope_base);
    rt_rope(b, n, H, P, f->pos, f->rope_base);
    float *S = f->s->ssm[li];
    /* growing heads (A > 0): the chunked form exponentiates cumulative sums
     * and overflows before the recurrence does (spec §4.5) */
    if (n == 1 || rt_ops_ref() || ly->ssm_a_pos) {
        rt_ssd_scan(&dm, n, x, b, c, dt, ly->ssm_a, ly->ssm_d, S, y);
    } else {
        float *scr = take(ar, rt_ssd_chunked_scratch(&dm, m->ssd_chunk) * rt_n_threads());
        rt_ssd_chunked(&dm, n, m->ssd_chunk, x, b, c, dt, ly->ssm_a, ly->ssm_d, S, y, scr);
    }
    return mm(f, &ly->sout, y, out, n, ly->b_sout);
}

static hq_status ffn(fwd *f, int64_t li, const float *xn, float *out, arena *ar) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    int64_t n = f->n, I = m->I;
    float *g = take(ar, n * I), *u = take(ar, n * I);
    /* MLP: W_down(act(W_gate x̂) ⊙ W_up x̂) — also the shared part of CDMoE */
    TRY(mm(f, &ly->gate, xn, g, n, ly->b_gate));
    TRY(mm(f, &ly->up, xn, u, n, ly->b_up));
    rt_swiglu(g, u, n * I);
    TRY(mm(f, &ly->down, g, out, n, ly->b_down));
    if (ly->ffn == RT_FFN_MLP) return HQ_OK;
    int64_t kt = ly->Hr * ly->topk;
    int32_t *ids = (int32_t *)take(ar, n * kt);
    float *w = take(ar, n * kt);
    if (ly->ffn == RT_FFN_ROUTER) {
        float *lg = take(ar, n * 2 * ly->Kk);
        TRY(mm(f, &ly->router, xn, lg, n, ly->b_router));
        if (m->router_quirk && n > 1) {
            /* HF: router_logits.view(2, N, Kk) over the flat [N, 2Kk] buffer */
            float *q2 = take(ar, n * 2 * ly->Kk);
            for (int64_t t = 0; t < n; t++) {
                memcpy(q2 + t * 2 * ly->Kk, lg + t * ly->Kk, (size_t)ly->Kk * sizeof(float));
                memcpy(q2 + t * 2 * ly->Kk + ly->Kk, lg + (n + t) * ly->Kk, (size_t)ly->Kk * sizeof(float));
            }
            lg = q2;
        }
        rt_route_router(lg, n, ly->Kk, ly->topk, ids, w);
    } else {
        float *q = take(ar, n * ly->Hr * ly->R);
        TRY(mm(f, &ly->pk_query, xn, q, n, NULL));
        rt_route_pk(q, ly->pk_keys, n, ly->Hr, ly->R, ly->Kk, ly->topk, ids, w);
    }
    if (m->hooks.on_experts)
        m->hooks.on_experts(m->hooks.ud, (int32_t)li, ly->ex_down.name, ids, kt, xn, n, m->d);
    return rt_experts(&ly->ex_down, &ly->ex_up, xn, n, ids, w, kt, out, f->err);
}

static int64_t arena_floats(const rt_model *m, int64_t n, int64_t cap) {
    int64_t d = m->d, HP = m->H * m->P, KVP = m->KV * m->P, th = rt_n_threads();
    int64_t mix = 0, ff = 0;
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        int64_t a = ly->mixer == RT_MIX_ATTN
                        ? n * (2 * HP + 2 * KVP + ly->M) + (6 * cap + 8) * th + 5 * 16 /* rt_attn_scratch */
                        : n * (4 * HP + m->H) + rt_ssd_chunked_scratch(&(rt_ssd_dims){m->H, m->P, m->H, m->P},
                                                                       m->ssd_chunk) * th + 6 * 16;
        int64_t kt = ly->Hr * ly->topk;
        int64_t b = 2 * n * m->I + 2 * n * kt + n * (4 * ly->Kk + ly->Hr * ly->R) + 6 * 16;
        if (a > mix) mix = a;
        if (b > ff) ff = b;
    }
    /* h, xn, branch output + the larger of mixer/ffn buffers */
    return 3 * (n * d + 16) + (mix > ff ? mix : ff) + 64;
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
    if (m->backend == RT_BACKEND_CUDA) return cu_forward(m, s, tokens, n, logits, r0, err); /* cuda/backend.c */
    if (s->dev_newer) { /* the sequence ran on the device: its caches come back first */
        hq_status pst = cu_state_pull(s, err);
        if (pst != HQ_OK) return pst;
    }
    int64_t need = arena_floats(m, n, s->cap);
    arena ar = {hq_malloc_array((size_t)need, sizeof(float)), 0, need};
    int64_t *pos = hq_malloc_array((size_t)n, sizeof(int64_t));
    if (!ar.base || !pos) {
        hq_free(ar.base);
        hq_free(pos);
        return hq_fail(err, HQ_ERR_NOMEM, "forward: out of memory for %lld tokens (%lld floats of scratch)",
                       (long long)n, (long long)need);
    }
    for (int64_t t = 0; t < n; t++) pos[t] = s->pos + t;
    fwd f = {.m = m, .s = s, .n = n, .pos0 = s->pos, .pos = pos, .err = err};
    /* dynamic NTK: base from the largest position of this call (spec §4.3) */
    f.rope_base = m->rope_dynamic ? rt_rope_base(m->rope_theta, m->rope_factor, m->ctx_len, m->P, s->pos + n - 1)
                                  : m->rope_theta;
    int64_t d = m->d;
    float *h = take(&ar, n * d), *xn = take(&ar, n * d), *br = take(&ar, n * d);
    int64_t mark = ar.used;
    hq_status st = HQ_OK;
    /* h⁰_t = Emb[token_t] */
    for (int64_t t = 0; t < n; t++) rt_weight_row_f32(&m->tok_embd, tokens[t], h + t * d);
    for (int64_t li = 0; li < m->L && st == HQ_OK; li++) {
        const rt_layer *ly = &m->layers[li];
        ar.used = mark;
        rt_rmsnorm(h, ly->attn_norm, xn, n, d, m->eps);
        st = ly->mixer == RT_MIX_ATTN ? mixer_attn(&f, li, xn, br, &ar) : mixer_ssd(&f, li, xn, br, &ar);
        if (st != HQ_OK) break;
        for (int64_t t = 0; t < n; t++)
            for (int64_t i = 0; i < d; i++) h[t * d + i] = ly->attn_res[i] * h[t * d + i] + br[t * d + i];
        if (m->hooks.on_hidden) m->hooks.on_hidden(m->hooks.ud, (int32_t)li, "mixer", h, n, d);
        ar.used = mark;
        rt_rmsnorm(h, ly->ffn_norm, xn, n, d, m->eps);
        st = ffn(&f, li, xn, br, &ar);
        if (st != HQ_OK) break;
        for (int64_t t = 0; t < n; t++)
            for (int64_t i = 0; i < d; i++) h[t * d + i] = ly->ffn_res[i] * h[t * d + i] + br[t * d + i];
        if (m->hooks.on_hidden) m->hooks.on_hidden(m->hooks.ud, (int32_t)li, "ffn", h, n, d);
    }
    if (st == HQ_OK && logits) {
        int64_t nr = n - r0;
        rt_rmsnorm(h + r0 * d, m->out_norm, xn, nr, d, m->eps);
        st = mm(&f, &m->output, xn, logits, nr, NULL);
    }
    if (st == HQ_OK) s->pos += n;
    hq_free(ar.base);
    hq_free(pos);
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
