/* cuda/matmul_f.cu — y = x·Wᵀ (+ b) for F32 / F16 / BF16 weights
 * (runtime/matmul.c semantics; PyTorch F.linear(x, W, b)).
 * One warp per output row and MMF_TT tokens: lanes stride over n_in
 * (coalesced row reads, each weight element converted once per MMF_TT
 * tokens), fp32 partial sums reduced by shuffles. Decode (n_tok = 1) is the
 * same kernel with one token. Limits: n_in >= 1, n_tok <= 65535·MMF_TT.
 * k_mmf8, for n_in a multiple of 8: the same work with each lane loading 8
 * weights at once (one 16-byte load of F16/BF16, two of F32) and two such
 * loads in flight — 2-byte loads kept F16 decode at 15 % of an H200's
 * bandwidth (F32's 4-byte loads reached 59 %). */
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

/* weights 8g .. 8g+7 of a row as fp32 (row 16-byte aligned: n_in % 8 == 0) */
HQ_DEVICE void mmf_load8(uint32_t type, const uint8_t *row, int64_t g, float *wv) {
    if (type == GGML_T_F32) {
        const float4 *p = (const float4 *)(const void *)row + 2 * g;
        float4 a0 = p[0], a1 = p[1];
        wv[0] = a0.x, wv[1] = a0.y, wv[2] = a0.z, wv[3] = a0.w;
        wv[4] = a1.x, wv[5] = a1.y, wv[6] = a1.z, wv[7] = a1.w;
        return;
    }
    uint4 u = ((const uint4 *)(const void *)row)[g];
    uint32_t h[4] = {u.x, u.y, u.z, u.w};
    HQ_UNROLL
    for (int k = 0; k < 4; k++) {
        uint16_t lo = (uint16_t)(h[k] & 0xffffu), hi = (uint16_t)(h[k] >> 16);
        wv[2 * k] = type == GGML_T_F16 ? hq_dev_f16_to_f32(lo) : hq_dev_bf16_to_f32(lo);
        wv[2 * k + 1] = type == GGML_T_F16 ? hq_dev_f16_to_f32(hi) : hq_dev_bf16_to_f32(hi);
    }
}

HQ_DEVICE float mmf_dot8(const float *wv, const float *x) {
    const float4 *xp = (const float4 *)(const void *)x;
    float4 x0 = xp[0], x1 = xp[1];
    return wv[0] * x0.x + wv[1] * x0.y + wv[2] * x0.z + wv[3] * x0.w + wv[4] * x1.x + wv[5] * x1.y + wv[6] * x1.z +
           wv[7] * x1.w;
}

HQ_KERNEL(k_mmf8, k_mmf_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t o = (int64_t)blockIdx.x * MMF_WARPS + (threadIdx.x >> 5), t0 = (int64_t)blockIdx.y * MMF_TT;
    if (o >= a.n_out) return; /* warp-uniform: this warp has no row */
    const uint8_t *row = a.w + (uint64_t)o * a.rb;
    int64_t nt = a.n_tok - t0 < MMF_TT ? a.n_tok - t0 : MMF_TT, n8 = a.n_in / 8;
    float acc[MMF_TT];
    HQ_UNROLL
    for (int tt = 0; tt < MMF_TT; tt++) acc[tt] = 0.0f;
    int64_t g = lane;
    for (; g + 32 < n8; g += 64) { /* two groups per lane: both loads issued before the math */
        float w0[8], w1[8];
        mmf_load8(a.type, row, g, w0);
        mmf_load8(a.type, row, g + 32, w1);
        HQ_UNROLL
        for (int tt = 0; tt < MMF_TT; tt++)
            if (tt < nt) {
                const float *xt = a.x + (t0 + tt) * a.n_in;
                acc[tt] += mmf_dot8(w0, xt + 8 * g) + mmf_dot8(w1, xt + 8 * (g + 32));
            }
    }
    if (g < n8) {
        float w0[8];
        mmf_load8(a.type, row, g, w0);
        HQ_UNROLL
        for (int tt = 0; tt < MMF_TT; tt++)
            if (tt < nt) acc[tt] += mmf_dot8(w0, a.x + (t0 + tt) * a.n_in + 8 * g);
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
    /* 16-byte aligned rows and activations (device allocations are 256-byte aligned) */
    if (w->n_in % 8 == 0 && ((uintptr_t)w->data | (uintptr_t)x) % 16 == 0)
        return CU_GO(k_mmf8, k_mmf_args,
                     hq_dim3(cu_blocks(w->n_out, MMF_WARPS), (unsigned)((n_tok + MMF_TT - 1) / MMF_TT), 1),
                     hq_dim3(32 * MMF_WARPS, 1, 1), a);
    return CU_GO(k_mmf, k_mmf_args, hq_dim3(cu_blocks(w->n_out, MMF_WARPS), (unsigned)((n_tok + MMF_TT - 1) / MMF_TT), 1),
                 hq_dim3(32 * MMF_WARPS, 1, 1), a);
}
