/* core/simd.h — x86 AVX2 / AVX-512 helpers shared by the fast paths in core/,
 * quant/ and runtime/. Everything here carries HQ_AVX2 or HQ_AVX512 (target
 * attributes, so the rest of the build stays baseline x86-64): call it only
 * from a function of the same attribute reached after the run-time check
 * hq_cpu_has(HQ_CPU_AVX2 / HQ_CPU_AVX512) (core/cpu.h).
 * HQ_X86 is 0 on other architectures, where none of this exists. */
#ifndef HQ_SIMD_H
#define HQ_SIMD_H
#if defined(__x86_64__) || defined(__i386__)
#define HQ_X86 1
#include <immintrin.h>
#include <stdint.h>

#define HQ_AVX2 __attribute__((target("avx2,fma,f16c")))
#define HQ_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

/* 8 F16 / BF16 values widened to floats (exact; F16C quiets a NaN) */
HQ_AVX2 static inline __m256 hq_f16x8(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
HQ_AVX2 static inline __m256 hq_bf16x8(const void *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* Σ of the 8 lanes: high half onto low, then pairs, then the last two
 * (one fixed order, so every caller rounds the same way) */
HQ_AVX2 static inline float hq_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HQ_AVX2 static inline int32_t hq_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

HQ_AVX2 static inline float hq_hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#else
#define HQ_X86 0
#endif
#endif
