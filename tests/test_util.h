/* tests/test_util.h — small helpers that several tests share (the harness
 * itself is test.h).
 *  - urand/nrand: xorshift64 (13, 7, 17) uniform [0, 1) and Box–Muller
 *    normal numbers; defined when the test sets its own seed with
 *    `#define TU_SEED 0x...ull` before the include;
 *  - max_rel: max |a − b| / max |b| for comparing logits. */
#ifndef HQ_TEST_UTIL_H
#define HQ_TEST_UTIL_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef TU_SEED
static uint64_t g_rng = TU_SEED;
static inline double urand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static inline float nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}
#endif

/* max |a − b| / max |b| (the plain max |a − b| when b is all zero); *nan
 * tells whether either side holds a NaN */
static inline double max_rel(const float *a, const float *b, int64_t n, bool *nan) {
    double md = 0, mb = 0;
    *nan = false;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) *nan = true;
        double d = fabs((double)a[i] - b[i]);
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}
#endif
