/* quant/iq4_nl.c — IQ4_NL: 32 elements, fp16 d, 4-bit indices into a fixed
 * non-linear table (ggml block_iq4_nl, llama.cpp#5590): w = d·kvalues[q].
 * Reference (ggml quantize_row_iq4_nl_ref, ntry = −1): d0 = max/kvalues[0],
 * nearest level for x/d0, then d = Σwxq/Σwq² with w = x².
 * quantize_imatrix (ggml quantize_iq4_nl, ntry = 7): the same start with the
 * opposite sign plus 15 trial scales around it; weights imatrix·√(σ² + x²)
 * with σ² = 2·Σx²/32 over the block (x² when imatrix is NULL); then every
 * element is re-rounded with the chosen d. */
#include "formats.h"
#include "../core/half.h"

#include <math.h>
#include <string.h>

const int8_t q_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* index of the level nearest to v (ties go up): largest j with
 * 2v ≥ val[j−1] + val[j], a branch-free binary search over the midpoints */
static inline int best_index(float v) {
    const float v2 = v + v;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        const int j = idx + step;
        idx = (v2 >= (float)(q_iq4nl_values[j - 1] + q_iq4nl_values[j])) ? j : idx;
    }
    return idx;
}

static void iq4nl_block(const float *x, const float *qw, int ntry, q_block_iq4_nl *y) {
    const int8_t *values = q_iq4nl_values;
    float weight[32];
    uint8_t L[32];
    float sigma2 = 0;
    for (int j = 0; j < 32; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / 32;
    for (int j = 0; j < 32; ++j) weight[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];

    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    }
    float d = 0;
    if (amax < 1e-15f) {
        memset(L, 0, sizeof L);
    } else {
        d = ntry > 0 ? -max / values[0] : max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const int l = best_index(id * x[j]);
            L[j] = (uint8_t)l;
            const float q = values[l], w = weight[j];
            sumqx += w * q * x[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; ++itry) {
            id = (itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float q = values[best_index(id * x[j])], w = weight[j];
                sumqx += w * q * x[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
    }
    y->d = hq_f32_to_f16(d);
    if (ntry > 0) {
        const float id = d ? 1 / d : 0;
        for (int j = 0; j < 32; ++j) L[j] = (uint8_t)best_index(id * x[j]);
    }
    for (int j = 0; j < 16; ++j) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

void q_iq4_nl_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_iq4_nl *y = vy;
    for (int64_t i = 0; i < n / Q_QK32; i++) iq4nl_block(x + i * Q_QK32, NULL, -1, &y[i]);
}

void q_iq4_nl_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q_block_iq4_nl *y = vy;
    for (int64_t i = 0; i < n / Q_QK32; i++) iq4nl_block(x + i * Q_QK32, qw ? qw + i * Q_QK32 : NULL, 7, &y[i]);
}

void q_iq4_nl_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / Q_QK32; i++, y += Q_QK32) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * q_iq4nl_values[x[i].qs[j] & 0xF];
            y[j + 16] = d * q_iq4nl_values[x[i].qs[j] >> 4];
        }
    }
}

void q_iq4_nl_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_iq4_nl *w = vw;
    const q_block_q8_0 *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        int32_t si = 0;
        for (int j = 0; j < 16; ++j) {
            si += q_iq4nl_values[w[i].qs[j] & 0xF] * a[i].qs[j];
            si += q_iq4nl_values[w[i].qs[j] >> 4] * a[i].qs[j + 16];
        }
        sum += (float)si * hq_f16_to_f32(w[i].d) * hq_f16_to_f32(a[i].d);
    }
    *s = sum;
}
