/* quant/q6_k.c — Q6_K: 256-element super-blocks of 16 sub-blocks of 16 with
 * int8 scales and one fp16 d (ggml block_q6_K; bit layout in formats.h).
 *   w = d·sc_j·(q − 32), q ∈ [0,63]
 * Reference (ggml quantize_row_q6_K_ref): each sub-block's scale by
 * q_make_qx_quants(nmax 32, weights x²); scales rounded to int8 against the
 * largest |scale| (d = max_scale/−128); elements re-rounded with the stored
 * scales. imatrix (ggml quantize_row_q6_K_impl): the same search weighted
 * directly by the imatrix values. */
#include "formats.h"
#include "../core/half.h"

#include <math.h>
#include <string.h>

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))

typedef float (*qx_fn)(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);

static void q6_block(const float *x, const float *qw, q_block_q6_K *y, qx_fn qx) {
    int8_t L[Q_QK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
        const float scale = qx(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : NULL);
        scales[ib] = scale;
        if (fabsf(scale) > max_abs_scale) {
            max_abs_scale = fabsf(scale);
            max_scale = scale;
        }
    }
    if (max_abs_scale < 1e-15f) { /* all-zero block: d = 0, no NaN */
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -128.f / max_scale;
    y->d = hq_f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y->scales[ib] = (int8_t)Q_MIN(127, q_nearest_int(iscale * scales[ib]));
    for (int j = 0; j < 16; ++j) {
        const float d = hq_f16_to_f32(y->d) * y->scales[j];
        if (!d) continue; /* keep the search's levels, as ggml */
        for (int ii = 0; ii < 16; ++ii) {
            int l = q_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(Q_MAX(-32, Q_MIN(31, l)) + 32);
        }
    }
    uint8_t *ql = y->ql, *qh = y->qh;
    for (int j = 0; j < Q_QK_K; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                              ((L[j + l + 96] >> 4) << 6));
        }
    }
}

void q_q6_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q6_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) q6_block(x + i * Q_QK_K, NULL, &y[i], q_make_qx_quants);
}

/* bit-identical: the 19 trial scales of each sub-block run in AVX2 lanes */
void q_q6_K_quantize_fast(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q6_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) q6_block(x + i * Q_QK_K, NULL, &y[i], q_make_qx_quants_avx2);
}

void q_q6_K_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q_block_q6_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) q6_block(x + i * Q_QK_K, qw ? qw + i * Q_QK_K : NULL, &y[i], q_make_qx_quants_avx2);
}

/* element e = 128h + 32k + l has 6-bit q from ql/qh as documented in formats.h */
static inline int q6_get(const q_block_q6_K *b, int e) {
    const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const uint8_t lo = b->ql[64 * h + 32 * (k & 1) + l];
    const int low = (k < 2) ? (lo & 0xF) : (lo >> 4);
    const int high = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return low | (high << 4);
}

void q_q6_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++, y += Q_QK_K) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int e = 0; e < Q_QK_K; e++) y[e] = d * x[i].scales[e / 16] * (float)(q6_get(&x[i], e) - 32);
    }
}

void q_q6_K_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q6_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int32_t si = 0;
            for (int l = 0; l < 16; l++) si += (q6_get(&w[i], 16 * j + l) - 32) * a[i].qs[16 * j + l];
            sumi += w[i].scales[j] * si;
        }
        sum += a[i].d * hq_f16_to_f32(w[i].d) * (float)sumi;
    }
    *s = sum;
}
