/* quant/q8_k.c — Q8_K: the activation format for the K-quant dots
 * (ggml block_q8_K): f32 d, 256 int8, and the sums of each 16 quants
 * (bsums) so the min term of Q4_K/Q5_K costs 8 multiplies per super-block.
 *   iscale = −127/max (max = signed value of largest |x|),
 *   q = min(127, nearest_int(iscale·x)), d = 1/iscale   (ggml quantize_row_q8_K_ref) */
#include "formats.h"

#include <math.h>
#include <string.h>

void q_q8_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++, x += Q_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < Q_QK_K; ++j) {
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
        }
        if (!amax) { /* ggml leaves bsums unset here; we zero the whole block */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < Q_QK_K; ++j) {
            const int v = q_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[16 * j + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

void q_q8_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q8_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++)
        for (int j = 0; j < Q_QK_K; ++j) y[i * Q_QK_K + j] = x[i].d * x[i].qs[j];
}
