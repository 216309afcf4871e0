/* quant/qsearch.c — the scale searches behind the importance-weighted and
 * K-quant quantizers. Same algorithms (and float evaluation order, so the
 * same bytes) as ggml-quants.c make_qx_quants / make_qkx2_quants /
 * make_qkx3_quants / make_qp_quants; written from their description:
 *
 *  qx   (symmetric, type-0):  minimise Σ w (x − s·l)², l ∈ [−nmax, nmax−1]:
 *        start at s = max/−nmax, then try 18 nearby iscales and keep the
 *        least-squares s = Σwxl / Σwl² of the best one.
 *  qkx2/qkx3 (asymmetric, type-1): x ≈ s·l + min, l ∈ [0, nmax], min ≤ 0:
 *        for nstep+1 candidate iscales, round, solve the 2×2 weighted
 *        least-squares for (s, min) and keep the smallest weighted error.
 *  qp   (positive values, e.g. sub-block scales): like qx for x ≥ 0 with a
 *        coordinate-descent polish of each level.
 */
#include "formats.h"

#include <math.h>
#include <string.h>

#define Q_GROUP_MAX_EPS 1e-15f
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))
#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))

static inline float qx_weight(const float *qw, int rmse_type, int i, float xi) {
    if (qw) return qw[i];
    switch (rmse_type) {
    case 1: return xi * xi;
    case 2: return 1;
    case 3: return fabsf(xi);
    default: return sqrtf(fabsf(xi));
    }
}

float q_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < Q_GROUP_MAX_EPS) { /* all zero (or tiny): d = 0, never NaN */
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            int l = q_nearest_int(iscale * x[i]);
            L[i] = (int8_t)(nmax + Q_MAX(-nmax, Q_MIN(nmax - 1, l)));
        }
        return 1 / iscale;
    }
    bool return_early = false;
    if (rmse_type < 0) { rmse_type = -rmse_type; return_early = true; }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = q_nearest_int(iscale * x[i]);
        l = Q_MAX(-nmax, Q_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = qx_weight(qw, rmse_type, i, x[i]);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = q_nearest_int(iscale * x[i]);
            l = Q_MAX(-nmax, Q_MIN(nmax - 1, l));
            float w = qx_weight(qw, rmse_type, i, x[i]);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = q_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + Q_MAX(-nmax, Q_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* the pieces qkx2 and qkx3 share; a NULL w means w_i = x_i² (qkx3's default) */
static inline float qkx_w(const float *w, const float *x, int i) { return w ? w[i] : x[i] * x[i]; }

static void qkx_stats(int n, const float *x, const float *w, float *min, float *max, float *sum_w, float *sum_x) {
    float mn = x[0], mx = x[0];
    float sw = qkx_w(w, x, 0);
    float sx = sw * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        float wi = qkx_w(w, x, i);
        sw += wi;
        sx += wi * x[i];
    }
    *min = mn > 0 ? 0 : mn;
    *max = mx;
    *sum_w = sw;
    *sum_x = sx;
}

/* Σ w·f(scale·L + min − x), f = |·| (use_mad) or (·)² */
static float qkx_error(int n, const float *x, const float *w, const uint8_t *L, float scale, float min, bool use_mad) {
    float err = 0;
    for (int i = 0; i < n; ++i) {
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        err += qkx_w(w, x, i) * diff;
    }
    return err;
}

/* the 2×2 weighted least squares for x ≈ scale·l + min; a positive min is
 * refitted through the origin; false when the system is singular */
static bool qkx_fit(float sum_w, float sum_x, float sum_l, float sum_l2, float sum_xl, float *scale, float *min) {
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) return false;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
    }
    *scale = this_scale;
    *min = this_min;
    return true;
}

float q_make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min, max, sum_w, sum_x;
    qkx_stats(n, x, w, &min, &max, &sum_w, &sum_x);
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) {
        int l = q_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)Q_MAX(0, Q_MIN(nmax, l));
    }
    float best_error = qkx_error(n, x, w, L, scale, min, use_mad);
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = q_nearest_int(iscale * (x[i] - min));
            l = Q_MAX(0, Q_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float wi = w[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        float this_scale, this_min;
        if (qkx_fit(sum_w, sum_x, sum_l, sum_l2, sum_xl, &this_scale, &this_min)) {
            float cur_error = qkx_error(n, x, w, Laux, this_scale, this_min, use_mad);
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

float q_make_qkx3_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min, max, sum_w, sum_x;
    qkx_stats(n, x, w, &min, &max, &sum_w, &sum_x);
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) {
        int l = q_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)Q_MAX(0, Q_MIN(nmax, l));
    }
    float best_mad = qkx_error(n, x, w, L, scale, min, use_mad);
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            /* min is the best fit so far and may sit near max: v can be huge */
            const float v = iscale * (x[i] - min);
            const int l = v > 0 ? q_nearest_int(Q_MIN(v, (float)nmax)) : 0;
            Laux[i] = (uint8_t)l;
            float wi = qkx_w(w, x, i);
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        float this_scale, this_min;
        if (qkx_fit(sum_w, sum_x, sum_l, sum_l2, sum_xl, &this_scale, &this_min)) {
            float mad = qkx_error(n, x, w, Laux, this_scale, this_min, use_mad);
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

float q_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = Q_MAX(max, x[i]);
    if (max < Q_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)q_nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        float iscale_is = (0.1f * is + nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            int l = Q_MIN(nmax, q_nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = Q_MIN(nmax, q_nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        float w = qw[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = Q_MIN(nmax, q_nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

void q_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}
