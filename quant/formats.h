/* quant/formats.h — ggml block layouts (byte-compatible with
 * ggml-org/llama.cpp ggml/src/ggml-common.h) and the per-format entry points
 * that quant/traits.c puts into the q_traits table.
 *
 * All scales are IEEE fp16 stored as uint16_t (little-endian hosts only),
 * except Q8_K's d which is f32. "type-0": w = d·q, "type-1": w = d·q + m
 * (or d·sc·q − dmin·m for the K-quants).
 *
 * Nibble / bit order (the part the structs alone do not tell):
 *  - Q4_0, Q4_1, IQ4_NL, Q5_0, Q5_1 (32 elems): qs[j] low nibble = element j,
 *    high nibble = element j+16 (j = 0..15). Q5_*: bit j of the little-endian
 *    u32 qh is the 5th bit of element j (j = 0..31).
 *  - Q4_K (256 elems, 8 sub-blocks of 32): for chunk c = 0..3, qs[32c+l] low
 *    nibble = element 64c+l (sub-block 2c), high nibble = element 64c+32+l
 *    (sub-block 2c+1). Q5_K: same qs, plus qh[l] bit 2c = 5th bit of element
 *    64c+l and bit 2c+1 = 5th bit of element 64c+32+l.
 *  - Q4_K/Q5_K scales[12]: 8 six-bit scales sc_j and mins m_j. j < 4:
 *    sc_j = scales[j] & 63, m_j = scales[j+4] & 63. j >= 4:
 *    sc_j = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
 *    m_j  = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4.
 *  - Q6_K (256 elems, 16 sub-blocks of 16, int8 scales): for half h = 0..1 and
 *    l = 0..31: ql[64h+l] low/high nibble = elements 128h+l / 128h+64+l,
 *    ql[64h+32+l] low/high = 128h+32+l / 128h+96+l; qh[32h+l] bit pairs
 *    0-1, 2-3, 4-5, 6-7 = the top 2 bits of 128h+l, +32, +64, +96.
 *    q is 6-bit unsigned, value d·scales[e/16]·(q − 32).
 *  - Q2_K / Q3_K (256 elems, 16 sub-blocks of 16): for half h = 0..1, k = 0..3
 *    and l = 0..31, bits 2k..2k+1 of qs[32h+l] = the low 2 bits of element
 *    128h+32k+l. Q2_K: scales[j] low nibble = 4-bit scale, high nibble =
 *    4-bit min of sub-block j; w = d·sc·q − dmin·m. Q3_K: bit e/32 of
 *    hmask[e%32] = the third bit of element e, q ∈ [0,7], w = d·(s_j−32)·(q−4)
 *    with the 6-bit s_j: low 4 bits = scales[j] & 15 (j < 8) or
 *    scales[j−8] >> 4 (j ≥ 8), high 2 bits = (scales[8 + j%4] >> 2·(j/4)) & 3.
 *  - Q8_K: qs int8[256], bsums[k] = Σ qs[16k..16k+15].
 */
#ifndef HQ_QUANT_FORMATS_H
#define HQ_QUANT_FORMATS_H
#include <stdbool.h>
#include <stdint.h>

#define Q_QK32 32
#define Q_QK_K 256

typedef struct { uint16_t d; int8_t qs[32]; } q_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[16]; } q_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } q_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } q_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } q_block_q5_1;
typedef struct { uint16_t d; uint8_t qs[16]; } q_block_iq4_nl;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } q_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } q_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } q_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } q_block_q8_K;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } q_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } q_block_q3_K;

_Static_assert(sizeof(q_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(q_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(q_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(q_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(q_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(q_block_iq4_nl) == 18, "iq4_nl block size");
_Static_assert(sizeof(q_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(q_block_q5_K) == 176, "q5_K block size");
_Static_assert(sizeof(q_block_q6_K) == 210, "q6_K block size");
_Static_assert(sizeof(q_block_q8_K) == 292, "q8_K block size");
_Static_assert(sizeof(q_block_q2_K) == 84, "q2_K block size");
_Static_assert(sizeof(q_block_q3_K) == 110, "q3_K block size");

/* IQ4_NL non-linear levels (ggml kvalues_iq4nl). */
extern const int8_t q_iq4nl_values[16];

/* ggml's nearest_int: round half to even via the 1.5·2^23 trick, |v| < 2^22. */
static inline int q_nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i;
    __builtin_memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Shared scale searches (quant/qsearch.c), same algorithms as ggml-quants.c. */
float q_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);
float q_make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
typedef float (*q_qkx2_fn)(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
/* AVX2 twin of q_make_qkx2_quants (dot_avx2.c): the candidate scales run in
 * SIMD lanes, each lane summing in the scalar order, so results are
 * bit-identical; scalar fallback on other CPUs / for n != 32 or use_mad */
float q_make_qkx2_quants_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
float q_make_qx_quants_avx2(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);
float q_make_qkx3_quants_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
float q_make_qkx3_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
float q_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw);
void q_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m);

/* ---- per-format entry points: x/y/n as in quant.h ---- */
#define Q_DECL_FMT(T)                                                                         \
    void q_##T##_quantize_ref(const float *restrict x, void *restrict y, int64_t n);          \
    void q_##T##_dequantize_ref(const void *restrict x, float *restrict y, int64_t n);
#define Q_DECL_IMAT(T)                                                                        \
    void q_##T##_quantize_imatrix(const float *restrict x, void *restrict y, int64_t n,       \
                                  const float *restrict imatrix);
#define Q_DECL_DOT(T)                                                                         \
    void q_##T##_vec_dot_ref(int64_t n, float *restrict s, const void *restrict w, const void *restrict a);

Q_DECL_FMT(q8_0) Q_DECL_DOT(q8_0)
Q_DECL_FMT(q4_0) Q_DECL_IMAT(q4_0) Q_DECL_DOT(q4_0)
Q_DECL_FMT(q4_1) Q_DECL_IMAT(q4_1) Q_DECL_DOT(q4_1)
Q_DECL_FMT(q5_0) Q_DECL_IMAT(q5_0) Q_DECL_DOT(q5_0)
Q_DECL_FMT(q5_1) Q_DECL_IMAT(q5_1) Q_DECL_DOT(q5_1)
Q_DECL_FMT(iq4_nl) Q_DECL_IMAT(iq4_nl) Q_DECL_DOT(iq4_nl)
Q_DECL_FMT(q4_K) Q_DECL_IMAT(q4_K) Q_DECL_DOT(q4_K)
Q_DECL_FMT(q5_K) Q_DECL_IMAT(q5_K) Q_DECL_DOT(q5_K)
Q_DECL_FMT(q6_K) Q_DECL_IMAT(q6_K) Q_DECL_DOT(q6_K)
Q_DECL_FMT(q8_K)
Q_DECL_FMT(q2_K) Q_DECL_IMAT(q2_K) Q_DECL_DOT(q2_K)
Q_DECL_FMT(q3_K) Q_DECL_IMAT(q3_K) Q_DECL_DOT(q3_K)
Q_DECL_FMT(f32) Q_DECL_DOT(f32)
Q_DECL_FMT(f16) Q_DECL_DOT(f16)
Q_DECL_FMT(bf16) Q_DECL_DOT(bf16)

/* ---- fast paths (quant/dot_avx2.c): each checks the CPU itself and falls
 * back to the _ref twin, so they are safe to call anywhere ---- */
#define Q_DECL_FAST_Q(T) void q_##T##_quantize_fast(const float *restrict x, void *restrict y, int64_t n);
#define Q_DECL_FAST_DQ(T) void q_##T##_dequantize_fast(const void *restrict x, float *restrict y, int64_t n);
#define Q_DECL_FAST_DOT(T) \
    void q_##T##_vec_dot_fast(int64_t n, float *restrict s, const void *restrict w, const void *restrict a);
Q_DECL_FAST_Q(q8_0) Q_DECL_FAST_Q(q4_0) Q_DECL_FAST_Q(q8_K) Q_DECL_FAST_Q(q4_K) Q_DECL_FAST_Q(q5_K)
Q_DECL_FAST_Q(f16) Q_DECL_FAST_Q(q6_K)
Q_DECL_FAST_DQ(q8_0) Q_DECL_FAST_DQ(q4_0) Q_DECL_FAST_DQ(q4_K) Q_DECL_FAST_DQ(q6_K)
Q_DECL_FAST_DQ(f16) Q_DECL_FAST_DQ(bf16)
Q_DECL_FAST_DOT(q8_0) Q_DECL_FAST_DOT(q4_0) Q_DECL_FAST_DOT(q4_1) Q_DECL_FAST_DOT(q5_0)
Q_DECL_FAST_DOT(q5_1) Q_DECL_FAST_DOT(iq4_nl) Q_DECL_FAST_DOT(q4_K) Q_DECL_FAST_DOT(q5_K)
Q_DECL_FAST_DOT(q6_K) Q_DECL_FAST_DOT(f32) Q_DECL_FAST_DOT(f16) Q_DECL_FAST_DOT(bf16)
/* Q2_K / Q3_K × Q8_K (quant/dot_k23_avx2.c) */
Q_DECL_FAST_DOT(q2_K) Q_DECL_FAST_DOT(q3_K)

#endif
