/* quant/q3_k.c — Q3_K: 256-element super-blocks of 16 sub-blocks of 16, each
 * with a 6-bit signed scale (stored +32), one fp16 d, 2 low bits per element
 * in qs and the third bit in hmask (ggml block_q3_K; layout in formats.h).
 *   w = d·(sc_j − 32)·(q − 4),  q ∈ [0,7]
 * Reference quantizer (ggml quantize_row_q3_K_ref): each sub-block's scale by
 * q_make_q3_quants (round at −4/max, then a coordinate descent on the levels
 * weighted by x²); the 16 scales are rounded to 6 bits against the one with
 * the largest |scale| (d = max_scale/−32); elements re-rounded with the
 * stored scales.
 * imatrix (ggml quantize_row_q3_K_impl): σ² = 2·Σx²/256, w_l =
 * imatrix_l·√(σ² + x_l²), each sub-block by q_make_qx_quants(nmax 4)
 * weighted by w, the 16 scales by q_make_qx_quants(nmax 32) weighted by Σw. */
#include "formats.h"
#include "quant.h"
#include "../core/half.h"

#include <math.h>
#include <string.h>

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))
#define Q_GROUP_MAX_EPS 1e-15f

/* ggml make_q3_quants: symmetric levels l ∈ [−nmax, nmax−1] (returned +nmax);
 * with do_rmse, up to 5 sweeps move single levels while that raises
 * (Σwxl)²/Σwl² (w = x²); returns the least-squares scale */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L, bool do_rmse) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < Q_GROUP_MAX_EPS) { /* all zero: scale 0, never NaN */
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    if (!do_rmse) {
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(Q_MAX(-nmax, Q_MIN(nmax - 1, q_nearest_int(iscale * x[i]))) + nmax);
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = Q_MAX(-nmax, Q_MIN(nmax - 1, q_nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = Q_MAX(-nmax, Q_MIN(nmax - 1, q_nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* the 6-bit value l (0..63) of sub-block j: low 4 bits in scales[j % 8]
 * (low nibble for j < 8, high for j ≥ 8), top 2 bits in scales[8 + j % 4]
 * at bit 2·(j / 4) */
static void put_scale(uint8_t *sc, int j, int l) {
    if (j < 8) sc[j] = (uint8_t)(l & 0xF);
    else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
    sc[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static inline int get_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* re-round every element with the stored scales (sub-blocks with a zero
 * scale keep the search's levels, as ggml), then split the 3-bit levels into
 * hmask (element e: bit e/32 of hmask[e % 32]) and the 2-bit qs */
static void q3_finish(const float *x, q_block_q3_K *y, int8_t *L) {
    const float dall = hq_f16_to_f32(y->d);
    for (int j = 0; j < 16; ++j) {
        const float d = dall * get_scale(y->scales, j);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            const int l = q_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(Q_MAX(-4, Q_MIN(3, l)) + 4);
        }
    }
    memset(y->hmask, 0, 32);
    for (int j = 0; j < Q_QK_K; ++j)
        if (L[j] > 3) {
            y->hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            L[j] -= 4;
        }
    for (int j = 0; j < Q_QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            y->qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void q3_block_ref(const float *x, q_block_q3_K *y) {
    int8_t L[Q_QK_K];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, 12);
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
            const int8_t l = (int8_t)q_nearest_int(iscale * scales[j]); /* ggml keeps it in an int8 */
            put_scale(y->scales, j, Q_MAX(-32, Q_MIN(31, l)) + 32);
        }
        y->d = hq_f32_to_f16(1 / iscale);
    } else {
        y->d = hq_f32_to_f16(0.f);
    }
    q3_finish(x, y, L);
}

static void q3_block_imatrix(const float *x, const float *qw, q_block_q3_K *y) {
    int8_t L[Q_QK_K], Ls[16];
    float scales[16], weight[16], sw[16];
    float sumx2 = 0;
    for (int j = 0; j < Q_QK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / Q_QK_K;
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float s = 0;
        for (int l = 0; l < 16; ++l) s += weight[l];
        sw[j] = s;
        scales[j] = q_make_qx_quants_avx2(16, 4, x + 16 * j, L + 16 * j, 1, weight);
    }
    memset(y->scales, 0, 12);
    const float d_block = q_make_qx_quants_avx2(16, 32, scales, Ls, 1, sw);
    for (int j = 0; j < 16; ++j) put_scale(y->scales, j, Ls[j]);
    y->d = hq_f32_to_f16(d_block);
    q3_finish(x, y, L);
}

void q_q3_K_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    q_block_q3_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) q3_block_ref(x + i * Q_QK_K, &y[i]);
}

/* NULL importance = the reference quantizer (ggml quantize_q3_K does the same) */
void q_q3_K_quantize_imatrix(const float *restrict x, void *restrict vy, int64_t n, const float *restrict qw) {
    q_block_q3_K *y = vy;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        if (qw) q3_block_imatrix(x + i * Q_QK_K, qw + i * Q_QK_K, &y[i]);
        else q3_block_ref(x + i * Q_QK_K, &y[i]);
    }
}

/* signed 3-bit level (−4..3) of element e = 128h + 32k + l */
static inline int q3_get(const q_block_q3_K *b, int e) {
    const int low = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    return low - (((b->hmask[e % 32] >> (e / 32)) & 1) ? 0 : 4);
}

void q_q3_K_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const q_block_q3_K *x = vx;
    for (int64_t i = 0; i < n / Q_QK_K; i++, y += Q_QK_K) {
        const float d = hq_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * (float)get_scale(x[i].scales, j);
            for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * (float)q3_get(&x[i], 16 * j + l);
        }
    }
}

/* d_a·d·Σ_j (sc_j − 32)·Σ q·q_a */
void q_q3_K_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const q_block_q3_K *w = vw;
    const q_block_q8_K *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n / Q_QK_K; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; ++j) {
            int32_t si = 0;
            for (int l = 0; l < 16; ++l) si += q3_get(&w[i], 16 * j + l) * a[i].qs[16 * j + l];
            sumi += get_scale(w[i].scales, j) * si;
        }
        sum += a[i].d * hq_f16_to_f32(w[i].d) * (float)sumi;
    }
    *s = sum;
}
