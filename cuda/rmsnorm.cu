/* cuda/rmsnorm.cu — RMSNorm (runtime/rmsnorm.c semantics):
 *   PyTorch: variance = x.pow(2).mean(-1); x = x * rsqrt(variance + eps); return w * x
 * One block per row; threads stride over the row, block-wide sum of squares
 * (fp32; the _ref sums in double), then y = w·(x·inv). Limits: none beyond
 * d >= 1 (rows of any length, 1 .. grid limit rows). */
#include "cu_kern.h"

typedef struct {
    const float *x, *w;
    float *y;
    int64_t d;
    float eps;
} k_rmsnorm_args;

HQ_KERNEL(k_rmsnorm, k_rmsnorm_args) {
    HQ_SHARED(float, red, 32);
    const float *xr = a.x + (int64_t)blockIdx.x * a.d;
    float *yr = a.y + (int64_t)blockIdx.x * a.d;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < a.d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = cu_block_sum(ss, red);
    /* every thread has read its x before the barriers inside cu_block_sum,
     * so writing y in place is safe */
    float inv = (float)(1.0 / sqrt((double)ss / (double)a.d + (double)a.eps));
    for (int64_t i = threadIdx.x; i < a.d; i += blockDim.x) yr[i] = a.w[i] * (xr[i] * inv);
}

CU_API int CU_SYM(cu_rmsnorm_supported)(int64_t d) { return d >= 1 && d <= ((int64_t)1 << 40); }

CU_API int CU_SYM(cu_rmsnorm)(const float *x, const float *w, float *y, int64_t rows, int64_t d, float eps) {
    if (rows <= 0) return 0;
    if (rows > 2147483647 || !CU_SYM(cu_rmsnorm_supported)(d)) return -1;
    k_rmsnorm_args a = {x, w, y, d, eps};
    unsigned th = d >= 256 ? 256u : (unsigned)((d + 31) / 32 * 32);
    return CU_GO(k_rmsnorm, k_rmsnorm_args, hq_dim3((unsigned)rows, 1, 1), hq_dim3(th, 1, 1), a);
}
