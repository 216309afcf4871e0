/* quant/dot_avx2.c — AVX2+FMA fast paths (quantize, dequantize, dot) chosen
 * at run time with __builtin_cpu_supports; every public q_*_fast function
 * falls back to its scalar _ref twin on other CPUs (and on non-x86 builds).
 *
 * Exactness contract (tests/test_quant.c checks it):
 *  - quantize and dequantize fast paths are bit-identical to _ref: they use
 *    the same IEEE operations in the same order (separate mul/add, never a
 *    fused multiply-add; roundf emulated exactly; nearest_int = round half
 *    to even = _mm256_round_ps nearest).
 *  - dots keep the exact integer block sums of _ref and only reorder the
 *    float accumulation across blocks (relative error ~1e-7).
 * F32/F16/BF16 rows use the shared core/vec.h helpers (conversions exact,
 * dots with the rounding documented there). The CPU level comes from
 * core/cpu.h (HQ_CPU); AVX-512/VNNI kernels for the block types are not
 * written yet, so at the avx512 level these AVX2 kernels run. */
#include "formats.h"
#include "quant.h"
#include "../core/half.h"
#include "../core/simd.h" // defines: HQ_AVX2, hq_hsum_ps, hq_hsum_epi32, hq_hmax_ps
#include "../core/vec.h"  // defines: hq_f16_to_f32_row, hq_dot_f32 (the float types' fast paths)

#include <stdlib.h>
#include <string.h>


#if HQ_X86
/* 32 int32 (4 vectors, in element order) -> 32 int8 in element order */
HQ_AVX2 static inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b); /* lanes: a0-3 b0-3 | a4-7 b4-7 */
    __m256i cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Σ over 32 int8 pairs as 8 int32 lanes: |w|·sign(a, w) keeps maddubs's
 * first operand unsigned; products ≤ 128·127·2 fit in int16 */
HQ_AVX2 static inline __m256i dot_i8(__m256i w, __m256i a) {
    const __m256i ax = _mm256_sign_epi8(w, w);
    const __m256i sy = _mm256_sign_epi8(a, w);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* u8 (≤ 63) × s8 summed to 8 int32 lanes */
HQ_AVX2 static inline __m256i dot_u8i8(__m256i u, __m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0-15) then high (16-31) */
HQ_AVX2 static inline __m256i unpack_nibbles(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set */
HQ_AVX2 static inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL,
                                            0x0303030303030303LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* roundf (half away from zero), exactly: t = trunc|v|, +1 when |v|−t ≥ ½ */
HQ_AVX2 static inline __m256i roundf_epi32(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, v);
    const __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_set1_ps(1.0f));
    const __m256 r = _mm256_or_ps(_mm256_add_ps(t, up), _mm256_and_ps(sign, v));
    return _mm256_cvtps_epi32(r);
}

/* ---------------- quantize ---------------- */
HQ_AVX2 static void q8_0_quantize_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q8_0 *y = vy;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                                 _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
        const float amax = hq_hmax_ps(m);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q = pack_i32_to_i8(roundf_epi32(_mm256_mul_ps(v0, vid)), roundf_epi32(_mm256_mul_ps(v1, vid)),
                                   roundf_epi32(_mm256_mul_ps(v2, vid)), roundf_epi32(_mm256_mul_ps(v3, vid)));
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

/* signed value with the largest |x|, first on ties (as the scalar loop) */
HQ_AVX2 static inline float signed_absmax_avx2(const float *x, int n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), absmask));
    const float amax = hq_hmax_ps(m);
    if (!(amax > 0)) return 0.0f;
    for (int j = 0; j < n; j++)
        if (__builtin_fabsf(x[j]) == amax) return x[j];
    return 0.0f;
}

HQ_AVX2 static void q4_0_quantize_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float d = signed_absmax_avx2(x, 32) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        const __m256 vid = _mm256_set1_ps(id), off = _mm256_set1_ps(8.5f);
        const __m256i fifteen = _mm256_set1_epi32(15);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid), off);
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(v), fifteen);
        }
        const __m256i b = pack_i32_to_i8(q[0], q[1], q[2], q[3]);
        const __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
        _mm_storeu_si128((__m128i *)y[i].qs, _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
    }
}

HQ_AVX2 static void q8_K_quantize_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++, x += Q_QK_K) {
        const float max = signed_absmax_avx2(x, Q_QK_K);
        if (!max) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int j = 0; j < Q_QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vis);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT |
                                                                                   _MM_FROUND_NO_EXC)),
                                        lim);
            }
            const __m256i b = pack_i32_to_i8(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), b);
            /* bsums of the two 16-element groups */
            const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), b); /* 16 int16 pair sums */
            const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 int32: 4 per group */
            const __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            y[i].bsums[j / 16] = (int16_t)hq_hsum_epi32(_mm256_set_m128i(_mm_setzero_si128(), lo));
            y[i].bsums[j / 16 + 1] = (int16_t)hq_hsum_epi32(_mm256_set_m128i(_mm_setzero_si128(), hi));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---------------- dequantize ---------------- */
HQ_AVX2 static void q8_0_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const __m256 d = _mm256_set1_ps(hq_f16_to_f32(x[i].d));
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * k)));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

HQ_AVX2 static void q4_0_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const __m256 d = _mm256_set1_ps(hq_f16_to_f32(x[i].d));
        const __m256i q = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), d));
    }
}

/* y[l] = d1·q − m1 for 32 nibble values given as 32 bytes */
HQ_AVX2 static inline void store_affine32(float *y, __m256i q8, float dl, float ml) {
    const __m256 d = _mm256_set1_ps(dl), m = _mm256_set1_ps(ml);
    const __m128i lo = _mm256_castsi256_si128(q8), hi = _mm256_extracti128_si256(q8, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k]));
        _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d, f), m));
    }
}

HQ_AVX2 static void q4_K_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q4_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        const float d = hq_f16_to_f32(x[i].d), dmin = hq_f16_to_f32(x[i].dmin);
        for (int c = 0; c < 4; c++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            uint8_t sc, m;
            q_get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
            store_affine32(y, _mm256_and_si256(b, m4), d * sc, dmin * m);
            y += 32;
            q_get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            store_affine32(y, _mm256_and_si256(_mm256_srli_epi16(b, 4), m4), d * sc, dmin * m);
            y += 32;
        }
    }
}

/* the four 32-element groups of one Q6_K half as unsigned 6-bit values (0..63) */
HQ_AVX2 static inline void q6_unpack_half_u(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(h, m2), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4);
    const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4);
    const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), h0);
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), h1);
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2);
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3);
}

/* the same as signed int8 q − 32 */
HQ_AVX2 static inline void q6_unpack_half(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
    q6_unpack_half_u(ql, qh, q);
    for (int k = 0; k < 4; k++) q[k] = _mm256_sub_epi8(q[k], _mm256_set1_epi8(32));
}

HQ_AVX2 static void q6_K_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_unpack_half(x[i].ql + 64 * h, x[i].qh + 32 * h, q);
            for (int k = 0; k < 4; k++, y += 32) {
                const int sb = 8 * h + 2 * k; /* sub-block of the first 16 of these 32 */
                const __m128i lo = _mm256_castsi256_si128(q[k]), hi = _mm256_extracti128_si256(q[k], 1);
                const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
                for (int p = 0; p < 4; p++) {
                    const __m256 ds = _mm256_set1_ps(d * x[i].scales[sb + p / 2]);
                    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
                    _mm256_storeu_ps(y + 8 * p, _mm256_mul_ps(ds, f));
                }
            }
        }
    }
}

/* F16 / BF16 rows: core/vec.h (AVX2 or AVX-512 by level, exact) */
static void f16_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) { hq_f16_to_f32_row(vx, y, n); }
static void bf16_dequantize_avx2(const void *restrict vx, float *restrict y, int64_t n) { hq_bf16_to_f32_row(vx, y, n); }

/* ---------------- dots: 32-element weights × Q8_0 ---------------- */
/* acc + d_w·d_a·Σ q·q_a over one block, q the weight's 32 signed values */
HQ_AVX2 static inline __m256 acc_block0(__m256 acc, __m256i q, uint16_t dw, const q_block_q8_0 *a) {
    const __m256i si = dot_i8(q, _mm256_loadu_si256((const __m256i *)a->qs));
    const __m256 d = _mm256_set1_ps(hq_f16_to_f32(dw) * hq_f16_to_f32(a->d));
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(si), acc);
}

/* type-1 (d·q + m): acc + d_w·d_a·Σ q·q_a + m_w·d_a·Σ q_a, q unsigned */
HQ_AVX2 static inline __m256 acc_block1(__m256 acc, __m256i q, uint16_t dw, uint16_t mw, const q_block_q8_0 *a) {
    const __m256i qa = _mm256_loadu_si256((const __m256i *)a->qs);
    const __m256i si = dot_u8i8(q, qa);
    const __m256i sa = dot_u8i8(_mm256_set1_epi8(1), qa);
    const float da = hq_f16_to_f32(a->d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(hq_f16_to_f32(dw) * da), _mm256_cvtepi32_ps(si), acc);
    return _mm256_fmadd_ps(_mm256_set1_ps(hq_f16_to_f32(mw) * da), _mm256_cvtepi32_ps(sa), acc);
}

HQ_AVX2 static void q8_0_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q8_0 *w = vw, *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++)
        acc = acc_block0(acc, _mm256_loadu_si256((const __m256i *)w[i].qs), w[i].d, &a[i]);
    *s = hq_hsum_ps(acc);
}

HQ_AVX2 static void q4_0_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_0 *w = vw;
    const q_block_q8_0 *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++)
        acc = acc_block0(acc, _mm256_sub_epi8(unpack_nibbles(w[i].qs), _mm256_set1_epi8(8)), w[i].d, &a[i]);
    *s = hq_hsum_ps(acc);
}

HQ_AVX2 static void iq4_nl_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw,
                                        const void *restrict va) {
    const q_block_iq4_nl *w = vw;
    const q_block_q8_0 *a = va;
    const __m128i lut = _mm_loadu_si128((const __m128i *)q_iq4nl_values);
    const __m256i lut2 = _mm256_set_m128i(lut, lut);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++)
        acc = acc_block0(acc, _mm256_shuffle_epi8(lut2, unpack_nibbles(w[i].qs)), w[i].d, &a[i]);
    *s = hq_hsum_ps(acc);
}

HQ_AVX2 static void q4_1_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_1 *w = vw;
    const q_block_q8_0 *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) acc = acc_block1(acc, unpack_nibbles(w[i].qs), w[i].d, w[i].m, &a[i]);
    *s = hq_hsum_ps(acc);
}

HQ_AVX2 static inline __m256i q5_values(const uint8_t *qs, const uint8_t *qh4) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    const __m256i hb = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles(qs), hb);
}

HQ_AVX2 static void q5_0_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_0 *w = vw;
    const q_block_q8_0 *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++)
        acc = acc_block0(acc, _mm256_sub_epi8(q5_values(w[i].qs, w[i].qh), _mm256_set1_epi8(16)), w[i].d, &a[i]);
    *s = hq_hsum_ps(acc);
}

HQ_AVX2 static void q5_1_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_1 *w = vw;
    const q_block_q8_0 *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++)
        acc = acc_block1(acc, q5_values(w[i].qs, w[i].qh), w[i].d, w[i].m, &a[i]);
    *s = hq_hsum_ps(acc);
}

/* ---------------- dots: K-quants × Q8_K ---------------- */
/* maddubs pairs (16 int16 over 32 elements) times per-16 scales s0 (first
 * 16 elements) and s1 (last 16), summed to int32 lanes */
HQ_AVX2 static inline __m256i scale_pairs(__m256i p16, int s0, int s1) {
    return _mm256_madd_epi16(p16, _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0)));
}

/* one Q4_K / Q5_K super-block · Q8_K:
 * d_a·(d·Σ_j sc_j·Σ q·q_a − dmin·Σ_j m_j·Σ q_a); qh (the fifth bits) is NULL for Q4_K
 * (always inlined, so each format gets its own loop without the qh test) */
HQ_AVX2 __attribute__((always_inline)) static inline float k45_block_dot(uint16_t d, uint16_t dmin,
                                                                          const uint8_t *scales, const uint8_t *qs,
                                                                          const uint8_t *qh, const q_block_q8_K *a) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1b = _mm256_set1_epi8(1);
    const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    int32_t summ = 0;
    for (int c = 0; c < 4; c++) {
        const __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i q0 = _mm256_and_si256(b, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if (qh) {
            q0 = _mm256_or_si256(q0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), m1b), 4));
            q1 = _mm256_or_si256(q1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), m1b), 4));
        }
        uint8_t sc0, m0, sc1, m1;
        q_get_scale_min_k4(2 * c, scales, &sc0, &m0);
        q_get_scale_min_k4(2 * c + 1, scales, &sc1, &m1);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c));
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c + 32));
        sumi = _mm256_add_epi32(sumi, scale_pairs(_mm256_maddubs_epi16(q0, a0), sc0, sc0));
        sumi = _mm256_add_epi32(sumi, scale_pairs(_mm256_maddubs_epi16(q1, a1), sc1, sc1));
        summ += m0 * (a->bsums[4 * c] + a->bsums[4 * c + 1]) + m1 * (a->bsums[4 * c + 2] + a->bsums[4 * c + 3]);
    }
    return a->d * (hq_f16_to_f32(d) * (float)hq_hsum_epi32(sumi) - hq_f16_to_f32(dmin) * (float)summ);
}

HQ_AVX2 static void q4_K_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) sum += k45_block_dot(w[i].d, w[i].dmin, w[i].scales, w[i].qs, NULL, &a[i]);
    *s = sum;
}

HQ_AVX2 static void q5_K_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++)
        sum += k45_block_dot(w[i].d, w[i].dmin, w[i].scales, w[i].qs, w[i].qh, &a[i]);
    *s = sum;
}

/* Σ sc_j·Σ (q−32)·a = Σ sc_j·(Σ q·a − 32·bsum_j): the unsigned q (0..63)
 * goes through maddubs, the offset through the Q8_K bsums */
HQ_AVX2 static void q6_K_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q6_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        __m256i sumi = _mm256_setzero_si256();
        int32_t corr = 0;
        for (int j = 0; j < 16; j++) corr += w[i].scales[j] * a[i].bsums[j];
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_unpack_half_u(w[i].ql + 64 * h, w[i].qh + 32 * h, q);
            for (int k = 0; k < 4; k++) {
                const int sb = 8 * h + 2 * k;
                const __m256i qa = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                const __m256i p = _mm256_maddubs_epi16(q[k], qa);
                sumi = _mm256_add_epi32(sumi, scale_pairs(p, w[i].scales[sb], w[i].scales[sb + 1]));
            }
        }
        const int32_t tot = hq_hsum_epi32(sumi) - 32 * corr;
        sum += a[i].d * hq_f16_to_f32(w[i].d) * (float)tot;
    }
    *s = sum;
}

/* ---------------- float dots (F32 activations): core/vec.h ---------------- */
static void f32_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    *s = hq_dot_f32(vw, va, n);
}
static void f16_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    *s = hq_dot_f16_f32(vw, va, n);
}
static void bf16_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    *s = hq_dot_bf16_f32(vw, va, n);
}

/* ---------------- K-quant scale search across candidate lanes ----------------
 * Same arithmetic as q_make_qkx2_quants (quant/qsearch.c) with the candidate
 * scales in SIMD lanes; each lane adds its terms in the scalar order with the
 * same separate multiplies and adds, so every candidate's (scale, min, error)
 * is bit-identical. The scalar loop is sequential in one way: once a
 * candidate wins, later candidates use the new min (in the iscale and in
 * x − min). So candidates
 * are evaluated speculatively with the current min, scanned in order, and
 * the ones after a win are evaluated again with the new min. */
/* min(max(nearest_int(v), lo), hi) per lane, as the scalar clamp of q_nearest_int */
HQ_AVX2 static inline __m256 round_clamp(__m256 v, __m256 lo, __m256 hi) {
    return _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
}

HQ_AVX2 static void qkx2_eval(int n, int nmax, const float *x, const float *w, const float *xm, const float *isc,
                              int start, int ncand, float sum_w, float sum_x, float *cs, float *cm, float *ce,
                              float *cd) {
    const __m256 vzero = _mm256_setzero_ps(), vnmax = _mm256_set1_ps((float)nmax);
    const __m256 vsw = _mm256_set1_ps(sum_w), vsx = _mm256_set1_ps(sum_x);
    for (int c = start; c < ncand; c += 8) {
        const __m256 vis = _mm256_loadu_ps(isc + c);
        __m256 sl = vzero, sl2 = vzero, sxl = vzero;
        for (int i = 0; i < n; ++i) {
            const __m256 l = round_clamp(_mm256_mul_ps(vis, _mm256_set1_ps(xm[i])), vzero, vnmax);
            const __m256 wl = _mm256_mul_ps(_mm256_set1_ps(w[i]), l);
            sl = _mm256_add_ps(sl, wl);
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(wl, l));
            sxl = _mm256_add_ps(sxl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(vsw, sl2), _mm256_mul_ps(sl, sl));
        __m256 tsc = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(vsw, sxl), _mm256_mul_ps(vsx, sl)), D);
        __m256 tmn = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sl2, vsx), _mm256_mul_ps(sl, sxl)), D);
        const __m256 pos = _mm256_cmp_ps(tmn, vzero, _CMP_GT_OQ);
        tmn = _mm256_blendv_ps(tmn, vzero, pos);
        tsc = _mm256_blendv_ps(tsc, _mm256_div_ps(sxl, sl2), pos);
        __m256 err = vzero;
        for (int i = 0; i < n; ++i) {
            const __m256 l = round_clamp(_mm256_mul_ps(vis, _mm256_set1_ps(xm[i])), vzero, vnmax);
            const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(tsc, l), tmn), _mm256_set1_ps(x[i]));
            err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(w[i]), _mm256_mul_ps(diff, diff)));
        }
        _mm256_storeu_ps(cs + c, tsc);
        _mm256_storeu_ps(cm + c, tmn);
        _mm256_storeu_ps(ce + c, err);
        _mm256_storeu_ps(cd + c, D);
    }
}

HQ_AVX2 static float qkx2_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                               float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    float xm[32];
    for (int i = 0; i < n; ++i) {
        xm[i] = x[i] - min;
        int l = q_nearest_int(iscale * xm[i]);
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    const int ncand = nstep + 1;
    float isc[48], cs[48], cm[48], ce[48], cd[48], best_is = 0;
    int best = -1, start = 0;
    float best_xm[32];
    while (start < ncand) {
        /* one vector of 8 candidates at a time: a win makes the rest stale */
        for (int is = start; is < start + 8; ++is) isc[is] = (rmin + rdelta * is + nmax) / (max - min);
        qkx2_eval(n, nmax, x, w, xm, isc, start, start + 1, sum_w, sum_x, cs, cm, ce, cd);
        const int end = start + 8 < ncand ? start + 8 : ncand;
        int win = -1;
        for (int is = start; is < end; ++is) {
            if (cd[is] > 0 && ce[is] < best_error) { win = is; break; }
        }
        if (win < 0) {
            start = end;
            continue;
        }
        best_error = ce[win];
        scale = cs[win];
        min = cm[win];
        best = win;
        best_is = isc[win];
        memcpy(best_xm, xm, sizeof(float) * (size_t)n); /* the levels were rounded against the old min */
        for (int i = 0; i < n; ++i) xm[i] = x[i] - min;
        start = win + 1;
    }
    if (best >= 0) {
        for (int i = 0; i < n; ++i) {
            int l = q_nearest_int(best_is * best_xm[i]);
            L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        }
    }
    *the_min = -min;
    return scale;
}

/* make_qx_quants (rmse_type 1, weights qw or x²) with the 18 trial scales in
 * lanes: unlike qkx2 the trials do not depend on earlier winners, so all are
 * summed at once (each lane in the scalar order) and chosen in order. */
HQ_AVX2 static float qx_avx2(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = __builtin_fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float w[32];
    for (int i = 0; i < n; ++i) w[i] = qw ? qw[i] : x[i] * x[i];
    /* lane 0: the start scale, lanes 1..18: is = −9..9 without 0 */
    float isc[24], slx[24], sl2[24];
    isc[0] = -nmax / max;
    for (int k = 1, is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        isc[k++] = -(nmax + 0.1f * is) / max;
    }
    for (int k = 19; k < 24; ++k) isc[k] = isc[0];
    const __m256 lo = _mm256_set1_ps((float)-nmax), hi = _mm256_set1_ps((float)(nmax - 1));
    for (int v = 0; v < 3; ++v) {
        const __m256 vis = _mm256_loadu_ps(isc + 8 * v);
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (int i = 0; i < n; ++i) {
            const __m256 l = round_clamp(_mm256_mul_ps(vis, _mm256_set1_ps(x[i])), lo, hi);
            const __m256 vw = _mm256_set1_ps(w[i]);
            a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(w[i] * x[i]), l));
            b = _mm256_add_ps(b, _mm256_mul_ps(_mm256_mul_ps(vw, l), l));
        }
        _mm256_storeu_ps(slx + 8 * v, a);
        _mm256_storeu_ps(sl2 + 8 * v, b);
    }
    int win = 0;
    float scale = sl2[0] ? slx[0] / sl2[0] : 0.0f;
    float best = scale * slx[0];
    for (int k = 1; k < 19; ++k) {
        if (sl2[k] > 0 && slx[k] * slx[k] > best * sl2[k]) {
            scale = slx[k] / sl2[k];
            best = scale * slx[k];
            win = k;
        }
    }
    for (int i = 0; i < n; ++i) {
        int l = q_nearest_int(isc[win] * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
    }
    return scale;
}

static void f16_quantize_avx2(const float *restrict x, void *restrict vy, int64_t n) { hq_f32_to_f16_row(x, vy, n); }

#define Q_PICK(fast, ref) (hq_cpu_has(HQ_CPU_AVX2) ? (fast) : (ref))
#else
#define Q_PICK(fast, ref) (ref)
#endif

float q_make_qkx2_quants_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2) && n <= 32 && nstep < 40 && !use_mad)
        return qkx2_avx2(n, nmax, x, w, L, the_min, rmin, rdelta, nstep);
#endif
    return q_make_qkx2_quants(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float q_make_qx_quants_avx2(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw) {
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2) && rmse_type == 1 && n <= 32) return qx_avx2(n, nmax, x, L, qw);
#endif
    return q_make_qx_quants(n, nmax, x, L, rmse_type, qw);
}

/* qkx3 with explicit weights differs from qkx2 only where x holds NaN
 * (its `v > 0 ? … : 0` and `max <= min`), which the lanes reproduce:
 * max_ps(NaN, 0) = 0 and min_ps(+inf, nmax) = nmax */
float q_make_qkx3_quants_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
#if HQ_X86
    if (w && hq_cpu_has(HQ_CPU_AVX2) && n <= 32 && nstep < 40 && !use_mad)
        return qkx2_avx2(n, nmax, x, w, L, the_min, rmin, rdelta, nstep);
#endif
    return q_make_qkx3_quants(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

/* ---------------- public dispatchers ---------------- */
#define Q_FAST_Q(T)                                                                      \
    void q_##T##_quantize_fast(const float *restrict x, void *restrict y, int64_t n) {  \
        Q_PICK(T##_quantize_avx2, q_##T##_quantize_ref)(x, y, n);                       \
    }
#define Q_FAST_DQ(T)                                                                       \
    void q_##T##_dequantize_fast(const void *restrict x, float *restrict y, int64_t n) {  \
        Q_PICK(T##_dequantize_avx2, q_##T##_dequantize_ref)(x, y, n);                     \
    }
#define Q_FAST_DOT(T)                                                                                     \
    void q_##T##_vec_dot_fast(int64_t n, float *restrict s, const void *restrict w, const void *restrict a) { \
        Q_PICK(T##_vec_dot_avx2, q_##T##_vec_dot_ref)(n, s, w, a);                                           \
    }

Q_FAST_Q(q8_0) Q_FAST_Q(q4_0) Q_FAST_Q(q8_K) Q_FAST_Q(f16)
Q_FAST_DQ(q8_0) Q_FAST_DQ(q4_0) Q_FAST_DQ(q4_K) Q_FAST_DQ(q6_K) Q_FAST_DQ(f16) Q_FAST_DQ(bf16)
Q_FAST_DOT(q8_0) Q_FAST_DOT(q4_0) Q_FAST_DOT(q4_1) Q_FAST_DOT(q5_0) Q_FAST_DOT(q5_1) Q_FAST_DOT(iq4_nl)
Q_FAST_DOT(q4_K) Q_FAST_DOT(q5_K) Q_FAST_DOT(q6_K) Q_FAST_DOT(f32) Q_FAST_DOT(f16) Q_FAST_DOT(bf16)
