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

#if defined(__x86_64__) || defined(__i386__)
#define RT_X86 1
#include <immintrin.h>
#define RT_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define RT_X86 0
#endif
#endif
