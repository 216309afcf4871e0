/* quant/q2_k.c — Q2_K: 256-element super-blocks of 16 sub-blocks of 16, each
 * sub-block with a 4-bit scale and a 4-bit min, and fp16 super-scales d and
 * dmin (ggml block_q2_K; bit layout in quant/formats.h).
 *   w = d·sc_j·q − dmin·m_j,  q ∈ [0,3]
 * Reference quantizer (ggml quantize_row_q2_K_ref): per sub-block weights
 * w_l = |x_l|, (scale, min) by q_make_qkx2_quants minimising the weighted
 * absolute error (use_mad) over 16 candidate iscales (rmin −0.5, step 0.1);
 * the 16 scales and mins are rounded to 4 bits against their maxima; every
 * element is re-rounded with the stored scales.
 * imatrix (ggml quantize_row_q2_K_impl): σ² = Σx²/256 per super-block (no
 * factor 2, unlike Q3_K..Q5_K), w_l = imatrix_l·√(σ² + x_l²), (scale, min)
 * by q_make_qkx3_quants (rmin −0.9, 37 steps of 0.05, squared error), the
 * 4-bit scales and mins by q_make_qp_quants weighted by Σw per sub-block. */
#include "formats.h"
#include "quant.h"
#include "../core/half.h"

#include <math.h>
#include <string.h>

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))

/* element e = 128h + 32k + l sits in qs[32h + l], bits 2k..2k+1 */
static void pack_q2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < Q_QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* final rounding with the stored (fp16 × 4-bit) scales; a sub-block whose
 * stored scale is 0 keeps the levels of the search (as ggml) */
static void q2_requant(const float *x, const q_block_q2_K *y, uint8_t *L) {
    const float dall = hq_f16_to_f32(y->d), dmin = hq_f16_to_f32(y->dmin);
    for (int j = 0; j < 16; ++j) {
        const float d = dall * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = dmin * (y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            const int l = q_nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)Q_MAX(0, Q_MIN(3, l));
        }
    }
}

static void q2_block_ref(const float *x, q_block_q2_K *y) {
    uint8_t L[Q_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are ≥ 0 */
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = q_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; ++j) y->scales[j] = (uint8_t)q_nearest_int(iscale * scales[j]);
        y->d = hq_f32_to_f16(max_scale / 15.f);
    } else {
        memset(y->scales, 0, 16);
        y->d = hq_f32_to_f16(0.f);
    }
    if (max_min > 0) {
        const float iscale = 15.f / max_min;
        for (int j = 0; j < 16; ++j) y->scales[j] |= (uint8_t)(q_nearest_int(iscale * mins[j]) << 4);
        y->dmin = hq_f32_to_f16(max_min / 15.f);
    } else {
        y->dmin = hq_f32_to_f16(0.f);
    }
    q2_requant(x, y, L);
    pack_q2(L, y->qs);
}

static void q2_block_imatrix(const float *x, const float *qw, q_block_q2_K *y) {
    uint8_t L[Q_QK_K], Laux[16], Ls[16], Lm[16];
    float weight[16], sw[16], mins[16], scales[16];
    float sumx2 = 0;
    for (int j = 0; j < Q_QK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / Q_QK_K;
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float s = 0;
        for (int l = 0; l < 16; ++l) s += weight[l];
        sw[j] = s;
        scales[j] = q_make_qkx3_quants_avx2(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float dm = q_make_qp_quants(16, 15, scales, Ls, sw);
    const float mm = q_make_qp_quants(16, 15, mins, Lm, sw);
    y->d = hq_f32_to_f16(dm);
    y->dmin = hq_f32_to_f16(mm);
    for (int j = 0; j < 16; ++j) y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
    q2_requant(x, y, L);
    pack_q2(L, y->qs);
}

void q_q2_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q2_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) q2_block_ref(x + i * Q_QK_K, &y[i]);
}

/* NULL importance = the reference quantizer (ggml quantize_q2_K does the same) */
void q_q2_K_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q_block_q2_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        if (qw) q2_block_imatrix(x + i * Q_QK_K, qw + i * Q_QK_K, &y[i]);
        else q2_block_ref(x + i * Q_QK_K, &y[i]);
    }
}

static inline int q2_get(const uint8_t *qs, int e) {
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

void q_q2_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q2_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++, y += Q_QK_K) {
        const float d = hq_f16_to_f32(x[i].d), dmin = hq_f16_to_f32(x[i].dmin);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * (x[i].scales[j] & 0xF), ml = dmin * (x[i].scales[j] >> 4);
            for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * (float)q2_get(x[i].qs, 16 * j + l) - ml;
        }
    }
}

/* d_a·(d·Σ_j sc_j·Σ q·q_a − dmin·Σ_j m_j·bsum_j) */
void q_q2_K_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q2_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 16; ++j) {
            int32_t si = 0;
            for (int l = 0; l < 16; ++l) si += q2_get(w[i].qs, 16 * j + l) * a[i].qs[16 * j + l];
            sumi += (w[i].scales[j] & 0xF) * si;
            summ += (w[i].scales[j] >> 4) * a[i].bsums[j];
        }
        sum += a[i].d * (hq_f16_to_f32(w[i].d) * (float)sumi - hq_f16_to_f32(w[i].dmin) * (float)summ);
    }
    *s = sum;
}
