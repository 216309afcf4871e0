/* cuda/matmul_q.cu — y = x·Wᵀ (+ b) for the ggml block types Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, IQ4_NL (activations → Q8_0) and Q4_K, Q5_K, Q6_K, Q2_K,
 * Q3_K (activations → Q8_K), as quant/ vec_dot_ref defines them:
 *   32-blocks: s = Σ_b d_w·d_a·Σ q_w·q_a (+ m_w·d_a·Σ q_a for Q4_1/Q5_1)
 *   K-quants:  s = Σ_sb d_a·(d·Σ_j sc_j·Σ q·q_a − dmin·Σ_j m_j·Σ q_a) (Q4_K Q5_K Q2_K);
 *              Q6_K d_a·d·Σ_j sc_j·Σ (q−32)·q_a, Q3_K the same with (q−4)
 * Step 1 quantizes the activation rows on the device, bit-identical to
 * q_q8_0_quantize_ref / q_q8_K_quantize_ref (same divisions, roundf /
 * round-half-even, fp16 scale for Q8_0); they are stored as int8 qs plus a
 * scale and Σq per 32-element sub-block (cu_q8_act_bytes).
 * Step 2: one warp per weight row and MMQ_TT tokens; each lane takes
 * 32-element sub-blocks ("items"), unpacks the weight into 8 packed int8x4
 * words once and multiplies them with each token by __dp4a. Integer sums
 * are exact; the fp32 sum over items runs in a different order than the CPU
 * (K-quants: per 32-sub-block instead of per super-block), so results agree
 * to rounding. Limits: n_in a multiple of the block (32 or 256). */
#include "cu_q8dot.h"

#define MMQ_TT 4
#define MMQ_WARPS 4

static int mmq_is_k(uint32_t t) { return cu_act_type(t) == GGML_T_Q8_K; }

CU_API int CU_SYM(cu_matmul_q_supported)(uint32_t type, int64_t n_in) {
    switch (type) {
    case GGML_T_Q8_0: case GGML_T_Q4_0: case GGML_T_Q4_1: case GGML_T_Q5_0: case GGML_T_Q5_1: case GGML_T_IQ4_NL:
        return n_in >= 32 && n_in % 32 == 0;
    case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K: case GGML_T_Q2_K: case GGML_T_Q3_K:
        return n_in >= 256 && n_in % 256 == 0;
    default: return 0;
    }
}

/* ---------------- activation quantization ---------------- */
typedef struct {
    const float *x;
    int8_t *qs;
    float *d;
    int *sums;
    int64_t n_blocks; /* 32-blocks (Q8_0) or 256-blocks (Q8_K) over all tokens */
} k_q8_args;

/* Q8_0: one warp per 32 values. d = max|x|/127, q = roundf(x / d) */
HQ_KERNEL(k_q8_0, k_q8_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t b = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= a.n_blocks) return; /* warp-uniform */
    float v = a.x[b * 32 + lane];
    float amax = cu_warp_max(fabsf(v));
    float d = amax / 127;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q = (int)roundf(v * id);
    a.qs[b * 32 + lane] = (int8_t)q;
    int s = cu_warp_sum_i(q);
    if (lane == 0) {
        a.d[b] = hq_dev_f16_to_f32(cu_f32_to_f16(d));
        a.sums[b] = s;
    }
}

/* Q8_K: one warp per 256 values (lane holds elements lane + 32i).
 * max = the signed value of the first largest |x|; iscale = −127/max;
 * q = min(127, round_half_even(iscale·x)); d = 1/iscale. */
HQ_KERNEL(k_q8_K, k_q8_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t b = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= a.n_blocks) return; /* warp-uniform */
    const float *xb = a.x + b * 256;
    float best = 0.0f;
    int bj = 256;
    HQ_UNROLL
    for (int i = 0; i < 8; i++) {
        float av = fabsf(xb[lane + 32 * i]);
        if (av > best) best = av, bj = lane + 32 * i;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ob = __shfl_xor_sync(CU_FULL, best, o);
        int oj = __shfl_xor_sync(CU_FULL, bj, o);
        if (ob > best || (ob == best && oj < bj)) best = ob, bj = oj;
    }
    float iscale = best != 0.0f ? -127.f / xb[bj] : 0.0f;
    HQ_UNROLL
    for (int i = 0; i < 8; i++) {
        int q = 0;
        if (best != 0.0f) {
            q = __float2int_rn(iscale * xb[lane + 32 * i]);
            q = q < 127 ? q : 127;
        }
        a.qs[b * 256 + lane + 32 * i] = (int8_t)q;
        int s = cu_warp_sum_i(q);
        if (lane == 0) {
            a.d[b * 8 + i] = best != 0.0f ? 1 / iscale : 0.0f;
            a.sums[b * 8 + i] = s;
        }
    }
}

/* ---------------- dot ---------------- */
typedef struct {
    const uint8_t *w;
    uint32_t type;
    int64_t n_in, n_out;
    uint64_t rb;
    const int8_t *qs;
    const float *d;
    const int *sums;
    float *y;
    int64_t n_tok;
    const float *bias;
} k_mmq_args;

HQ_KERNEL(k_mmq, k_mmq_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t o = (int64_t)blockIdx.x * MMQ_WARPS + (threadIdx.x >> 5), t0 = (int64_t)blockIdx.y * MMQ_TT;
    if (o >= a.n_out) return; /* warp-uniform */
    const uint8_t *row = a.w + (uint64_t)o * a.rb;
    int64_t nt = a.n_tok - t0 < MMQ_TT ? a.n_tok - t0 : MMQ_TT, n_items = a.n_in / 32;
    float acc[MMQ_TT];
    HQ_UNROLL
    for (int tt = 0; tt < MMQ_TT; tt++) acc[tt] = 0.0f;
    for (int64_t it = lane; it < n_items; it += 32) {
        cu_witem wi;
        cu_q8_unpack(a.type, row, it, &wi);
        HQ_UNROLL
        for (int tt = 0; tt < MMQ_TT; tt++) {
            if (tt >= nt) continue;
            int64_t ai = (t0 + tt) * n_items + it;
            acc[tt] += cu_q8_contrib(&wi, a.qs + ai * 32, a.d[ai], a.sums[ai]);
        }
    }
    HQ_UNROLL
    for (int tt = 0; tt < MMQ_TT; tt++) {
        float s = cu_warp_sum(acc[tt]);
        if (lane == 0 && tt < nt) a.y[(t0 + tt) * a.n_out + o] = s + (a.bias ? a.bias[o] : 0.0f);
    }
}

/* pointers into the activation scratch (layout of cu_q8_act_bytes) */
static void mmq_act_ptrs(void *scratch, int64_t n_tok, int64_t n_in, int8_t **qs, float **d, int **sums) {
    uint64_t qb = ((uint64_t)n_tok * (uint64_t)n_in + 15u) & ~(uint64_t)15u;
    *qs = (int8_t *)scratch;
    *d = (float *)(void *)((uint8_t *)scratch + qb);
    *sums = (int *)(void *)((uint8_t *)scratch + qb + 4u * (uint64_t)n_tok * (uint64_t)(n_in / 32));
}

/* quantizes n_tok rows of n_in floats into scratch for weight type `type` */
CU_API int CU_SYM(cu_quant_act)(uint32_t type, const float *x, int64_t n_tok, int64_t n_in, void *scratch) {
    int8_t *qs;
    float *d;
    int *sums;
    mmq_act_ptrs(scratch, n_tok, n_in, &qs, &d, &sums);
    int k = mmq_is_k(type);
    k_q8_args qa = {x, qs, d, sums, n_tok * n_in / (k ? 256 : 32)};
    if (k) return CU_GO(k_q8_K, k_q8_args, hq_dim3(cu_blocks(qa.n_blocks, 4), 1, 1), hq_dim3(128, 1, 1), qa);
    return CU_GO(k_q8_0, k_q8_args, hq_dim3(cu_blocks(qa.n_blocks, 4), 1, 1), hq_dim3(128, 1, 1), qa);
}

CU_API int CU_SYM(cu_matmul_q)(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias,
                               void *scratch, int act_ready) {
    if (n_tok <= 0) return 0;
    if (!CU_SYM(cu_matmul_q_supported)(w->type, w->n_in) || w->n_out < 1 || !scratch ||
        n_tok > (int64_t)65535 * MMQ_TT)
        return -1;
    if (!act_ready && CU_SYM(cu_quant_act)(w->type, x, n_tok, w->n_in, scratch) != 0) return -1;
    int8_t *qs;
    float *d;
    int *sums;
    mmq_act_ptrs(scratch, n_tok, w->n_in, &qs, &d, &sums);
    k_mmq_args a = {(const uint8_t *)w->data, w->type, w->n_in, w->n_out, w->row_bytes, qs, d, sums, y, n_tok, bias};
    return CU_GO(k_mmq, k_mmq_args,
                 hq_dim3(cu_blocks(w->n_out, MMQ_WARPS), (unsigned)((n_tok + MMQ_TT - 1) / MMQ_TT), 1),
                 hq_dim3(32 * MMQ_WARPS, 1, 1), a);
}
