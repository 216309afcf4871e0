/* cuda/rope.cu — rotary embedding, rotate_half convention (runtime/rope.c):
 *   θ_j = pos · (1 / base^(2j/P)) in fp32,
 *   x'_j = x_j cos θ_j − x_{j+P/2} sin θ_j, x'_{j+P/2} = x_{j+P/2} cos θ_j + x_j sin θ_j
 * One thread per (token, head, j < P/2); positions pos0 + t. Limits: P even,
 * 2 <= P <= 1024 (as the runtime). With dpos the first position is read
 * from device memory at run time (a captured decode graph replays it). On
 * the device pow, sin and cos are taken in double and rounded once, so they
 * agree with glibc's powf/sinf/cosf to the last bit nearly always. */
#include "cu_kern.h"

typedef struct {
    float *x;
    int64_t n_tok, H, P, pos0;
    const int64_t *dpos;
    float base;
} k_rope_args;

HQ_KERNEL(k_rope, k_rope_args) {
    int64_t half = a.P / 2, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n_tok * a.H * half) return;
    int64_t j = i % half, th = i / half, t = th / a.H;
    float expo = (float)(2 * j) / (float)a.P;
#ifdef __CUDACC__
    /* CUDA's powf is off by up to 2 ulp, and at position 70000 one ulp of
     * inv_freq moves the angle by 4e-3 rad (seen on an H200): pow in double,
     * rounded once, equals glibc's powf (< 1 ulp, nearly always correctly
     * rounded) */
    float inv = 1.0f / (float)pow((double)a.base, (double)expo);
#else
    float inv = 1.0f / powf(a.base, expo);
#endif
    float ang = (float)((a.dpos ? *a.dpos : a.pos0) + t) * inv;
    float cs, sn;
#ifdef __CUDACC__
    /* cosf/sinf carry a Payne-Hanek slow path that needs local memory;
     * sincospi(ang/π) in double reduces exactly and rounds to the same floats */
    double sd, cd;
    sincospi((double)ang * 0.318309886183790671537767526745, &sd, &cd);
    cs = (float)cd;
    sn = (float)sd;
#else
    cs = cosf(ang);
    sn = sinf(ang);
#endif
    float *v = a.x + th * a.P;
    float x0 = v[j], x1 = v[j + half];
    v[j] = x0 * cs - x1 * sn;
    v[j + half] = x1 * cs + x0 * sn;
}

CU_API int CU_SYM(cu_rope_supported)(int64_t P) { return P >= 2 && P <= 1024 && P % 2 == 0; }

CU_API int CU_SYM(cu_rope)(float *x, int64_t n_tok, int64_t n_heads, int64_t P, int64_t pos0,
                           const int64_t *dpos, float base) {
    if (n_tok <= 0 || n_heads <= 0) return 0;
    if (!CU_SYM(cu_rope_supported)(P)) return -1;
    k_rope_args a = {x, n_tok, n_heads, P, pos0, dpos, base};
    return CU_GO(k_rope, k_rope_args, hq_dim3(cu_blocks(n_tok * n_heads * (P / 2), 128), 1, 1),
                 hq_dim3(128, 1, 1), a);
}
