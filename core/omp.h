/* core/omp.h — OpenMP directives that vanish in a build without OpenMP
 * (make NO_OMP=1, or a compiler without -fopenmp). Write
 *     HQ_OMP("omp parallel for schedule(static)")
 * where a raw `#pragma omp` would be: without -fopenmp gcc reports a raw one
 * as an unknown pragma, an error under -Werror. A variable used only in a
 * clause needs a (void) cast to stay "used" without OpenMP. */
#ifndef HQ_CORE_OMP_H
#define HQ_CORE_OMP_H
#ifdef _OPENMP
#define HQ_OMP(x) _Pragma(x)
#else
#define HQ_OMP(x)
#endif
#endif
