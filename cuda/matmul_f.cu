/* cuda/matmul_f.cu — y = x·Wᵀ (+ b) for F32 / F16 / BF16 weights
 * (runtime/matmul.c semantics; PyTorch F.linear(x, W, b)).
 * One warp per output row and MMF_TT tokens: lanes stride over n_in
 * (coalesced row reads, each weight element converted once per MMF_TT
 * tokens), fp32 partial sums reduced by shuffles. Decode (n_tok = 1) is the
 * same kernel with one token. Limits: n_in >= 1, n_tok <= 65535·MMF_TT. */
#include "cu_kern.h"

#define MMF_TT 4
#define MMF_WARPS 4

typedef struct {
    const uint8_t *w;
    uint32_t type;
    int64_t n_in, n_out;
    uint64_t rb;
    const float *x;
    float *y;
    int64_t n_tok;
    const float *bias;
} k_mmf_args;

HQ_KERNEL(k_mmf, k_mmf_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t o = (int64_t)blockIdx.x * MMF_WARPS + (threadIdx.x >> 5), t0 = (int64_t)blockIdx.y * MMF_TT;
    if (o >= a.n_out) return; /* warp-uniform: this warp has no row */
    const uint8_t *row = a.w + (uint64_t)o * a.rb;
    int64_t nt = a.n_tok - t0 < MMF_TT ? a.n_tok - t0 : MMF_TT;
    float acc[MMF_TT];
    HQ_UNROLL
    for (int tt = 0; tt < MMF_TT; tt++) acc[tt] = 0.0f;
    for (int64_t i = lane; i < a.n_in; i += 32) {
        float wv = a.type == GGML_T_F32   ? ((const float *)(const void *)row)[i]
                   : a.type == GGML_T_F16 ? hq_dev_f16_to_f32(((const uint16_t *)(const void *)row)[i])
                                          : hq_dev_bf16_to_f32(((const uint16_t *)(const void *)row)[i]);
        HQ_UNROLL
        for (int tt = 0; tt < MMF_TT; tt++)
            if (tt < nt) acc[tt] += wv * a.x[(t0 + tt) * a.n_in + i];
    }
    HQ_UNROLL
    for (int tt = 0; tt < MMF_TT; tt++) {
        float s = cu_warp_sum(acc[tt]);
        if (lane == 0 && tt < nt) a.y[(t0 + tt) * a.n_out + o] = s + (a.bias ? a.bias[o] : 0.0f);
    }
}

CU_API int CU_SYM(cu_matmul_f_supported)(uint32_t type, int64_t n_in) {
    return (type == GGML_T_F32 || type == GGML_T_F16 || type == GGML_T_BF16) && n_in >= 1;
}

CU_API int CU_SYM(cu_matmul_f)(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias) {
    if (n_tok <= 0) return 0;
    if (!CU_SYM(cu_matmul_f_supported)(w->type, w->n_in) || w->n_out < 1 || n_tok > (int64_t)65535 * MMF_TT)
        return -1;
    k_mmf_args a = {(const uint8_t *)w->data, w->type, w->n_in, w->n_out, w->row_bytes, x, y, n_tok, bias};
    return CU_GO(k_mmf, k_mmf_args, hq_dim3(cu_blocks(w->n_out, MMF_WARPS), (unsigned)((n_tok + MMF_TT - 1) / MMF_TT), 1),
                 hq_dim3(32 * MMF_WARPS, 1, 1), a);
}
