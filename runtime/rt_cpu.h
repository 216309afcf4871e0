/* runtime/rt_cpu.h — private helpers shared by the CPU op files: OpenMP
 * pragmas that vanish without -fopenmp, the AVX2 target attribute, and a
 * per-thread index. */
#ifndef HQ_RT_CPU_H
#define HQ_RT_CPU_H
#include "ops.h"
#ifdef _OPENMP
#include <omp.h> // defines: omp_get_thread_num
#define RT_OMP(x) _Pragma(x)
static inline int rt_thread_id(void) { return omp_get_thread_num(); }
#else
#define RT_OMP(x)
static inline int rt_thread_id(void) { return 0; }
#endif

#include "../core/simd.h" // defines: HQ_X86, HQ_AVX2, hq_hsum_ps
#define RT_X86 HQ_X86
#define RT_AVX2 HQ_AVX2

/* fp32 dot product and y += a·x, AVX2 when available (run-time check) */
#if RT_X86
RT_AVX2 static inline float rt_dot_avx2_(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hq_hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
RT_AVX2 static inline void rt_axpy_avx2_(float a, const float *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif
static inline float rt_dot_f32(const float *a, const float *b, int64_t n) {
#if RT_X86
    if (rt_cpu_has_avx2()) return rt_dot_avx2_(a, b, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static inline void rt_axpy_f32(float a, const float *x, float *y, int64_t n) {
#if RT_X86
    if (rt_cpu_has_avx2()) {
        rt_axpy_avx2_(a, x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
#endif
