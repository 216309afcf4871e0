/* core/vec.c — f16/bf16 row conversions and f32 dots (contract: core/vec.h).
 * Each function has a scalar body and x86 bodies compiled with target
 * attributes; the level is read once per call from core/cpu.h. */
#include "vec.h"  // defines: hq_f16_to_f32_row, hq_dot_f32
#include "cpu.h"  // defines: hq_cpu_has
#include "half.h" // defines: hq_f16_to_f32, hq_f32_to_bf16
#include "simd.h" // defines: HQ_AVX2, HQ_AVX512, hq_f16x8, hq_hsum_ps

#include <math.h>
#include <string.h>

static inline uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float ldf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

/* ---------------- scalar ---------------- */
static void f16_to_f32_scalar(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i < n; i++) {
        float f = hq_f16_to_f32_quiet(ld16(s + 2 * i));
        memcpy(d + 4 * i, &f, 4);
    }
}
static void bf16_to_f32_scalar(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i < n; i++) {
        float f = hq_bf16_to_f32(ld16(s + 2 * i));
        memcpy(d + 4 * i, &f, 4);
    }
}
static void f32_to_f16_scalar(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i < n; i++) {
        uint16_t h = hq_f32_to_f16(ldf(s + 4 * i));
        memcpy(d + 2 * i, &h, 2);
    }
}
static void f32_to_bf16_scalar(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i < n; i++) {
        uint16_t h = hq_f32_to_bf16(ldf(s + 4 * i));
        memcpy(d + 2 * i, &h, 2);
    }
}

#if HQ_X86
/* ---------------- AVX2 (+F16C) ---------------- */
HQ_AVX2 static int64_t f16_to_f32_avx2(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps((float *)(void *)(d + 4 * i), hq_f16x8(s + 2 * i));
    return i;
}
HQ_AVX2 static int64_t bf16_to_f32_avx2(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps((float *)(void *)(d + 4 * i), hq_bf16x8(s + 2 * i));
    return i;
}
HQ_AVX2 static int64_t f32_to_f16_avx2(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(d + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps((const float *)(const void *)(s + 4 * i)),
                                         _MM_FROUND_TO_NEAREST_INT));
    return i;
}
/* hq_f32_to_bf16 eight at a time: NaN -> quiet, else round to nearest even */
HQ_AVX2 static int64_t f32_to_bf16_avx2(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), q = _mm256_set1_epi32(0x400000);
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(s + 4 * i));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
        __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
        __m256i v = _mm256_srli_epi32(_mm256_blendv_epi8(r, _mm256_or_si256(u, q), nan), 16);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
        _mm_storeu_si128((__m128i *)(void *)(d + 2 * i), _mm256_castsi256_si128(p));
    }
    return i;
}

/* ---------------- AVX-512 (F+BW+VL): 16 at a time, AVX2 for the rest ---- */
HQ_AVX512 static int64_t f16_to_f32_avx512(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps((void *)(d + 4 * i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(s + 2 * i))));
    return i;
}
HQ_AVX512 static int64_t bf16_to_f32_avx512(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(s + 2 * i)));
        _mm512_storeu_si512((void *)(d + 4 * i), _mm512_slli_epi32(w, 16));
    }
    return i;
}
HQ_AVX512 static int64_t f32_to_f16_avx512(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(d + 2 * i),
                            _mm512_cvtps_ph(_mm512_loadu_ps((const void *)(s + 4 * i)), _MM_FROUND_TO_NEAREST_INT));
    return i;
}
HQ_AVX512 static int64_t f32_to_bf16_avx512(const uint8_t *s, uint8_t *d, int64_t i, int64_t n) {
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), q = _mm512_set1_epi32(0x400000);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(s + 4 * i));
        __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absm), inf);
        __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
        __m512i v = _mm512_srli_epi32(_mm512_mask_blend_epi32(nan, r, _mm512_or_si512(u, q)), 16);
        _mm256_storeu_si256((__m256i *)(void *)(d + 2 * i), _mm512_cvtepi32_epi16(v));
    }
    return i;
}

/* two accumulators over 16, one over a last 8, then the scalar tail */
#define HQ_DOT_AVX2(LOAD, TAIL)                                                                \
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                 \
    int64_t i = 0;                                                                             \
    for (; i + 16 <= n; i += 16) {                                                             \
        s0 = _mm256_fmadd_ps(LOAD(i), _mm256_loadu_ps(b + i), s0);                            \
        s1 = _mm256_fmadd_ps(LOAD(i + 8), _mm256_loadu_ps(b + i + 8), s1);                    \
    }                                                                                          \
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LOAD(i), _mm256_loadu_ps(b + i), s0);     \
    float s = hq_hsum_ps(_mm256_add_ps(s0, s1));                                               \
    for (; i < n; i++) s += TAIL(i) * b[i];                                                   \
    return s;

HQ_AVX2 static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
#define LD(k) _mm256_loadu_ps(a + (k))
#define TL(k) a[k]
    HQ_DOT_AVX2(LD, TL)
#undef LD
#undef TL
}
HQ_AVX2 static float dot_f16_avx2(const uint16_t *w, const float *b, int64_t n) {
#define LD(k) hq_f16x8(w + (k))
#define TL(k) hq_f16_to_f32(w[k])
    HQ_DOT_AVX2(LD, TL)
#undef LD
#undef TL
}
HQ_AVX2 static float dot_bf16_avx2(const uint16_t *w, const float *b, int64_t n) {
#define LD(k) hq_bf16x8(w + (k))
#define TL(k) hq_bf16_to_f32(w[k])
    HQ_DOT_AVX2(LD, TL)
#undef LD
#undef TL
}
HQ_AVX2 static float dot_f32_acc1_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hq_hsum_ps(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
HQ_AVX2 static void axpy_f32_avx2(float a, const float *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

/* ---------------- public: level dispatch ---------------- */
void hq_f16_to_f32_row(const void *src, void *dstv, int64_t n) {
    const uint8_t *s = src;
    uint8_t *dst = dstv;
    int64_t i = 0;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX512)) i = f16_to_f32_avx512(s, dst, i, n);
    if (hq_cpu_has(HQ_CPU_AVX2)) i = f16_to_f32_avx2(s, dst, i, n);
#endif
    f16_to_f32_scalar(s, dst, i, n);
}

void hq_bf16_to_f32_row(const void *src, void *dstv, int64_t n) {
    const uint8_t *s = src;
    uint8_t *dst = dstv;
    int64_t i = 0;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX512)) i = bf16_to_f32_avx512(s, dst, i, n);
    if (hq_cpu_has(HQ_CPU_AVX2)) i = bf16_to_f32_avx2(s, dst, i, n);
#endif
    bf16_to_f32_scalar(s, dst, i, n);
}

void hq_f32_to_f16_row(const void *src, void *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t i = 0;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX512)) i = f32_to_f16_avx512(s, dst, i, n);
    if (hq_cpu_has(HQ_CPU_AVX2)) i = f32_to_f16_avx2(s, dst, i, n);
#endif
    f32_to_f16_scalar(s, dst, i, n);
}

void hq_f32_to_bf16_row(const void *src, void *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t i = 0;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX512)) i = f32_to_bf16_avx512(s, dst, i, n);
    if (hq_cpu_has(HQ_CPU_AVX2)) i = f32_to_bf16_avx2(s, dst, i, n);
#endif
    f32_to_bf16_scalar(s, dst, i, n);
}

float hq_dot_f32(const float *a, const float *b, int64_t n) {
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2)) return dot_f32_avx2(a, b, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

float hq_dot_f32_attn(const float *a, const float *b, int64_t n) {
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2)) return dot_f32_acc1_avx2(a, b, n);
#endif
    float s0 = 0, s1 = 0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
    }
    if (i < n) s0 += a[i] * b[i];
    return s0 + s1;
}

float hq_dot_f16_f32(const void *w, const float *a, int64_t n) {
    const uint16_t *h = w;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2)) return dot_f16_avx2(h, a, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += hq_f16_to_f32(h[i]) * a[i];
    return s;
}

float hq_dot_bf16_f32(const void *w, const float *a, int64_t n) {
    const uint16_t *h = w;
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2)) return dot_bf16_avx2(h, a, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += hq_bf16_to_f32(h[i]) * a[i];
    return s;
}

void hq_axpy_f32(float a, const float *x, float *y, int64_t n) {
#if HQ_X86
    if (hq_cpu_has(HQ_CPU_AVX2)) {
        axpy_f32_avx2(a, x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

double hq_lse(const float *x, int64_t n, float *mx_out) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double z = 0;
    for (int64_t i = 0; i < n; i++) z += exp((double)x[i] - mx);
    *mx_out = mx;
    return log(z);
}
