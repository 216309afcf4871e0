/* cuda/elementwise.cu — the small per-element steps of the forward pass
 * (runtime/forward.c), one thread per element:
 *   swiglu:        g = silu(g)·u                      (rt_swiglu)
 *   softplus_bias: Δ[t][h] = softplus(Δ[t][h] + b[h])  (SSD dt; b may be NULL)
 *   residual:      h[t][i] = r[i]·h[t][i] + br[t][i]
 *   kv_append:     caches ← k, v at positions pos0..; β_j = exp(A·softplus(dt_j))
 * No limits beyond the grid (n < 2^31·128). */
#include "cu_kern.h"

typedef struct {
    float *g;
    const float *u;
    int64_t n;
} k_swiglu_args;
HQ_KERNEL(k_swiglu, k_swiglu_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n) a.g[i] = cu_silu(a.g[i]) * a.u[i];
}
CU_API int CU_SYM(cu_swiglu)(float *g, const float *u, int64_t n) {
    if (n <= 0) return 0;
    k_swiglu_args a = {g, u, n};
    return CU_GO(k_swiglu, k_swiglu_args, hq_dim3(cu_blocks(n, 256), 1, 1), hq_dim3(256, 1, 1), a);
}

typedef struct {
    float *dt;
    const float *bias;
    int64_t n, H;
} k_softplus_args;
HQ_KERNEL(k_softplus, k_softplus_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n * a.H) a.dt[i] = cu_softplus(a.dt[i] + (a.bias ? a.bias[i % a.H] : 0.0f));
}
CU_API int CU_SYM(cu_softplus_bias)(float *dt, const float *bias, int64_t n, int64_t H) {
    if (n <= 0 || H <= 0) return 0;
    k_softplus_args a = {dt, bias, n, H};
    return CU_GO(k_softplus, k_softplus_args, hq_dim3(cu_blocks(n * H, 256), 1, 1), hq_dim3(256, 1, 1), a);
}

typedef struct {
    float *h;
    const float *r, *br;
    int64_t n, d;
} k_residual_args;
HQ_KERNEL(k_residual, k_residual_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n * a.d) a.h[i] = a.r[i % a.d] * a.h[i] + a.br[i];
}
CU_API int CU_SYM(cu_residual)(float *h, const float *r, const float *br, int64_t n, int64_t d) {
    if (n <= 0 || d <= 0) return 0;
    k_residual_args a = {h, r, br, n, d};
    return CU_GO(k_residual, k_residual_args, hq_dim3(cu_blocks(n * d, 256), 1, 1), hq_dim3(256, 1, 1), a);
}

typedef struct {
    float *kc, *vc, *beta;
    const float *k, *v, *dt, *A;
    int64_t n, KV, P, M, cap, pos0;
    const int64_t *dpos; /* run-time position (graphs) or NULL: pos0 */
} k_kv_args;
/* thread i < n·KV·P copies one k and one v element; i < n·M also writes β */
HQ_KERNEL(k_kv_append, k_kv_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, pos0 = a.dpos ? *a.dpos : a.pos0;
    if (i < a.n * a.KV * a.P) {
        int64_t p = i % a.P, g = (i / a.P) % a.KV, t = i / (a.P * a.KV);
        int64_t dst = (g * a.cap + pos0 + t) * a.P + p;
        a.kc[dst] = a.k[i];
        a.vc[dst] = a.v[i];
    }
    if (i < a.n * a.M) {
        int64_t m = i % a.M, t = i / a.M;
        a.beta[m * a.cap + pos0 + t] = expf(a.A[m] * cu_softplus(a.dt[i]));
    }
}
CU_API int CU_SYM(cu_kv_append)(float *kc, float *vc, float *beta, const float *k, const float *v, const float *dt,
                                const float *A, int64_t n, int64_t KV, int64_t P, int64_t M, int64_t cap,
                                int64_t pos0, const int64_t *dpos) {
    if (n <= 0) return 0;
    if (!dpos && (pos0 < 0 || pos0 + n > cap)) return -1;
    k_kv_args a = {kc, vc, beta, k, v, dt, A, n, KV, P, M, cap, pos0, dpos};
    int64_t items = n * KV * P > n * M ? n * KV * P : n * M;
    return CU_GO(k_kv_append, k_kv_args, hq_dim3(cu_blocks(items, 256), 1, 1), hq_dim3(256, 1, 1), a);
}
