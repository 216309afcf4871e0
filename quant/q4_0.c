/* quant/q4_0.c — the 32-element legacy formats Q4_0, Q4_1, Q5_0, Q5_1
 * (ggml block_q4_0 … block_q5_1; nibble order in quant/formats.h).
 *   Q4_0: d = max/−8 (max = the signed value of largest magnitude),
 *         q = min(15, trunc(x/d + 8.5)),        w = d·(q − 8)
 *   Q4_1: d = (max − min)/15, m = min,
 *         q = min(15, trunc((x − m)/d + 0.5)),  w = d·q + m
 *   Q5_0 / Q5_1: the same with 16 / 31 levels and the 5th bit in qh.
 * Importance-weighted variants (ggml quantize_row_q4_0_impl etc.): per row
 * σ² = Σx²/n, w_j = imatrix_j·√(σ² + x_j²); Q4_0/Q5_0 scale by
 * q_make_qx_quants, Q4_1/Q5_1 scale+min by q_make_qkx3_quants.
 * Dots take Q8_0 activations (also for Q4_1/Q5_1: the min term uses Σq_a). */
#include "formats.h"
#include "../core/half.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))

/* max = signed value with the largest |x| (first one on ties) */
static float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < Q_QK32; j++) {
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
    return max;
}

static void minmax(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < Q_QK32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static float row_sigma2(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s / n;
}

/* the importance-weighted fit of one block, shared by the four formats;
 * w_j = imatrix_j·√(σ² + x_j²) */
static void block_weights(const float *xb, const float *qb, float sigma2, float *w) {
    for (int j = 0; j < Q_QK32; j++) w[j] = qb[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

/* type 0 (x ≈ d·(L − nmax)): returns d as f16, levels 0..2·nmax−1 in L */
static uint16_t imatrix_block0(const float *xb, const float *qb, float sigma2, int nmax, int8_t *L) {
    float w[Q_QK32];
    block_weights(xb, qb, sigma2, w);
    return hq_f32_to_f16(q_make_qx_quants_avx2(Q_QK32, nmax, xb, L, 1, w));
}

/* type 1 (x ≈ d·L + m): d and m as f16, levels 0..nmax in L */
static void imatrix_block1(const float *xb, const float *qb, float sigma2, int nmax, uint16_t *d, uint16_t *m,
                           uint8_t *L) {
    float w[Q_QK32], mn;
    uint8_t Laux[Q_QK32];
    block_weights(xb, qb, sigma2, w);
    *d = hq_f32_to_f16(q_make_qkx3_quants_avx2(Q_QK32, nmax, xb, w, L, &mn, Laux, -0.9f, 0.05f, 36, false));
    *m = hq_f32_to_f16(-mn);
}

/* 32 levels (< 16) -> 16 bytes: element j low nibble, j + 16 high */
static void pack4(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

/* ---------------- Q4_0 ---------------- */
void q_q4_0_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / Q_QK32; i++, x += Q_QK32) {
        const float d = signed_absmax(x) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            const uint8_t q0 = (uint8_t)Q_MIN(15, (int8_t)(x[j] * id + 8.5f));
            const uint8_t q1 = (uint8_t)Q_MIN(15, (int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q_q4_0_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    if (!qw) { q_q4_0_quantize_fast(x, vy, n); return; }
    q_block_q4_0 *y = vy;
    const float sigma2 = row_sigma2(x, n);
    int8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        y[i].d = imatrix_block0(x + i * Q_QK32, qw + i * Q_QK32, sigma2, 8, L);
        pack4((const uint8_t *)L, y[i].qs);
    }
}

void q_q4_0_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / Q_QK32; i++, y += Q_QK32) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void q_q4_0_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_0 *w = vw;
    const q_block_q8_0 *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        int32_t si = 0;
        for (int j = 0; j < 16; j++) {
            si += ((w[i].qs[j] & 0x0F) - 8) * a[i].qs[j];
            si += ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        }
        sum += (float)si * hq_f16_to_f32(w[i].d) * hq_f16_to_f32(a[i].d);
    }
    *s = sum;
}

/* ---------------- Q4_1 ---------------- */
void q_q4_1_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / Q_QK32; i++, x += Q_QK32) {
        float mn, mx;
        minmax(x, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        y[i].m = hq_f32_to_f16(mn);
        for (int j = 0; j < 16; j++) {
            const uint8_t q0 = (uint8_t)Q_MIN(15, (int8_t)((x[j] - mn) * id + 0.5f));
            const uint8_t q1 = (uint8_t)Q_MIN(15, (int8_t)((x[j + 16] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q_q4_1_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    if (!qw) { q_q4_1_quantize_ref(x, vy, n); return; }
    q_block_q4_1 *y = vy;
    const float sigma2 = row_sigma2(x, n);
    uint8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        imatrix_block1(x + i * Q_QK32, qw + i * Q_QK32, sigma2, 15, &y[i].d, &y[i].m, L);
        pack4(L, y[i].qs);
    }
}

void q_q4_1_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / Q_QK32; i++, y += Q_QK32) {
        const float d = hq_f16_to_f32(x[i].d), m = hq_f16_to_f32(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[i].qs[j] & 0x0F) * d + m;
            y[j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Σ (d·q + m)·d_a·q_a = d·d_a·Σ q·q_a + m·d_a·Σ q_a */
void q_q4_1_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q4_1 *w = vw;
    const q_block_q8_0 *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        int32_t si = 0, sa = 0;
        for (int j = 0; j < 16; j++) {
            si += (w[i].qs[j] & 0x0F) * a[i].qs[j] + (w[i].qs[j] >> 4) * a[i].qs[j + 16];
            sa += a[i].qs[j] + a[i].qs[j + 16];
        }
        const float da = hq_f16_to_f32(a[i].d);
        sum += (float)si * hq_f16_to_f32(w[i].d) * da + (float)sa * hq_f16_to_f32(w[i].m) * da;
    }
    *s = sum;
}

/* ---------------- Q5_0 / Q5_1 ---------------- */
static void pack5(const uint8_t *L, uint8_t *qs, uint8_t *qh4) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        qh |= ((L[j] & 0x10u) >> 4) << j;
        qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    memcpy(qh4, &qh, 4);
}

static void unpack5(const uint8_t *qs, const uint8_t *qh4, int *q) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4);
        q[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
    }
}

void q_q5_0_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q5_0 *y = vy;
    uint8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++, x += Q_QK32) {
        const float d = signed_absmax(x) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        for (int j = 0; j < Q_QK32; j++) L[j] = (uint8_t)Q_MIN(31, (int8_t)(x[j] * id + 16.5f));
        pack5(L, y[i].qs, y[i].qh);
    }
}

void q_q5_0_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    if (!qw) { q_q5_0_quantize_ref(x, vy, n); return; }
    q_block_q5_0 *y = vy;
    const float sigma2 = row_sigma2(x, n);
    int8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        y[i].d = imatrix_block0(x + i * Q_QK32, qw + i * Q_QK32, sigma2, 16, L);
        pack5((const uint8_t *)L, y[i].qs, y[i].qh);
    }
}

void q_q5_0_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q5_0 *x = vx;
    int q[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++, y += Q_QK32) {
        const float d = hq_f16_to_f32(x[i].d);
        unpack5(x[i].qs, x[i].qh, q);
        for (int j = 0; j < Q_QK32; j++) y[j] = (q[j] - 16) * d;
    }
}

void q_q5_0_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_0 *w = vw;
    const q_block_q8_0 *a = va;
    int q[Q_QK32];
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        unpack5(w[i].qs, w[i].qh, q);
        int32_t si = 0;
        for (int j = 0; j < Q_QK32; j++) si += (q[j] - 16) * a[i].qs[j];
        sum += (float)si * hq_f16_to_f32(w[i].d) * hq_f16_to_f32(a[i].d);
    }
    *s = sum;
}

void q_q5_1_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q5_1 *y = vy;
    uint8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++, x += Q_QK32) {
        float mn, mx;
        minmax(x, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hq_f32_to_f16(d);
        y[i].m = hq_f32_to_f16(mn);
        /* ggml has no clamp here: (x−min)/d + 0.5 ≤ 31.5 by construction */
        for (int j = 0; j < Q_QK32; j++) L[j] = (uint8_t)Q_MIN(31, (int)((x[j] - mn) * id + 0.5f));
        pack5(L, y[i].qs, y[i].qh);
    }
}

void q_q5_1_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    if (!qw) { q_q5_1_quantize_ref(x, vy, n); return; }
    q_block_q5_1 *y = vy;
    const float sigma2 = row_sigma2(x, n);
    uint8_t L[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        imatrix_block1(x + i * Q_QK32, qw + i * Q_QK32, sigma2, 31, &y[i].d, &y[i].m, L);
        pack5(L, y[i].qs, y[i].qh);
    }
}

void q_q5_1_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q5_1 *x = vx;
    int q[Q_QK32];
    for (int64_t i = 0; i < n / Q_QK32; i++, y += Q_QK32) {
        const float d = hq_f16_to_f32(x[i].d), m = hq_f16_to_f32(x[i].m);
        unpack5(x[i].qs, x[i].qh, q);
        for (int j = 0; j < Q_QK32; j++) y[j] = q[j] * d + m;
    }
}

void q_q5_1_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q5_1 *w = vw;
    const q_block_q8_0 *a = va;
    int q[Q_QK32];
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK32; i++) {
        unpack5(w[i].qs, w[i].qh, q);
        int32_t si = 0, sa = 0;
        for (int j = 0; j < Q_QK32; j++) {
            si += q[j] * a[i].qs[j];
            sa += a[i].qs[j];
        }
        const float da = hq_f16_to_f32(a[i].d);
        sum += (float)si * hq_f16_to_f32(w[i].d) * da + (float)sa * hq_f16_to_f32(w[i].m) * da;
    }
    *s = sum;
}
