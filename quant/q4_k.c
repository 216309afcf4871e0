/* quant/q4_k.c — Q4_K and Q5_K: 256-element super-blocks of 8 sub-blocks of
 * 32, each sub-block with a 6-bit scale and 6-bit min, and fp16 super-scales
 * d and dmin (ggml block_q4_K / block_q5_K; bit layout in quant/formats.h).
 *   w = d·sc_j·q − dmin·m_j,  q ∈ [0,15] (Q4_K) or [0,31] (Q5_K)
 * Reference quantizer (ggml quantize_row_q4_K_ref): per sub-block weights
 * w_l = rms(x_sub) + |x_l|, (scale, min) by q_make_qkx2_quants, then the 8
 * scales and mins are rounded to 6 bits against their maxima and every
 * element is re-rounded with the stored scales.
 * imatrix (ggml quantize_row_q4_K_impl): σ² = 2·Σx²/256 per super-block,
 * w_l = imatrix_l·√(σ² + x_l²), q_make_qkx3_quants, the 6-bit scales and
 * mins by q_make_qp_quants weighted by Σw per sub-block.
 * Fast paths (bit-identical): the scale searches run in AVX2 lanes
 * (q_make_qkx2/3_quants_avx2). */
#include "formats.h"
#include "quant.h"
#include "../core/half.h"

#include <math.h>
#include <string.h>

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))

static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *sc) {
    memset(sc, 0, 12);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j - 0] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* the reference scale fit shared by Q4_K/Q5_K; fills d, dmin, scales */
static void k4_ref_scales(const float *x, int nmax, float rmin, float rdelta, int nstep, uint16_t *dh,
                          uint16_t *dminh, uint8_t *scales12, uint8_t *L, q_qkx2_fn qkx2) {
    uint8_t Laux[32], ls[8], lm[8];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = qkx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)Q_MIN(63, (uint8_t)q_nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)Q_MIN(63, (uint8_t)q_nearest_int(inv_min * mins[j]));
    }
    pack_scales_k4(ls, lm, scales12);
    *dh = hq_f32_to_f16(max_scale / 63.f);
    *dminh = hq_f32_to_f16(max_min / 63.f);
}

/* importance-weighted fit shared by Q4_K/Q5_K */
static void k4_imatrix_scales(const float *x, const float *qw, int nmax, uint16_t *dh, uint16_t *dminh,
                              uint8_t *scales12, uint8_t *L) {
    uint8_t Laux[32], ls[8], lm[8];
    float weights[32], sw[8], mins[8], scales[8];
    float sum_x2 = 0;
    for (int l = 0; l < Q_QK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / Q_QK_K;
    for (int j = 0; j < 8; ++j) {
        for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = q_make_qkx3_quants_avx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float d_block = q_make_qp_quants(8, 63, scales, ls, sw);
    const float m_block = q_make_qp_quants(8, 63, mins, lm, sw);
    for (int j = 0; j < 8; ++j) {
        ls[j] = Q_MIN(63, ls[j]);
        lm[j] = Q_MIN(63, lm[j]);
    }
    pack_scales_k4(ls, lm, scales12);
    *dh = hq_f32_to_f16(d_block);
    *dminh = hq_f32_to_f16(m_block);
}

/* final rounding of every element with the stored (fp16 × 6-bit) scales;
 * sub-blocks whose stored scale is 0 keep the levels of the search (as ggml) */
static void k4_requant(const float *x, uint16_t dh, uint16_t dminh, const uint8_t *scales12, int nmax,
                       uint8_t *L) {
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        q_get_scale_min_k4(j, scales12, &sc, &m);
        const float d = hq_f16_to_f32(dh) * sc;
        if (!d) continue;
        const float dm = hq_f16_to_f32(dminh) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = q_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)Q_MAX(0, Q_MIN(nmax, l));
        }
    }
}

static void pack_q4(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < Q_QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

static void pack_q5(const uint8_t *L, uint8_t *ql, uint8_t *qh) {
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < Q_QK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

/* Q4_K and Q5_K share everything but the fifth bit. qh holds it (bit j of
 * qh[l] for element l of sub-block j) and is NULL for Q4_K. */
static inline int k45_high(const uint8_t *qh, int l, int j) { return qh ? ((qh[l] >> j) & 1) << 4 : 0; }

/* one super-block's (d, dmin, scales) and levels L: the reference fit (ggml
 * searches Q4_K with rmin −1 in 20 steps, Q5_K with −0.5 in 15), or the
 * importance-weighted one when qw is given; then the final re-rounding */
static void k45_fit(const float *x, const float *qw, int nmax, q_qkx2_fn qkx2, uint16_t *dh, uint16_t *dminh,
                    uint8_t *scales12, uint8_t *L) {
    if (qw) k4_imatrix_scales(x, qw, nmax, dh, dminh, scales12, L);
    else if (nmax == 15) k4_ref_scales(x, 15, -1.f, 0.1f, 20, dh, dminh, scales12, L, qkx2);
    else k4_ref_scales(x, 31, -0.5f, 0.1f, 15, dh, dminh, scales12, L, qkx2);
    k4_requant(x, *dh, *dminh, scales12, nmax, L);
}

static void k45_dequantize_block(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t *q,
                                 const uint8_t *qh, float *y) {
    const float d = hq_f16_to_f32(dh), dmin = hq_f16_to_f32(dminh);
    for (int j = 0; j < 8; j += 2, q += 32) {
        uint8_t sc, m;
        q_get_scale_min_k4(j, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        q_get_scale_min_k4(j + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) + k45_high(qh, l, j)) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + k45_high(qh, l, j + 1)) - m2;
    }
}

/* d_a·(d·Σ_j sc_j·Σ q·q_a − dmin·Σ_j m_j·Σ q_a), the Q8_K bsums giving Σ q_a
 * per 16 elements */
static float k45_block_dot_ref(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t *qs,
                               const uint8_t *qh, const q_block_q8_K *a) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        q_get_scale_min_k4(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        const int8_t *qa = a->qs + 32 * j;
        const int shift = (j & 1) * 4;
        int32_t si = 0;
        for (int l = 0; l < 32; ++l) si += (((q[l] >> shift) & 0xF) | k45_high(qh, l, j)) * qa[l];
        sumi += sc * si;
        summ += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    return a->d * (hq_f16_to_f32(dh) * (float)sumi - hq_f16_to_f32(dminh) * (float)summ);
}

/* ---------------- Q4_K ---------------- */
static void q4_K_quantize(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw,
                          q_qkx2_fn qkx2) {
    q_block_q4_K *y = vy;
    uint8_t L[Q_QK_K];
    for (int64_t i = 0; i < n / Q_QK_K; i++, x += Q_QK_K, qw = qw ? qw + Q_QK_K : NULL) {
        k45_fit(x, qw, 15, qkx2, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q4(L, y[i].qs);
    }
}

void q_q4_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q4_K_quantize(x, vy, n, NULL, q_make_qkx2_quants);
}

/* the scale search vectorised across candidates (bit-identical) */
void q_q4_K_quantize_fast(const float *restrict x, void *restrict vy, int64_t n) {
    q4_K_quantize(x, vy, n, NULL, q_simd_avx2() ? q_make_qkx2_quants_avx2 : q_make_qkx2_quants);
}

void q_q4_K_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q4_K_quantize(x, vy, n, qw, q_simd_avx2() ? q_make_qkx2_quants_avx2 : q_make_qkx2_quants);
}

void q_q4_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++, y += Q_QK_K)
        k45_dequantize_block(x[i].d, x[i].dmin, x[i].scales, x[i].qs, NULL, y);
}

void q_q4_K_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++)
        sum += k45_block_dot_ref(w[i].d, w[i].dmin, w[i].scales, w[i].qs, NULL, &a[i]);
    *s = sum;
}

/* ---------------- Q5_K ---------------- */
static void q5_K_quantize(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw,
                          q_qkx2_fn qkx2) {
    q_block_q5_K *y = vy;
    uint8_t L[Q_QK_K];
    for (int64_t i = 0; i < n / Q_QK_K; i++, x += Q_QK_K, qw = qw ? qw + Q_QK_K : NULL) {
        k45_fit(x, qw, 31, qkx2, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q5(L, y[i].qs, y[i].qh);
    }
}

void q_q5_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q5_K_quantize(x, vy, n, NULL, q_make_qkx2_quants);
}

void q_q5_K_quantize_fast(const float *restrict x, void *restrict vy, int64_t n) {
    q5_K_quantize(x, vy, n, NULL, q_simd_avx2() ? q_make_qkx2_quants_avx2 : q_make_qkx2_quants);
}

void q_q5_K_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q5_K_quantize(x, vy, n, qw, q_simd_avx2() ? q_make_qkx2_quants_avx2 : q_make_qkx2_quants);
}

void q_q5_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++, y += Q_QK_K)
        k45_dequantize_block(x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh, y);
}

void q_q5_K_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++)
        sum += k45_block_dot_ref(w[i].d, w[i].dmin, w[i].scales, w[i].qs, w[i].qh, &a[i]);
    *s = sum;
}
