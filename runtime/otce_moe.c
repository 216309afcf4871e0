/* runtime/otce_moe.c — OTCE's RMSNorm with bias, tanh-SwiGLU MLP and MoE
 * (spec §4.10, §6 item 15; modeling_cheems_OTCE.py RMSNorm l.335-382,
 * CheemsMLP l.1397-1430, CheemsSharedExpansiveMLP l.1433-1485,
 * CheemsSharedCohesiveMLP l.1487-1519, CheemsSharedMoeLayer l.1521-1625). */
#include "otce_ops.h" // defines: rt_otce_rmsnorm, rt_otce_mlp, rt_otce_moe
#include "rt_cpu.h"   // defines: RT_OMP

#include <math.h>
#include <string.h>

void rt_otce_rmsnorm_ref(const float *x, const float *w, const float *b, float *y, int64_t n_rows, int64_t d,
                         float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        double ss = 0;
        for (int64_t i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        /* hidden_states = (hidden_states * weight) + bias */
        for (int64_t i = 0; i < d; i++) yr[i] = w[i] * (xr[i] * inv) + (b ? b[i] : 0.0f);
    }
}

/* rt_rmsnorm gives w·(x·r) with the same rounding; the bias is one more add */
void rt_otce_rmsnorm(const float *x, const float *w, const float *b, float *y, int64_t n_rows, int64_t d, float eps) {
    if (rt_ops_ref()) {
        rt_otce_rmsnorm_ref(x, w, b, y, n_rows, d, eps);
        return;
    }
    rt_rmsnorm(x, w, y, n_rows, d, eps);
    if (b)
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t i = 0; i < d; i++) y[r * d + i] += b[i];
}

/* act_up_fn(up_proj(x)) * act_gate_fn(gate_proj(x)) = tanh(u) · SiLU(g) */
void rt_tanh_swiglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = tanhf(u[i]) * rt_silu(g[i]);
}

void rt_tanh_swiglu(float *g, const float *u, int64_t n) { rt_gated_blocks(rt_tanh_swiglu_ref, g, u, n); }

typedef hq_status (*mm_fn)(const rt_weight *, const float *, float *, int64_t, const float *, char *);

int64_t rt_otce_mlp_scratch(const rt_otce_mlp_w *m, int64_t n) {
    int64_t r = 0;
    return hq_mul_i64(2 * m->gate.n_out, n, &r) ? r : 0;
}

hq_status rt_otce_mlp(const rt_otce_mlp_w *m, const float *x, int64_t n, float *out, float *scratch, bool ref,
                      char *err) {
    int64_t I = m->gate.n_out;
    float *g = scratch, *u = scratch + I * n;
    mm_fn mm = ref ? rt_matmul_ref : rt_matmul;
    hq_status st;
    if ((st = mm(&m->gate, x, g, n, m->gate_b, err)) != HQ_OK) return st;
    if ((st = mm(&m->up, x, u, n, m->up_b, err)) != HQ_OK) return st;
    (ref ? rt_tanh_swiglu_ref : rt_tanh_swiglu)(g, u, n * I);
    return mm(&m->down, g, out, n, m->down_b, err);
}

/* routing_weights = softmax(router_logits); topk(k) — ties to the lower expert index */
static void route(const float *logits, int64_t E, int64_t k, int32_t *ids, float *w) {
    float mx = logits[0];
    for (int64_t e = 1; e < E; e++) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0;
    for (int64_t e = 0; e < E; e++) sum += exp((double)logits[e] - mx);
    for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; e++) {
            bool taken = false;
            for (int64_t q = 0; q < j; q++) taken = taken || ids[q] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
        }
        ids[j] = (int32_t)best;
        w[j] = (float)(exp((double)logits[best] - mx) / sum);
    }
}

void rt_otce_route(const float *logits, int64_t n, int64_t E, int64_t k, int32_t *ids, float *w) {
    for (int64_t t = 0; t < n; t++) route(logits + t * E, E, k, ids + t * k, w + t * k);
}

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* per token: logits E, shared W, gathered rows d, expert out / shared_up rows W,
 * MLP 2·I_max, weights k; W = max(d, cohesive shared_up size) */
static int64_t moe_w(const rt_otce_moe_w *m) { return imax(m->d, m->type == RT_OTCE_COHESIVE ? m->shared.up.n_out : 0); }
static int64_t moe_imax(const rt_otce_moe_w *m) {
    return imax(m->experts[0].gate.n_out, m->type == RT_OTCE_EXPANSIVE ? m->shared.gate.n_out : 0);
}

int64_t rt_otce_moe_scratch(const rt_otce_moe_w *m, int64_t n) {
    int64_t per = m->E + 2 * moe_w(m) + m->d + 2 * moe_imax(m) + m->k, tot = 0;
    return hq_mul_i64(per, n, &tot) ? tot : 0;
}

/* expert e on rows xs [nr, d] (expansive: xs = the shared output s; cohesive:
 * xs = x and su = tanh-input shared_up(x) rows) -> y [nr, d] */
static hq_status expert_rows(const rt_otce_moe_w *m, int64_t e, float *xs, const float *su, int64_t nr, float *y,
                             float *mlp_scr, bool ref, char *err) {
    const rt_otce_mlp_w *x = &m->experts[e];
    mm_fn mm = ref ? rt_matmul_ref : rt_matmul;
    hq_status st;
    int64_t d = m->d;
    switch (m->type) {
    case RT_OTCE_EXPANSIVE:
        /* hidden_states = sigmoid(shared_expert_gate(hidden_states)) * hidden_states */
        for (int64_t r = 0; r < nr; r++) {
            float *s = xs + r * d;
            double a = 0;
            for (int64_t i = 0; i < d; i++) a += (double)m->expert_gate[e][i] * s[i];
            float sg = 1.0f / (1.0f + expf(-(float)a));
            for (int64_t i = 0; i < d; i++) s[i] *= sg;
        }
        return rt_otce_mlp(x, xs, nr, y, mlp_scr, ref, err);
    case RT_OTCE_COHESIVE: {
        /* down_proj(act_up_fn(shared_up_proj(x)) * gate_act_fn(gate_proj(x))) */
        int64_t Ip = x->gate.n_out;
        float *g = mlp_scr;
        if ((st = mm(&x->gate, xs, g, nr, x->gate_b, err)) != HQ_OK) return st;
        (ref ? rt_tanh_swiglu_ref : rt_tanh_swiglu)(g, su, nr * Ip);
        return mm(&x->down, g, y, nr, x->down_b, err);
    }
    default:
        return rt_otce_mlp(x, xs, nr, y, mlp_scr, ref, err);
    }
}

hq_status rt_otce_moe(const rt_otce_moe_w *m, const float *x, int64_t n, float *out, int32_t *ids, float *w,
                      float *scratch, bool ref, char *err) {
    int64_t E = m->E, k = m->k, d = m->d;
    if (k < 1 || k > E) return hq_fail(err, HQ_ERR_FORMAT, "otce moe: top-k %lld not in 1..%lld", (long long)k,
                                       (long long)E);
    int64_t Ish = m->type == RT_OTCE_COHESIVE ? m->shared.up.n_out : d, W = moe_w(m);
    float *logits = scratch, *sh = logits + E * n, *xs = sh + W * n, *ys = xs + d * n, *mlp = ys + W * n;
    float *wsel = mlp + 2 * moe_imax(m) * n;
    int32_t idbuf[64];
    mm_fn mm = ref ? rt_matmul_ref : rt_matmul;
    hq_status st;
    if (k > 64) return hq_fail(err, HQ_ERR_LIMIT, "otce moe: top-k %lld > 64", (long long)k);
    /* router_logits = router(hidden_states) */
    if ((st = mm(&m->router, x, logits, n, NULL, err)) != HQ_OK) return st;
    /* the per-token shared part once for all tokens (the same module in every expert) */
    if (m->type == RT_OTCE_EXPANSIVE && (st = rt_otce_mlp(&m->shared, x, n, sh, mlp, ref, err)) != HQ_OK) return st;
    if (m->type == RT_OTCE_COHESIVE && (st = mm(&m->shared.up, x, sh, n, m->shared.up_b, err)) != HQ_OK) return st;
    memset(out, 0, (size_t)(n * d) * sizeof *out);
    int32_t *sel = (int32_t *)hq_malloc_array((size_t)(n * k), sizeof *sel);
    int64_t *rows = (int64_t *)hq_malloc_array((size_t)n, sizeof *rows);
    if (!sel || !rows) {
        hq_free(sel), hq_free(rows);
        return hq_fail(err, HQ_ERR_NOMEM, "otce moe: out of memory");
    }
    for (int64_t t = 0; t < n; t++) {
        route(logits + t * E, E, k, idbuf, wsel + t * k);
        memcpy(sel + t * k, idbuf, (size_t)k * sizeof *sel);
    }
    /* for expert_idx in range(num_experts): rows routed to it, expert(rows) * weight, index_add */
    st = HQ_OK;
    for (int64_t e = 0; e < E && st == HQ_OK; e++) {
        int64_t nr = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < k; j++)
                if (sel[t * k + j] == e) rows[nr++] = t * k + j;
        if (!nr) continue;
        /* ref: one token at a time; fast: all routed rows in one batch */
        int64_t step = ref ? 1 : nr;
        for (int64_t r0 = 0; r0 < nr && st == HQ_OK; r0 += step) {
            int64_t m_rows = nr - r0 < step ? nr - r0 : step;
            for (int64_t r = 0; r < m_rows; r++) {
                int64_t t = rows[r0 + r] / k;
                const float *src = m->type == RT_OTCE_EXPANSIVE ? sh + t * d : x + t * d;
                memcpy(xs + r * d, src, (size_t)d * sizeof *xs);
                if (m->type == RT_OTCE_COHESIVE) memcpy(ys + r * Ish, sh + t * Ish, (size_t)Ish * sizeof *ys);
            }
            /* cohesive: ys holds the shared_up rows and the expert writes over xs (its gate input is
             * consumed first); the others write ys */
            float *res = m->type == RT_OTCE_COHESIVE ? xs : ys;
            st = expert_rows(m, e, xs, ys, m_rows, res, mlp, ref, err);
            if (st != HQ_OK) break;
            for (int64_t r = 0; r < m_rows; r++) {
                int64_t tj = rows[r0 + r], t = tj / k;
                float wt = wsel[tj];
                for (int64_t i = 0; i < d; i++) out[t * d + i] += res[r * d + i] * wt;
            }
        }
    }
    if (ids) memcpy(ids, sel, (size_t)(n * k) * sizeof *ids);
    if (w) memcpy(w, wsel, (size_t)(n * k) * sizeof *w);
    hq_free(sel);
    hq_free(rows);
    return st;
}
