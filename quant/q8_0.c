/* quant/q8_0.c — Q8_0: 32 int8 with one fp16 scale (ggml block_q8_0).
 * Also the activation format for every 32-element weight type's dot.
 *   d = max|x| / 127,  q = roundf(x / d)   (ggml quantize_row_q8_0_ref)
 * Q8_0 has no importance search (ggml ignores the imatrix for it). */
#include "formats.h"
#include "../core/half.h"

#include <math.h>

void q_q8_0_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / Q_QK32; i++, x += Q_QK32) {
        float amax = 0.0f;
        for (int j = 0; j < Q_QK32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f; /* all-zero block: d = 0, q = 0 */
        y[i].d = hq_f32_to_f16(d);
        for (int j = 0; j < Q_QK32; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void q_q8_0_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int j = 0; j < Q_QK32; j++) y[i * Q_QK32 + j] = x[i].qs[j] * d;
    }
}

/* s = Σ_blocks d_w·d_a·Σ q_w·q_a (exact integer inner sums) */
void q_q8_0_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q8_0 *w = vw, *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        int32_t si = 0;
        for (int j = 0; j < Q_QK32; j++) si += (int32_t)w[i].qs[j] * a[i].qs[j];
        sum += (float)si * hq_f16_to_f32(w[i].d) * hq_f16_to_f32(a[i].d);
    }
    *s = sum;
}
