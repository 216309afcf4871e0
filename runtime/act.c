/* runtime/act.c — activations: SiLU, softplus, SwiGLU product. */
#include "rt_cpu.h" // defines: RT_OMP

#include <math.h>

/* torch.nn.functional.silu: x * sigmoid(x) */
float rt_silu(float x) { return x / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus (beta 1, threshold 20): x > 20 ? x : log1p(exp(x)) */
float rt_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* act(gate) * up, in place on g */
void rt_swiglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = rt_silu(g[i]) * u[i];
}

void rt_gated_blocks(void (*ref)(float *g, const float *u, int64_t n), float *g, const float *u, int64_t n) {
    if (rt_ops_ref() || n < 4096) {
        ref(g, u, n);
        return;
    }
    int64_t blk = 1024, nb = (n + blk - 1) / blk;
    RT_OMP("omp parallel for schedule(static)")
    for (int64_t b = 0; b < nb; b++) {
        int64_t s = b * blk, e = s + blk < n ? s + blk : n;
        ref(g + s, u + s, e - s);
    }
}

void rt_swiglu(float *g, const float *u, int64_t n) { rt_gated_blocks(rt_swiglu_ref, g, u, n); }
