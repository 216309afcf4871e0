/* cuda/cu_kern.h — device helpers shared by the kernel files (cuda/<op>.cu):
 * warp/block reductions, unaligned little-endian loads, half conversions,
 * per-element dequantization of every weight storage type, and the naming
 * macros that let one source build twice.
 *
 * Every kernel file is compiled twice: by nvcc (real GPU, symbols end in
 * _gpu) and by gcc as C against the emulator (cuda/kernels_emu.c includes
 * them all; symbols end in _emu). Host wrappers are written CU_SYM(cu_op)
 * and reached through the cu_ops tables (cuda/cu_ops.h).
 *
 * Rules (emulator-checked): blocks are 1-D with blockDim.x a multiple of 32;
 * full-warp shuffles only in warp-uniform control flow; every thread of a
 * block reaches each __syncthreads; HQ_SHARED only at the top of a kernel. */
#ifndef HQ_CU_KERN_H
#define HQ_CU_KERN_H
#include "hq_cuda.h"
#include "cu_ops.h"

#include <stddef.h>

#ifdef __CUDACC__
#define CU_API extern "C"
#define CU_SYM(n) n##_gpu
/* launch + error check: the wrappers return 0 or -1 */
#define CU_GO(name, T, grid, block, args) \
    (HQ_LAUNCH(name, T, grid, block, args), cudaGetLastError() == cudaSuccess ? 0 : -1)
#else
#define CU_API
#define CU_SYM(n) n##_emu
#define CU_GO(name, T, grid, block, args) HQ_LAUNCH(name, T, grid, block, args)
#endif

#define CU_FULL 0xffffffffu

/* grid size for n items of `per` each, clamped to the 1-D launch limit */
static inline unsigned cu_blocks(int64_t n, int64_t per) {
    int64_t b = (n + per - 1) / per;
    return b < 1 ? 1u : b > 2147483647 ? 2147483647u : (unsigned)b;
}

HQ_DEVICE float cu_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(CU_FULL, v, o);
    return v;
}
HQ_DEVICE int cu_warp_sum_i(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(CU_FULL, v, o);
    return v;
}
HQ_DEVICE float cu_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(CU_FULL, v, o));
    return v;
}

/* Σ v over the block, returned to every thread. red: shared, >= 32 floats.
 * All threads must call it (two barriers). */
HQ_DEVICE float cu_block_sum(float v, float *red) {
    int lane = (int)threadIdx.x & 31, w = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    v = cu_warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[w] = v;
    __syncthreads();
    float s = lane < nw ? red[lane] : 0.0f;
    return cu_warp_sum(s);
}
HQ_DEVICE float cu_block_max(float v, float *red) {
    int lane = (int)threadIdx.x & 31, w = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    v = cu_warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    float s = lane < nw ? red[lane] : -INFINITY;
    return cu_warp_max(s);
}

/* 16/32-bit little-endian loads from 2-byte aligned block data (ggml blocks
 * have even sizes, so every field is 2-byte aligned but not 4) */
HQ_DEVICE uint32_t cu_ld_u16(const uint8_t *p) { return *(const uint16_t *)(const void *)p; }
HQ_DEVICE int cu_ld_i32_a2(const uint8_t *p) {
    const uint16_t *h = (const uint16_t *)(const void *)p;
    return (int)((uint32_t)h[0] | ((uint32_t)h[1] << 16));
}
HQ_DEVICE int cu_ld_i32(const void *p) { return *(const int *)p; } /* 4-byte aligned */
HQ_DEVICE float cu_ld_f16(const uint8_t *p) { return hq_dev_f16_to_f32((uint16_t)cu_ld_u16(p)); }

HQ_DEVICE uint32_t cu_fbits(float f) {
    union { float f; uint32_t u; } c;
    c.f = f;
    return c.u;
}
/* fp32 -> fp16 round-to-nearest-even, bit-identical to core/half.h */
HQ_DEVICE uint16_t cu_f32_to_f16(float f) {
    uint32_t u = cu_fbits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (a >> 13) - (112u << 10), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

HQ_DEVICE float cu_silu(float x) { return x / (1.0f + expf(-x)); }
HQ_DEVICE float cu_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* ggml K-quant 6-bit scale/min j of scales[12] */
HQ_DEVICE void cu_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* ggml Q3_K signed 6-bit scale j of scales[12] (layout in quant/formats.h) */
HQ_DEVICE int cu_scale_q3k(int j, const uint8_t *q) {
    int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
    return (lo | (((q[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* ggml kvalues_iq4nl {-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113}
 * as int8 bytes of two 64-bit constants: a shift, no branches or memory
 * (the nested-ternary lookup ran IQ4_NL at 250 GB/s on an H200) */
HQ_DEVICE int cu_iq4nl(int i) {
    const uint64_t lo = 0xF6EADDCFBFAD9881ull, hi = 0x7159453526190D01ull;
    return (int)(int8_t)(uint8_t)((i < 8 ? lo : hi) >> (8 * (i & 7)));
}

/* Element i of a weight row of storage type `type` (ggml id), as fp32, with
 * the same arithmetic as the quant/ to_float_ref of that type. */
HQ_DEVICE float cu_deq1(uint32_t type, const uint8_t *row, int64_t i) {
    switch (type) {
    case GGML_T_F32: return ((const float *)(const void *)row)[i];
    case GGML_T_F16: return hq_dev_f16_to_f32(((const uint16_t *)(const void *)row)[i]);
    case GGML_T_BF16: return hq_dev_bf16_to_f32(((const uint16_t *)(const void *)row)[i]);
    default: break;
    }
    int64_t b32 = i / 32;
    int j = (int)(i % 32), lo = j < 16, jj = j & 15;
    switch (type) {
    case GGML_T_Q8_0: {
        const uint8_t *b = row + b32 * 34;
        return (float)(int8_t)b[2 + j] * cu_ld_f16(b);
    }
    case GGML_T_Q4_0: {
        const uint8_t *b = row + b32 * 18;
        int q = lo ? (b[2 + jj] & 0xF) : (b[2 + jj] >> 4);
        return (float)(q - 8) * cu_ld_f16(b);
    }
    case GGML_T_Q4_1: {
        const uint8_t *b = row + b32 * 20;
        int q = lo ? (b[4 + jj] & 0xF) : (b[4 + jj] >> 4);
        return (float)q * cu_ld_f16(b) + cu_ld_f16(b + 2);
    }
    case GGML_T_Q5_0: {
        const uint8_t *b = row + b32 * 22;
        uint32_t qh = (uint32_t)cu_ld_i32_a2(b + 2);
        int q = (lo ? (b[6 + jj] & 0xF) : (b[6 + jj] >> 4)) | (int)(((qh >> j) & 1u) << 4);
        return (float)(q - 16) * cu_ld_f16(b);
    }
    case GGML_T_Q5_1: {
        const uint8_t *b = row + b32 * 24;
        uint32_t qh = (uint32_t)cu_ld_i32_a2(b + 4);
        int q = (lo ? (b[8 + jj] & 0xF) : (b[8 + jj] >> 4)) | (int)(((qh >> j) & 1u) << 4);
        return (float)q * cu_ld_f16(b) + cu_ld_f16(b + 2);
    }
    case GGML_T_IQ4_NL: {
        const uint8_t *b = row + b32 * 18;
        int q = lo ? (b[2 + jj] & 0xF) : (b[2 + jj] >> 4);
        return cu_ld_f16(b) * (float)cu_iq4nl(q);
    }
    default: break;
    }
    int64_t sb = i / 256;
    int e = (int)(i % 256), sub = e / 32, c = e / 64, l = e % 32;
    switch (type) {
    case GGML_T_Q4_K: {
        const uint8_t *b = row + sb * 144;
        int sc, m;
        cu_scale_min_k4(sub, b + 4, &sc, &m);
        float d1 = cu_ld_f16(b) * (float)sc, m1 = cu_ld_f16(b + 2) * (float)m;
        uint8_t qb = b[16 + 32 * c + l];
        int q = (sub & 1) ? qb >> 4 : qb & 0xF;
        return d1 * (float)q - m1;
    }
    case GGML_T_Q5_K: {
        const uint8_t *b = row + sb * 176;
        int sc, m;
        cu_scale_min_k4(sub, b + 4, &sc, &m);
        float d1 = cu_ld_f16(b) * (float)sc, m1 = cu_ld_f16(b + 2) * (float)m;
        uint8_t qb = b[48 + 32 * c + l];
        int q = ((sub & 1) ? qb >> 4 : qb & 0xF) + (((b[16 + l] >> sub) & 1) ? 16 : 0);
        return d1 * (float)q - m1;
    }
    case GGML_T_Q6_K: {
        const uint8_t *b = row + sb * 210;
        int h = e / 128, r = e % 128, k = r / 32;
        uint8_t lob = b[64 * h + 32 * (k & 1) + l];
        int low = k < 2 ? (lob & 0xF) : (lob >> 4);
        int high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
        float d = cu_ld_f16(b + 208);
        return d * (float)(int8_t)b[192 + e / 16] * (float)((low | (high << 4)) - 32);
    }
    case GGML_T_Q2_K: { /* scales[16] | qs[64] | d | dmin */
        const uint8_t *b = row + sb * 84;
        int sc = b[e / 16], q = (b[16 + 32 * (e / 128) + l] >> (2 * ((e % 128) / 32))) & 3;
        float dl = cu_ld_f16(b + 80) * (float)(sc & 0xF), ml = cu_ld_f16(b + 82) * (float)(sc >> 4);
        return dl * (float)q - ml;
    }
    case GGML_T_Q3_K: { /* hmask[32] | qs[64] | scales[12] | d */
        const uint8_t *b = row + sb * 110;
        int q = ((b[32 + 32 * (e / 128) + l] >> (2 * ((e % 128) / 32))) & 3) - (((b[l] >> (e / 32)) & 1) ? 0 : 4);
        return (cu_ld_f16(b + 108) * (float)cu_scale_q3k(e / 16, b + 96)) * (float)q;
    }
    default: return NAN; /* unsupported types are refused before launch */
    }
}

/* The host wrappers of the op files (separate translation units under nvcc,
 * one under cuda/kernels_emu.c), reached through the tables in table.cu. */
CU_API int CU_SYM(cu_rmsnorm)(const float *x, const float *w, float *y, int64_t rows, int64_t d, float eps);
CU_API int CU_SYM(cu_rmsnorm_supported)(int64_t d);
CU_API int CU_SYM(cu_rope)(float *x, int64_t n_tok, int64_t n_heads, int64_t P, int64_t pos0, const int64_t *dpos,
                           float base);
CU_API int CU_SYM(cu_rope_supported)(int64_t P);
CU_API int CU_SYM(cu_matmul_f)(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias);
CU_API int CU_SYM(cu_matmul_f_supported)(uint32_t type, int64_t n_in);
CU_API int CU_SYM(cu_matmul_q)(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias,
                               void *scratch, int act_ready);
CU_API int CU_SYM(cu_matmul_q_supported)(uint32_t type, int64_t n_in);
CU_API int CU_SYM(cu_quant_act)(uint32_t type, const float *x, int64_t n_tok, int64_t n_in, void *scratch);
CU_API int CU_SYM(cu_swiglu)(float *g, const float *u, int64_t n);
CU_API int CU_SYM(cu_softplus_bias)(float *dt, const float *bias, int64_t n, int64_t H);
CU_API int CU_SYM(cu_residual)(float *h, const float *r, const float *br, int64_t n, int64_t d);
CU_API int CU_SYM(cu_kv_append)(float *kc, float *vc, float *beta, const float *k, const float *v, const float *dt,
                                const float *A, int64_t n, int64_t KV, int64_t P, int64_t M, int64_t cap,
                                int64_t pos0, const int64_t *dpos);
CU_API int CU_SYM(cu_embed)(const cu_wt *w, const int32_t *tokens, int64_t n, float *out);
CU_API int CU_SYM(cu_ssd_scan)(const cu_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                               const float *dt, const float *A, const float *D, float *state, float *y);
CU_API int CU_SYM(cu_ssd_supported)(const cu_ssd_dims *dm);
CU_API int CU_SYM(cu_attn)(const cu_attn_params *ap, const float *q, const float *kc, const float *vc,
                           const float *beta, int64_t pos0, const int64_t *dpos, int64_t n, float *out,
                           void *scratch);
CU_API uint64_t CU_SYM(cu_attn_scratch)(const cu_attn_params *ap, int64_t n);
CU_API int CU_SYM(cu_attn_supported)(const cu_attn_params *ap);
CU_API int CU_SYM(cu_route_router)(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w);
CU_API int CU_SYM(cu_route_pk)(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk,
                               int64_t k, int32_t *ids, float *w, void *scratch);
CU_API uint64_t CU_SYM(cu_route_pk_scratch)(int64_t n, int64_t Hr, int64_t Kk);
CU_API int CU_SYM(cu_route_supported)(int64_t Kk, int64_t k);
CU_API int CU_SYM(cu_experts)(const cu_wt *down, const cu_wt *up, const float *x, int64_t n, const int32_t *ids,
                              const float *w, int64_t k_total, float *out, void *scratch);
CU_API uint64_t CU_SYM(cu_experts_scratch)(const cu_wt *down, int64_t n, int64_t k_total);
CU_API int CU_SYM(cu_logsoftmax)(const float *x, float *y, int64_t rows, int64_t V);
CU_API int CU_SYM(cu_nll)(const float *x, const int32_t *target, float *nll, int64_t rows, int64_t V);
CU_API int CU_SYM(cu_kl)(const float *a, const float *b, float *kl, int64_t rows, int64_t V);
#endif
