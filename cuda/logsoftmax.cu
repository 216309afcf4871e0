/* cuda/logsoftmax.cu — log-softmax rows and per-row negative log-likelihood
 * for perplexity / verify:
 *   y = x − max − log Σ exp(x − max);  nll[r] = −y[r][target[r]]
 * One block per row, block-wide max and sum (fp32 sums of exp; the test's
 * reference is double). Limits: V >= 1, targets in [0, V). */
#include "cu_kern.h"

typedef struct {
    const float *x;
    float *y;
    const int32_t *target;
    float *nll;
    int64_t V;
} k_lsm_args;

/* log Σ exp(x − max) and max of row r: every thread gets them */
HQ_DEVICE void lsm_row(const float *xr, int64_t V, float *red, float *mx, float *lz) {
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = cu_block_max(m, red);
    float z = 0.0f;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) z += expf(xr[i] - m);
    z = cu_block_sum(z, red);
    *mx = m;
    *lz = logf(z);
}

HQ_KERNEL(k_logsoftmax, k_lsm_args) {
    HQ_SHARED(float, red, 32);
    const float *xr = a.x + (int64_t)blockIdx.x * a.V;
    float *yr = a.y + (int64_t)blockIdx.x * a.V;
    float m, lz;
    lsm_row(xr, a.V, red, &m, &lz);
    for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) yr[i] = xr[i] - m - lz;
}

HQ_KERNEL(k_nll, k_lsm_args) {
    HQ_SHARED(float, red, 32);
    const float *xr = a.x + (int64_t)blockIdx.x * a.V;
    float m, lz;
    lsm_row(xr, a.V, red, &m, &lz);
    if (threadIdx.x == 0) a.nll[blockIdx.x] = -(xr[a.target[blockIdx.x]] - m - lz);
}

CU_API int CU_SYM(cu_logsoftmax)(const float *x, float *y, int64_t rows, int64_t V) {
    if (rows <= 0) return 0;
    if (V < 1 || rows > 2147483647) return -1;
    k_lsm_args a = {x, y, NULL, NULL, V};
    return CU_GO(k_logsoftmax, k_lsm_args, hq_dim3((unsigned)rows, 1, 1), hq_dim3(256, 1, 1), a);
}

CU_API int CU_SYM(cu_nll)(const float *x, const int32_t *target, float *nll, int64_t rows, int64_t V) {
    if (rows <= 0) return 0;
    if (V < 1 || rows > 2147483647) return -1;
    k_lsm_args a = {x, NULL, target, nll, V};
    return CU_GO(k_nll, k_lsm_args, hq_dim3((unsigned)rows, 1, 1), hq_dim3(256, 1, 1), a);
}
