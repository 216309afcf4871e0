/* runtime/mamba.c — OTCE's Mamba-1 mixer (spec §4.10; modeling_cheems_OTCE.py
 * CheemsMambaMixer.slow_forward l.1273-1378):
 *   [u, z] = in_proj(x);  u = SiLU(conv1d(u));  [dt, B, C] = x_proj(u)
 *   dt, B, C = RMSNorm_dt/B/C (weight + bias, always applied)
 *   B, C = RoPE(B, C) at the absolute positions (dim N, when mamba_rope)
 *   C = C · max(1, ln(65+i)/ln 4096), i = index within the call
 *   Δ = softplus(dt_proj(dt));  A = −exp(A_log)
 *   s = exp(Δ A) ⊙ s + Δ u B;  y = (s·C + D u) · SiLU(z);  out = out_proj(y) */
#include "otce_ops.h" // defines: rt_mamba_scan, rt_mamba_mixer
#include "rt_cpu.h"   // defines: RT_OMP

#include <math.h>
#include <string.h>

/* one channel c over n tokens */
static void scan_channel(const float *u, const float *delta, const float *A, const float *B, const float *C,
                         const float *D, const float *z, int64_t ldz, int64_t n, int64_t E, int64_t N, int64_t c,
                         float *state, float *y) {
    float *s = state + c * N;
    const float *Ac = A + c * N;
    for (int64_t t = 0; t < n; t++) {
        float dl = delta[t * E + c], uc = u[t * E + c];
        const float *Bt = B + t * N, *Ct = C + t * N;
        float acc = 0;
        for (int64_t k = 0; k < N; k++) {
            /* ssm_state = discrete_A * ssm_state + deltaB_u ; scan_output = ssm_state @ C */
            s[k] = expf(dl * Ac[k]) * s[k] + dl * Bt[k] * uc;
            acc += s[k] * Ct[k];
        }
        /* scan_output + hidden_states * D, then * act(gate) */
        y[t * E + c] = (acc + D[c] * uc) * rt_silu(z[t * ldz + c]);
    }
}

void rt_mamba_scan_ref(const float *u, const float *delta, const float *A, const float *B, const float *C,
                       const float *D, const float *z, int64_t ldz, int64_t n, int64_t E, int64_t N, float *state,
                       float *y) {
    for (int64_t c = 0; c < E; c++) scan_channel(u, delta, A, B, C, D, z, ldz, n, E, N, c, state, y);
}

/* channels are independent: split them over threads (same arithmetic per channel) */
void rt_mamba_scan(const float *u, const float *delta, const float *A, const float *B, const float *C, const float *D,
                   const float *z, int64_t ldz, int64_t n, int64_t E, int64_t N, float *state, float *y) {
    if (rt_ops_ref()) {
        rt_mamba_scan_ref(u, delta, A, B, C, D, z, ldz, n, E, N, state, y);
        return;
    }
    RT_OMP("omp parallel for schedule(static) if(E * N * n > 32768)")
    for (int64_t c = 0; c < E; c++) scan_channel(u, delta, A, B, C, D, z, ldz, n, E, N, c, state, y);
}

float rt_otce_logn(int64_t i) {
    /* logn = log(arange(65, 65+L)) / log(4096); logn[logn < 1] = 1 (computed in float32) */
    float v = logf((float)(65 + i)) / logf(4096.0f);
    return v < 1.0f ? 1.0f : v;
}

int64_t rt_mamba_mixer_scratch(const rt_mamba_layer *L, int64_t n) {
    /* xz 2E, uc E, p R+2N, dt R, B N, C N, delta E, y E per token */
    int64_t per = 0, tot = 0;
    if (!hq_add_i64(2 * L->E, L->E, &per) || !hq_add_i64(per, L->R + 2 * L->N, &per) ||
        !hq_add_i64(per, L->R + 2 * L->N, &per) || !hq_add_i64(per, 2 * L->E, &per) || !hq_mul_i64(per, n, &tot))
        return 0;
    return tot;
}

hq_status rt_mamba_mixer(const rt_mamba_layer *L, const float *x, int64_t n, const int64_t *pos, int64_t call_idx0,
                         float *conv_state, float *ssm_state, float *out, float *scratch, bool ref, char *err) {
    int64_t E = L->E, N = L->N, R = L->R, P = R + 2 * N;
    float *xz = scratch, *uc = xz + 2 * E * n, *p = uc + E * n, *dt = p + P * n, *B = dt + R * n, *C = B + N * n,
          *delta = C + N * n, *y = delta + E * n;
    hq_status (*mm)(const rt_weight *, const float *, float *, int64_t, const float *, char *) =
        ref ? rt_matmul_ref : rt_matmul;
    hq_status st;
    /* projected_states = in_proj(x); hidden_states, gate = chunk(2) */
    if ((st = mm(&L->in_proj, x, xz, n, L->in_proj_b, err)) != HQ_OK) return st;
    /* hidden_states = act(conv1d(hidden_states)) with the rolling conv state */
    (ref ? rt_conv1d_ref : rt_conv1d)(xz, 2 * E, n, E, L->K, L->conv_w, L->conv_b, conv_state, true, uc);
    /* time_step, B, C = split(x_proj(hidden_states), [R, N, N]) */
    if ((st = mm(&L->x_proj, uc, p, n, NULL, err)) != HQ_OK) return st;
    for (int64_t t = 0; t < n; t++) {
        memcpy(dt + t * R, p + t * P, (size_t)R * sizeof *dt);
        memcpy(B + t * N, p + t * P + R, (size_t)N * sizeof *B);
        memcpy(C + t * N, p + t * P + R + N, (size_t)N * sizeof *C);
    }
    void (*norm)(const float *, const float *, const float *, float *, int64_t, int64_t, float) =
        ref ? rt_otce_rmsnorm_ref : rt_otce_rmsnorm;
    norm(dt, L->dt_norm_w, L->dt_norm_b, dt, n, R, L->eps);
    norm(B, L->B_norm_w, L->B_norm_b, B, n, N, L->eps);
    norm(C, L->C_norm_w, L->C_norm_b, C, n, N, L->eps);
    /* B, C = apply_BC_rotary_pos_emb(B, C, cos, sin, position_ids) */
    if (L->rope) {
        (ref ? rt_rope_ref : rt_rope)(B, n, 1, N, pos, L->rope_base);
        (ref ? rt_rope_ref : rt_rope)(C, n, 1, N, pos, L->rope_base);
    }
    for (int64_t t = 0; t < n; t++) {
        float s = rt_otce_logn(call_idx0 + t);
        if (s != 1.0f)
            for (int64_t k = 0; k < N; k++) C[t * N + k] *= s;
    }
    /* discrete_time_step = softplus(dt_proj(time_step)) */
    if ((st = mm(&L->dt_proj, dt, delta, n, L->dt_proj_b, err)) != HQ_OK) return st;
    for (int64_t i = 0; i < n * E; i++) delta[i] = rt_softplus(delta[i]);
    (ref ? rt_mamba_scan_ref : rt_mamba_scan)(uc, delta, L->A, B, C, L->D, xz + E, 2 * E, n, E, N, ssm_state, y);
    return mm(&L->out_proj, y, out, n, L->out_proj_b, err);
}
