/* cuda/kl.cu — per-row KL divergence between two logit rows (verify):
 *   p = softmax(a), q = softmax(b);  KL(p‖q) = Σ_i p_i (log p_i − log q_i)
 *     = Σ_i p_i (a_i − b_i) − (ma + log Za) + (mb + log Zb)
 * One block per row: block max and sums for both rows, then Σ p_i (a_i − b_i).
 * fp32 sums; clamped at 0 (rounding can give −1e-9). Limits: V >= 1. */
#include "cu_kern.h"

typedef struct {
    const float *a, *b;
    float *kl;
    int64_t V;
} k_kl_args;

HQ_KERNEL(k_kl, k_kl_args) {
    HQ_SHARED(float, red, 32);
    const float *ar = a.a + (int64_t)blockIdx.x * a.V, *br = a.b + (int64_t)blockIdx.x * a.V;
    float ma = -INFINITY, mb = -INFINITY;
    for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) ma = fmaxf(ma, ar[i]), mb = fmaxf(mb, br[i]);
    ma = cu_block_max(ma, red);
    mb = cu_block_max(mb, red);
    float za = 0.0f, zb = 0.0f, sd = 0.0f;
    for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) {
        float ea = expf(ar[i] - ma);
        za += ea;
        zb += expf(br[i] - mb);
        sd += ea * (ar[i] - br[i]);
    }
    za = cu_block_sum(za, red);
    zb = cu_block_sum(zb, red);
    sd = cu_block_sum(sd, red);
    if (threadIdx.x == 0) {
        float kl = sd / za - (ma + logf(za)) + (mb + logf(zb));
        a.kl[blockIdx.x] = kl > 0.0f ? kl : 0.0f;
    }
}

CU_API int CU_SYM(cu_kl)(const float *a, const float *b, float *kl, int64_t rows, int64_t V) {
    if (rows <= 0) return 0;
    if (V < 1 || rows > 2147483647) return -1;
    k_kl_args args = {a, b, kl, V};
    return CU_GO(k_kl, k_kl_args, hq_dim3((unsigned)rows, 1, 1), hq_dim3(256, 1, 1), args);
}
