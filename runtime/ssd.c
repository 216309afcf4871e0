/* runtime/ssd.c — the state-space-duality mixer's scan (spec §4.5).
 * Per head h (group g = h / (H/G)), state S_h ∈ R^{P×N} in fp32:
 *   S_h(t) = exp(Δ_{t,h}·A_h)·S_h(t−1) + Δ_{t,h}·X_{t,h} ⊗ B_{t,g}
 *   Y_{t,h} = S_h(t)·C_{t,g}  (+ D_h·X_{t,h})
 * The recurrence is the reference semantics (mamba_ssm selective_state_update
 * and ≤ 2.2.4 chunked prefill). The chunked form unrolls it inside a chunk,
 * with a_t = Σ_{r≤t} Δ_r A (cumulative within the chunk):
 *   Y_t = exp(a_t)·S_prev·C_t + Σ_{s≤t} (C_t·B_s)·exp(a_t − a_s)·Δ_s·X_s
 *   S_new = exp(a_L)·S_prev + Σ_s exp(a_L − a_s)·Δ_s·X_s ⊗ B_s
 * (exact in exact arithmetic; only rounding differs). */
#include "rt_cpu.h" // defines: RT_OMP

#include <math.h>

static void scan_head(const rt_ssd_dims *dm, int64_t n, int64_t h, const float *x, const float *b, const float *c,
                      const float *dt, const float *A, const float *D, float *state, float *y) {
    int64_t H = dm->H, P = dm->P, G = dm->G, N = dm->N, g = h / (H / G);
    float *S = state + h * P * N;
    for (int64_t t = 0; t < n; t++) {
        float d = dt[t * H + h];
        float decay = expf(d * A[h]);
        const float *xt = x + (t * H + h) * P, *bt = b + (t * G + g) * N, *ct = c + (t * G + g) * N;
        float *yt = y + (t * H + h) * P;
        for (int64_t p = 0; p < P; p++) {
            float *Sp = S + p * N;
            float dx = d * xt[p];
            float acc = 0;
            for (int64_t k = 0; k < N; k++) {
                Sp[k] = decay * Sp[k] + dx * bt[k];
                acc += Sp[k] * ct[k];
            }
            yt[p] = D ? acc + D[h] * xt[p] : acc;
        }
    }
}

void rt_ssd_scan_ref(const rt_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                     const float *dt, const float *A, const float *D, float *state, float *y) {
    for (int64_t h = 0; h < dm->H; h++) scan_head(dm, n, h, x, b, c, dt, A, D, state, y);
}

/* same recurrence, vectorized over N: S_p = decay·S_p + (Δ·x_p)·B; y_p = S_p·C */
static void scan_head_fast(const rt_ssd_dims *dm, int64_t n, int64_t h, const float *x, const float *b, const float *c,
                           const float *dt, const float *A, const float *D, float *state, float *y) {
    int64_t H = dm->H, P = dm->P, G = dm->G, N = dm->N, g = h / (H / G);
    float *S = state + h * P * N;
    for (int64_t t = 0; t < n; t++) {
        float d = dt[t * H + h];
        float decay = expf(d * A[h]);
        const float *xt = x + (t * H + h) * P, *bt = b + (t * G + g) * N, *ct = c + (t * G + g) * N;
        float *yt = y + (t * H + h) * P;
        for (int64_t p = 0; p < P; p++) {
            float *Sp = S + p * N;
            for (int64_t k = 0; k < N; k++) Sp[k] *= decay;
            rt_axpy_f32(d * xt[p], bt, Sp, N);
            float acc = rt_dot_f32(Sp, ct, N);
            yt[p] = D ? acc + D[h] * xt[p] : acc;
        }
    }
}

void rt_ssd_scan(const rt_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                 const float *dt, const float *A, const float *D, float *state, float *y) {
    if (rt_ops_ref()) {
        rt_ssd_scan_ref(dm, n, x, b, c, dt, A, D, state, y);
        return;
    }
    RT_OMP("omp parallel for schedule(static) if(dm->H * dm->P * dm->N * n > 65536)")
    for (int64_t h = 0; h < dm->H; h++) scan_head_fast(dm, n, h, x, b, c, dt, A, D, state, y);
}

int64_t rt_ssd_chunked_scratch(const rt_ssd_dims *dm, int64_t chunk) { return 2 * chunk + dm->P + dm->N; }

#define dotf rt_dot_f32

static void chunk_head(const rt_ssd_dims *dm, int64_t n, int64_t chunk, int64_t h, const float *x, const float *b,
                       const float *c, const float *dt, const float *A, const float *D, float *state, float *y,
                       float *scr) {
    int64_t H = dm->H, P = dm->P, G = dm->G, N = dm->N, g = h / (H / G);
    float *S = state + h * P * N;
    float *cum = scr, *coef = scr + chunk, *tmp = scr + 2 * chunk;
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        int64_t L = n - c0 < chunk ? n - c0 : chunk;
        /* a_t = Σ_{r≤t} Δ_r·A_h */
        double run = 0;
        for (int64_t t = 0; t < L; t++) {
            run += (double)dt[(c0 + t) * H + h] * A[h];
            cum[t] = (float)run;
        }
        for (int64_t t = 0; t < L; t++) {
            int64_t tt = c0 + t;
            const float *ct = c + (tt * G + g) * N;
            float *yt = y + (tt * H + h) * P;
            /* carried state: exp(a_t)·S_prev·C_t */
            float e = expf(cum[t]);
            for (int64_t p = 0; p < P; p++) yt[p] = e * dotf(S + p * N, ct, N);
            /* intra-chunk: Σ_{s≤t} (C_t·B_s)·exp(a_t − a_s)·Δ_s·X_s */
            for (int64_t s = 0; s <= t; s++) {
                int64_t ss = c0 + s;
                coef[s] = dotf(ct, b + (ss * G + g) * N, N) * expf(cum[t] - cum[s]) * dt[ss * H + h];
            }
            for (int64_t s = 0; s <= t; s++) rt_axpy_f32(coef[s], x + ((c0 + s) * H + h) * P, yt, P);
            if (D)
                for (int64_t p = 0; p < P; p++) yt[p] += D[h] * x[(tt * H + h) * P + p];
        }
        /* S_new = exp(a_L)·S_prev + Σ_s exp(a_L − a_s)·Δ_s·X_s ⊗ B_s */
        float eL = expf(cum[L - 1]);
        for (int64_t i = 0; i < P * N; i++) S[i] *= eL;
        for (int64_t s = 0; s < L; s++) {
            int64_t ss = c0 + s;
            float w = expf(cum[L - 1] - cum[s]) * dt[ss * H + h];
            const float *xs = x + (ss * H + h) * P, *bs = b + (ss * G + g) * N;
            for (int64_t k = 0; k < N; k++) tmp[k] = w * bs[k];
            for (int64_t p = 0; p < P; p++) rt_axpy_f32(xs[p], tmp, S + p * N, N);
        }
    }
}

void rt_ssd_chunked(const rt_ssd_dims *dm, int64_t n, int64_t chunk, const float *x, const float *b,
                    const float *c, const float *dt, const float *A, const float *D, float *state, float *y,
                    float *scratch) {
    if (chunk < 1) chunk = 1;
    int64_t per = rt_ssd_chunked_scratch(dm, chunk);
    RT_OMP("omp parallel for schedule(static) if(dm->H > 1 && n > 1)")
    for (int64_t h = 0; h < dm->H; h++)
        chunk_head(dm, n, chunk, h, x, b, c, dt, A, D, state, y, scratch + (int64_t)rt_thread_id() * per);
}
