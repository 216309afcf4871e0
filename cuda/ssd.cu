/* cuda/ssd.cu — the state-space-duality mixer's recurrence (runtime/ssd.c,
 * mamba_ssm selective_state_update semantics), for decode (n = 1) and
 * prefill (n > 1):
 *   S_h(t) = exp(Δ_{t,h}·A_h)·S_h(t−1) + Δ_{t,h}·X_{t,h} ⊗ B_{t,g};  Y_{t,h} = S_h(t)·C_{t,g} (+ D_h·X_{t,h})
 * One warp per state row (h, p): lane l keeps S[h][p][l + 32i] (i < 4) in
 * registers for all n tokens, so the state is read and written once per
 * call; y is a warp-shuffle sum over the N columns. Rows are independent, so
 * the grid is H·P warps and the time loop is sequential inside each warp
 * (the CPU's chunked form is an algebraic rearrangement of the same
 * recurrence; the GPU's parallelism comes from H·P instead).
 * Limits: 1 <= N <= 128, G divides H. */
#include "cu_kern.h"

#define SSD_WARPS 4
#define SSD_NR 4 /* registers per lane: N <= 32·SSD_NR */

typedef struct {
    int64_t H, P, G, N, n;
    const float *x, *b, *c, *dt, *A, *D;
    float *state, *y;
} k_ssd_args;

HQ_KERNEL(k_ssd_scan, k_ssd_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * SSD_WARPS + (threadIdx.x >> 5);
    if (row >= a.H * a.P) return; /* warp-uniform */
    int64_t h = row / a.P, p = row % a.P, g = h / (a.H / a.G);
    float *S = a.state + row * a.N;
    float s[SSD_NR];
    HQ_UNROLL
    for (int i = 0; i < SSD_NR; i++) s[i] = lane + 32 * i < a.N ? S[lane + 32 * i] : 0.0f;
    float Ah = a.A[h], Dh = a.D ? a.D[h] : 0.0f;
    for (int64_t t = 0; t < a.n; t++) {
        float d = a.dt[t * a.H + h];
        float decay = expf(d * Ah);
        float xp = a.x[(t * a.H + h) * a.P + p], dx = d * xp;
        const float *bt = a.b + (t * a.G + g) * a.N, *ct = a.c + (t * a.G + g) * a.N;
        float acc = 0.0f;
        HQ_UNROLL
        for (int i = 0; i < SSD_NR; i++) {
            int64_t k = lane + 32 * i;
            if (k < a.N) {
                s[i] = decay * s[i] + dx * bt[k];
                acc += s[i] * ct[k];
            }
        }
        acc = cu_warp_sum(acc);
        if (lane == 0) a.y[(t * a.H + h) * a.P + p] = a.D ? acc + Dh * xp : acc;
    }
    HQ_UNROLL
    for (int i = 0; i < SSD_NR; i++)
        if (lane + 32 * i < a.N) S[lane + 32 * i] = s[i];
}

CU_API int CU_SYM(cu_ssd_supported)(const cu_ssd_dims *dm) {
    return dm->H >= 1 && dm->P >= 1 && dm->G >= 1 && dm->H % dm->G == 0 && dm->N >= 1 && dm->N <= 32 * SSD_NR;
}

CU_API int CU_SYM(cu_ssd_scan)(const cu_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                               const float *dt, const float *A, const float *D, float *state, float *y) {
    if (n <= 0) return 0;
    if (!CU_SYM(cu_ssd_supported)(dm)) return -1;
    k_ssd_args a = {dm->H, dm->P, dm->G, dm->N, n, x, b, c, dt, A, D, state, y};
    return CU_GO(k_ssd_scan, k_ssd_args, hq_dim3(cu_blocks(dm->H * dm->P, SSD_WARPS), 1, 1),
                 hq_dim3(32 * SSD_WARPS, 1, 1), a);
}
