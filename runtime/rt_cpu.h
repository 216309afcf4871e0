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

/* fp32 dot product and y += a·x: the shared helpers (core/vec.h) */
#include "../core/vec.h" // defines: hq_dot_f32, hq_axpy_f32
static inline float rt_dot_f32(const float *a, const float *b, int64_t n) { return hq_dot_f32(a, b, n); }
static inline void rt_axpy_f32(float a, const float *x, float *y, int64_t n) { hq_axpy_f32(a, x, y, n); }
#endif
