/* quant/dot_k23_avx2.c — AVX2 dots of Q2_K and Q3_K weights with Q8_K
 * activations, chosen at run time like quant/dot_avx2.c (whose exactness
 * contract holds: the integer block sums are those of the _ref twins, only
 * the float accumulation across blocks differs).
 *
 * Both formats keep 2 bits of element 128h+32k+l in bits 2k..2k+1 of
 * qs[32h+l], so one 32-byte load per half gives four 32-element groups by
 * shift-and-mask; each group spans sub-blocks 8h+2k (first 16) and 8h+2k+1.
 * The unsigned levels go through maddubs; Q3_K's −4 offset and Q2_K's min
 * come out of the Q8_K bsums. AVX-512 is not used (AVX2 is the floor the
 * rest of the fast paths assume; an AVX-512 twin is left for later). */
#include "formats.h"
#include "quant.h"
#include "../core/half.h"
#include "../core/simd.h" // defines: HQ_AVX2, hq_hsum_epi32

#if HQ_X86
/* 16 int16 pair-sums of 32 elements times the scales of their two 16-element
 * halves (s0 first, s1 second), summed to int32 lanes */
HQ_AVX2 static inline __m256i k23_scale_pairs(__m256i p16, int s0, int s1) {
    return _mm256_madd_epi16(p16, _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0)));
}

HQ_AVX2 static void q2_K_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q2_K *w = vw;
    const q_block_q8_K *a = va;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        int32_t summ = 0;
        for (int j = 0; j < 16; j++) summ += (w[i].scales[j] >> 4) * a[i].bsums[j];
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const int sb = 8 * h + 2 * k;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(b, 2 * k), m3);
                const __m256i qa = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                sumi = _mm256_add_epi32(sumi, k23_scale_pairs(_mm256_maddubs_epi16(q, qa), w[i].scales[sb] & 0xF,
                                                              w[i].scales[sb + 1] & 0xF));
            }
        }
        sum += a[i].d * (hq_f16_to_f32(w[i].d) * (float)hq_hsum_epi32(sumi) - hq_f16_to_f32(w[i].dmin) * (float)summ);
    }
    *s = sum;
}

/* the signed 6-bit scale of sub-block j (layout in formats.h) */
static inline int q3_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* Σ_j s_j·Σ (q−4)·a = Σ_j s_j·Σ q·a − 4·Σ_j s_j·bsum_j, q = low | third bit << 2 */
HQ_AVX2 static void q3_K_vec_dot_avx2(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q3_K *w = vw;
    const q_block_q8_K *a = va;
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        int sc[16];
        int32_t corr = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = q3_scale(w[i].scales, j);
            corr += sc[j] * a[i].bsums[j];
        }
        const __m256i hm = _mm256_loadu_si256((const __m256i *)w[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const int sb = 8 * h + 2 * k;
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), m1);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 2 * k), m3),
                                                  _mm256_slli_epi16(hi, 2));
                const __m256i qa = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                sumi = _mm256_add_epi32(sumi, k23_scale_pairs(_mm256_maddubs_epi16(q, qa), sc[sb], sc[sb + 1]));
            }
        }
        const int32_t tot = hq_hsum_epi32(sumi) - 4 * corr;
        sum += a[i].d * hq_f16_to_f32(w[i].d) * (float)tot;
    }
    *s = sum;
}
#define K23_PICK(fast, ref) (q_simd_avx2() ? (fast) : (ref))
#else
#define K23_PICK(fast, ref) (ref)
#endif

void q_q2_K_vec_dot_fast(int64_t n, float *restrict s, const void *restrict w, const void *restrict a) {
    K23_PICK(q2_K_vec_dot_avx2, q_q2_K_vec_dot_ref)(n, s, w, a);
}

void q_q3_K_vec_dot_fast(int64_t n, float *restrict s, const void *restrict w, const void *restrict a) {
    K23_PICK(q3_K_vec_dot_avx2, q_q3_K_vec_dot_ref)(n, s, w, a);
}
