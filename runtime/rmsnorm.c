/* runtime/rmsnorm.c — RMSNorm (spec §4.2), form x·w (not 1+w):
 *   PyTorch: variance = x.pow(2).mean(-1); x = x * rsqrt(variance + eps); return w * x */
#include "rt_cpu.h" // defines: RT_OMP, RT_AVX2

#include <math.h>

void rt_rmsnorm_ref(const float *x, const float *w, float *y, int64_t n_rows, int64_t d, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        double ss = 0;
        for (int64_t i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (int64_t i = 0; i < d; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}

#if RT_X86
RT_AVX2 static void rmsnorm_row_avx2(const float *xr, const float *w, float *yr, int64_t d, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 v = _mm256_loadu_ps(xr + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    double ss = 0;
    for (int j = 0; j < 8; j++) ss += lanes[j];
    for (; i < d; i++) ss += (double)xr[i] * xr[i];
    float inv = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= d; i += 8)
        _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(xr + i), vi)));
    for (; i < d; i++) yr[i] = w[i] * (xr[i] * inv);
}
#endif

void rt_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows, int64_t d, float eps) {
    if (rt_ops_ref()) {
        rt_rmsnorm_ref(x, w, y, n_rows, d, eps);
        return;
    }
#if RT_X86
    if (rt_cpu_has_avx2()) {
        RT_OMP("omp parallel for schedule(static) if(n_rows > 4)")
        for (int64_t r = 0; r < n_rows; r++) rmsnorm_row_avx2(x + r * d, w, y + r * d, d, eps);
        return;
    }
#endif
    RT_OMP("omp parallel for schedule(static) if(n_rows > 4)")
    for (int64_t r = 0; r < n_rows; r++) rt_rmsnorm_ref(x + r * d, w, y + r * d, 1, d, eps);
}
